"""Shared rate budgets: "20 calls/s per DingTalk app and API", "20 messages/min per WeCom robot".

A budget of ``rate`` calls per ``per`` seconds is kept in the ``rate_buckets`` table, so every
run of every worker process on the same database shares it. When the budget is spent,
:meth:`RateLimiter.acquire` *waits* (asynchronously, for the time the stored state says a
call becomes free) and tries again; it does not fail.

The guarantee is the one platforms enforce: **no window of ``per`` seconds holds more than
``rate`` calls**, while a full burst of ``rate`` calls is still allowed when the budget is
unused. A plain token bucket with capacity ``rate`` cannot promise that (after a burst it
refills, letting through up to ``2*rate - 1`` calls within one window), so the bucket is a
ring of ``rate`` slots holding the times of the most recent grants (a sliding log):

- the head row ``<key>`` holds in ``tokens`` the ring index of the oldest grant, and in
  ``updated_at`` the time of the last grant;
- slot rows ``<key>#<i>`` hold in ``updated_at`` the time of one grant.

A call of cost ``c`` is granted when the ``c``-th oldest grant is at least ``per`` seconds
old; otherwise the caller sleeps until it is. Each decision runs in one transaction that
holds the head row locked: ``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite. On PostgreSQL the database clock is used, so workers on several hosts agree on time.
Database work runs in a thread (``asyncio.to_thread``); the event loop never blocks on it.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import weakref
from dataclasses import dataclass
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.engine import Row

from engine.errors import RateLimited
from engine.store.tables import rate_buckets

#: The largest `rate` of one budget (each allowed call in a window is one row).
MAX_RATE = 10_000
_MAX_HEAD_KEY = 190  # `rate_buckets.key` is String(200); slot keys add "#<index>"


# --------------------------------------------------------------------------- row locking
@contextlib.contextmanager
def locked_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction in which :func:`lock_row` serialises writers across processes.

    SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock at once (waiting up to the
    busy timeout), so a read-decide-write sequence cannot interleave with another one.
    PostgreSQL (and others): an ordinary transaction; :func:`lock_row` uses ``FOR UPDATE``.
    Commits when the block ends normally, rolls back on an exception.
    """
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            # pysqlite must not open transactions on its own: we issue BEGIN IMMEDIATE ourselves.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
    else:
        with engine.begin() as conn:
            yield conn


def lock_row(conn: Connection, table: Table, key: str, defaults: dict[str, Any]) -> Row:
    """The row of `table` with primary key `key`, locked until the transaction ends.

    A missing row is first inserted with `defaults` (concurrent inserters do not conflict:
    ``ON CONFLICT DO NOTHING`` and then a locking read). Call inside :func:`locked_transaction`.
    """
    select = sa.select(table).where(table.c.key == key)
    sqlite = conn.dialect.name == "sqlite"
    if not sqlite:
        select = select.with_for_update()
    row = conn.execute(select).first()
    if row is None:
        conn.execute(_insert(conn, table).values(key=key, **defaults).on_conflict_do_nothing(index_elements=["key"]))
        row = conn.execute(select).first()
    assert row is not None
    return row


def _insert(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover - Flowlink runs on SQLite and PostgreSQL only
        raise NotImplementedError(f"shared connector state needs SQLite or PostgreSQL, not {conn.dialect.name}")
    return insert(table)


def db_now(conn: Connection) -> float:
    """Epoch seconds: the database clock on PostgreSQL (one clock for every host), else local."""
    if conn.dialect.name == "postgresql":
        return float(conn.exec_driver_sql("SELECT extract(epoch from clock_timestamp())").scalar_one())
    return time.time()


# --------------------------------------------------------------------------- budgets
@dataclass(frozen=True)
class Budget:
    """A rate budget: at most `rate` calls in any window of `per` seconds.

    `name` prefixes the keys the budget builds (``Budget(20, 1.0, "dingtalk").key(app, api)``
    is ``"dingtalk:<app>:<api>"``). Attach one to a connector or an action with
    :meth:`attach` (usable as a decorator on an action's function) and read it back with
    :func:`budget_of`.
    """

    rate: int
    per: float = 1.0
    name: str = "budget"

    def __post_init__(self) -> None:
        if not isinstance(self.rate, int) or isinstance(self.rate, bool) or not 1 <= self.rate <= MAX_RATE:
            raise ValueError(f"budget rate must be an integer from 1 to {MAX_RATE}, got {self.rate!r}")
        if not self.per > 0:
            raise ValueError(f"budget period must be positive seconds, got {self.per!r}")

    def key(self, *parts: Any) -> str:
        """``<name>:<part>:<part>...`` (parts that are None are left out)."""
        return ":".join([self.name, *(str(p) for p in parts if p is not None)])

    def attach(self, target: Any) -> Any:
        """Set this budget on a connector, an action or an action function; returns `target`."""
        setattr(target, "rate_budget", self)
        return target


def budget_of(target: Any) -> Budget | None:
    """The budget of an action (its function's, its own, else its connector's) or of a connector."""
    for obj in (getattr(target, "run", None), target, getattr(target, "connector", None)):
        budget = getattr(obj, "rate_budget", None) if obj is not None else None
        if isinstance(budget, Budget):
            return budget
    return None


def _head_key(key: str) -> str:
    if not key:
        raise ValueError("rate budget key must not be empty")
    if len(key) <= _MAX_HEAD_KEY:
        return key
    return key[:150] + "~" + hashlib.sha256(key.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- limiter
class RateLimiter:
    """Waits until a call fits a shared budget. One per process is enough; it is cheap to copy.

    ``await limiter.acquire(key)`` uses the limiter's default budget;
    ``await limiter.acquire(key, rate=20, per=1.0)`` an explicit one. Coroutines of one
    process queue for a key in arrival order; processes meet at the database row.
    """

    def __init__(self, engine: Engine, budget: Budget | None = None) -> None:
        self.engine = engine
        self.budget = budget
        self._locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]" = weakref.WeakKeyDictionary()

    def with_budget(self, budget: Budget) -> "RateLimiter":
        """A limiter on the same database (and local queues) whose default budget is `budget`."""
        other = RateLimiter(self.engine, budget)
        other._locks = self._locks
        return other

    def _local_lock(self, key: str) -> asyncio.Lock:
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        lock = locks.get(key)
        if lock is None:
            lock = locks[key] = asyncio.Lock()
        return lock

    def _resolve(self, rate: int | None, per: float | None, budget: Budget | None) -> tuple[int, float]:
        base = budget or self.budget
        if rate is None:
            if base is None:
                raise ValueError("no rate given and the limiter has no default budget")
            rate = base.rate
        if per is None:
            per = base.per if base is not None else 1.0
        Budget(rate, per)  # validates
        return rate, per

    async def acquire(
        self,
        key: str,
        rate: int | None = None,
        per: float | None = None,
        cost: int = 1,
        *,
        budget: Budget | None = None,
        max_wait: float | None = None,
    ) -> float:
        """Wait until `cost` calls fit the budget of `key`, take them; return the seconds waited.

        Waits as long as needed unless `max_wait` is given: then a wait that would go past
        it raises :class:`RateLimited` (with ``retry_after``) instead.
        """
        rate, per = self._resolve(rate, per, budget)
        if not 1 <= cost <= rate:
            raise ValueError(f"cost must be from 1 to the budget's rate ({rate}), got {cost}")
        started = time.monotonic()
        async with self._local_lock(key):
            while True:
                wait = await asyncio.to_thread(self.try_acquire, key, rate, per, cost)
                if wait <= 0:
                    return time.monotonic() - started
                waited = time.monotonic() - started
                if max_wait is not None and waited + wait > max_wait:
                    raise RateLimited(
                        f"rate budget '{key}' ({rate} per {per:g}s) is exhausted for another {wait:.3f}s",
                        retry_after=wait,
                    )
                await asyncio.sleep(wait)

    def try_acquire(self, key: str, rate: int, per: float, cost: int = 1) -> float:
        """One attempt (blocking, database only): 0.0 when granted, else seconds until it may be."""
        head = _head_key(key)
        with locked_transaction(self.engine) as conn:
            row = lock_row(conn, rate_buckets, head, {"tokens": 0.0, "updated_at": 0.0})
            now = db_now(conn)
            index = int(row.tokens) % rate
            slots = [f"{head}#{(index + j) % rate}" for j in range(cost)]
            # The ring is ordered oldest first from `index`: the cost-th oldest grant decides.
            newest = conn.execute(
                sa.select(rate_buckets.c.updated_at).where(rate_buckets.c.key == slots[-1])
            ).scalar_one_or_none()
            if newest is not None and now - newest < per:
                # min(): a clock that stepped backwards must not make us wait for hours.
                return max(min(newest + per - now, per), 1e-4)
            stmt = _insert(conn, rate_buckets).values([{"key": s, "tokens": 0.0, "updated_at": now} for s in slots])
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"updated_at": stmt.excluded.updated_at}))
            conn.execute(
                rate_buckets.update()
                .where(rate_buckets.c.key == head)
                .values(tokens=float((index + cost) % rate), updated_at=now)
            )
            return 0.0

    def reset(self, key: str) -> None:
        """Forget the state of `key` (tests, or after changing a budget's rate)."""
        head = _head_key(key)
        with self.engine.begin() as conn:
            conn.execute(rate_buckets.delete().where(rate_buckets.c.key == head))
            conn.execute(rate_buckets.delete().where(rate_buckets.c.key.startswith(head + "#", autoescape=True)))
