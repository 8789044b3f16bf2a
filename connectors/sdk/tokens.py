"""Platform access tokens cached once for every run and every worker process.

A :class:`TokenCache` keeps each token in memory (the hot path reads no database while
the token is fresh) and, when given a database engine, in the ``connector_tokens`` table,
encrypted with the Flowlink keyring, so that every worker process shares it.

Refreshing is single-flight: inside a process one ``asyncio.Lock`` per key; across
processes a lease (``lease_until``/``lease_owner``) taken with a conditional UPDATE; the
processes that did not get the lease poll the row until the new token appears or the
lease runs out (then one of them takes it over).

``invalidate(key, token)`` clears a token only while it is still the stored one, so when
50 requests all see "token revoked" the token is fetched again exactly once.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
import uuid
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Mapping

import orjson
from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy import Engine, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from engine.errors import Transient

#: Refresh this many seconds before a token expires ...
DEFAULT_SKEW = 300.0
#: ... or this fraction of its lifetime, whichever is shorter.
DEFAULT_SKEW_RATIO = 0.1


@dataclass(frozen=True)
class Token:
    """An access token (or session) and when it expires (epoch seconds; None = unknown)."""

    value: str = field(repr=False)
    expires_at: float | None = None
    issued_at: float = field(default_factory=time.time)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def issue(cls, value: str, expires_in: float | None = None, extra: Mapping[str, Any] | None = None,
              now: float | None = None) -> "Token":
        """A token issued now that is valid for `expires_in` seconds."""
        now = time.time() if now is None else now
        expires_at = None if expires_in is None else now + float(expires_in)
        return cls(value=value, expires_at=expires_at, issued_at=now, extra=dict(extra or {}))

    @property
    def lifetime(self) -> float | None:
        return None if self.expires_at is None else self.expires_at - self.issued_at

    def to_bytes(self) -> bytes:
        return orjson.dumps({"v": self.value, "e": self.expires_at, "i": self.issued_at, "x": dict(self.extra)})

    @classmethod
    def from_bytes(cls, data: bytes, expires_at: float | None) -> "Token":
        raw = orjson.loads(data)
        return cls(value=raw["v"], expires_at=expires_at, issued_at=raw.get("i") or 0.0, extra=raw.get("x") or {})


Fetch = Callable[["Token | None"], Awaitable[Token]]


def token_key(connector: str, tenant: str, app_id: str, secret: str) -> str:
    """The cache key: SHA-256 of (connector, tenant, app id, secret), 64 hex characters."""
    joined = "\x1f".join((connector or "", tenant or "", app_id or "", secret or ""))
    return hashlib.sha256(joined.encode()).hexdigest()


class TokenCache:
    """Single-flight token cache, in memory and optionally shared through the database.

    `engine` (an Engine or URL) whose schema has ``connector_tokens``; None keeps tokens
    in this process only. A token counts as fresh until ``min(skew, skew_ratio *
    lifetime)`` seconds before it expires.
    """

    key_for = staticmethod(token_key)

    def __init__(
        self,
        engine: Engine | str | None = None,
        *,
        keyring: MultiFernet | None = None,
        skew: float = DEFAULT_SKEW,
        skew_ratio: float = DEFAULT_SKEW_RATIO,
        lease_seconds: float = 30.0,
        poll_interval: float = 0.05,
        wait_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(engine, str):
            from engine.store.db import make_engine

            engine = make_engine(engine)
        self.engine = engine
        if engine is not None and keyring is None:
            from engine.credentials import load_keyring

            keyring = load_keyring()
        self.keyring = keyring
        self.skew = skew
        self.skew_ratio = skew_ratio
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.clock = clock
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"[:64]
        self._memory: dict[str, Token] = {}
        self._failures: dict[str, tuple[float, BaseException]] = {}
        self._locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]" = weakref.WeakKeyDictionary()
        #: how many times this process called a fetch function (for tests and metrics)
        self.fetches = 0

    # ------------------------------------------------------------------ public

    def is_fresh(self, token: Token | None, now: float | None = None) -> bool:
        """True while the token can be used without refreshing it first."""
        if token is None:
            return False
        if token.expires_at is None:
            return True
        now = self.clock() if now is None else now
        lifetime = token.lifetime or 0.0
        skew = min(self.skew, self.skew_ratio * lifetime) if lifetime > 0 else 0.0
        return now < token.expires_at - skew

    async def get(self, key: str, fetch: Fetch, *, connector: str = "?") -> Token:
        """The fresh token for `key`, calling `fetch(previous)` once if there is none.

        `previous` is the last known (stale or invalidated) token, or None; an OAuth2
        refresh reads its refresh token from ``previous.extra``.
        """
        token = self._memory.get(key)
        if token is not None and self.is_fresh(token):
            return token
        started = time.monotonic()
        async with self._lock(key):
            token = self._memory.get(key)
            if token is not None and self.is_fresh(token):
                return token
            failure = self._failures.get(key)
            if failure is not None and failure[0] >= started:
                # the refresh we queued behind has just failed: report it, do not hammer
                raise failure[1]
            try:
                if self.engine is None:
                    self.fetches += 1
                    token = await fetch(token)
                else:
                    try:
                        token = await self._get_shared(key, fetch, connector, token)
                    except DBAPIError as exc:
                        raise Transient(f"the token cache database is unavailable: {type(exc.orig).__name__}: {exc.orig}",
                                        connector=connector) from None
            except Exception as exc:
                self._failures[key] = (time.monotonic(), exc)
                raise
            self._failures.pop(key, None)
            self._memory[key] = token
            return token

    async def invalidate(self, key: str, token: Token | str) -> bool:
        """Mark `token` expired if it is still the current one; True if it was.

        A refresh token kept in ``extra`` survives (the next fetch gets it as `previous`).
        """
        value = token.value if isinstance(token, Token) else token
        async with self._lock(key):
            current = self._memory.get(key)
            changed = False
            if current is not None and current.value == value and current.expires_at != 0.0:
                self._memory[key] = replace(current, expires_at=0.0)
                changed = True
            elif current is not None and current.value != value:
                return False  # already replaced by a newer token
            if self.engine is not None:
                changed = await asyncio.to_thread(self._db_invalidate, key, value) or changed
            return changed

    async def peek(self, key: str) -> Token | None:
        """The stored token without refreshing (memory first, then the database)."""
        token = self._memory.get(key)
        if token is None and self.engine is not None:
            row = await asyncio.to_thread(self._db_read, key)
            token = self._decode(row)
        return token

    def forget(self, key: str) -> None:
        """Drop this process's in-memory copy (the database row stays)."""
        self._memory.pop(key, None)
        self._failures.pop(key, None)

    # ------------------------------------------------------------------ shared refresh

    def _lock(self, key: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        locks = self._locks.get(loop)
        if locks is None:
            locks = self._locks[loop] = {}
        lock = locks.get(key)
        if lock is None:
            lock = locks[key] = asyncio.Lock()
        return lock

    async def _get_shared(self, key: str, fetch: Fetch, connector: str, previous: Token | None) -> Token:
        deadline = time.monotonic() + self.wait_timeout
        while True:
            row = await asyncio.to_thread(self._db_read, key)
            stored = self._decode(row)
            if self.is_fresh(stored):
                return stored  # type: ignore[return-value]
            if await asyncio.to_thread(self._db_try_lease, key, connector):
                try:
                    # another process may have stored a token between our read and the lease
                    stored = self._decode(await asyncio.to_thread(self._db_read, key)) or stored
                    if self.is_fresh(stored):
                        await asyncio.to_thread(self._db_release, key)
                        return stored  # type: ignore[return-value]
                    self.fetches += 1
                    token = await fetch(stored or previous)
                except BaseException:
                    await asyncio.shield(asyncio.to_thread(self._db_release, key))
                    raise
                await asyncio.to_thread(self._db_store, key, token)
                return token
            if time.monotonic() > deadline:
                raise Transient(f"timed out after {self.wait_timeout:g} s waiting for another worker to refresh a {connector} token",
                                connector=connector)
            await asyncio.sleep(self.poll_interval)

    def _decode(self, row: Any) -> Token | None:
        if row is None or row.token is None:
            return None
        try:
            return Token.from_bytes(self.keyring.decrypt(row.token), row.expires_at)  # type: ignore[union-attr]
        except (InvalidToken, ValueError, KeyError):
            return None  # encrypted with a key we no longer have: fetch a new one

    # ------------------------------------------------------------------ database (run in threads)

    @property
    def _table(self):  # noqa: ANN202
        from engine.store.tables import connector_tokens

        return connector_tokens

    def _db_read(self, key: str) -> Any:
        t = self._table
        with self.engine.connect() as conn:  # type: ignore[union-attr]
            return conn.execute(select(t.c.token, t.c.expires_at).where(t.c.key == key)).first()

    def _db_try_lease(self, key: str, connector: str) -> bool:
        t = self._table
        now = self.clock()
        values = {"lease_until": now + self.lease_seconds, "lease_owner": self.owner, "updated_at": now}
        with self.engine.begin() as conn:  # type: ignore[union-attr]
            taken = conn.execute(
                update(t).where(t.c.key == key, or_(t.c.lease_until.is_(None), t.c.lease_until < now)).values(**values)
            ).rowcount
        if taken == 1:
            return True
        try:
            with self.engine.begin() as conn:  # type: ignore[union-attr]
                conn.execute(insert(t).values(key=key, connector=connector[:64], token=None, expires_at=None, **values))
            return True
        except IntegrityError:
            return False  # the row exists and someone else holds its lease

    def _db_store(self, key: str, token: Token) -> None:
        t = self._table
        now = self.clock()
        with self.engine.begin() as conn:  # type: ignore[union-attr]
            conn.execute(update(t).where(t.c.key == key).values(
                token=self.keyring.encrypt(token.to_bytes()), expires_at=token.expires_at, updated_at=now))  # type: ignore[union-attr]
            conn.execute(update(t).where(t.c.key == key, t.c.lease_owner == self.owner).values(lease_until=None, lease_owner=None))

    def _db_release(self, key: str) -> None:
        t = self._table
        with self.engine.begin() as conn:  # type: ignore[union-attr]
            conn.execute(update(t).where(t.c.key == key, t.c.lease_owner == self.owner).values(lease_until=None, lease_owner=None))

    def _db_invalidate(self, key: str, value: str) -> bool:
        t = self._table
        with self.engine.begin() as conn:  # type: ignore[union-attr]
            row = conn.execute(select(t.c.token, t.c.expires_at).where(t.c.key == key)).first()
            stored = self._decode(row)
            if stored is None or stored.value != value or row.expires_at == 0.0:
                return False
            # conditional on the exact ciphertext read: a token stored meanwhile is left alone
            return conn.execute(update(t).where(t.c.key == key, t.c.token == row.token)
                                .values(expires_at=0.0, updated_at=self.clock())).rowcount == 1


_memory_cache: TokenCache | None = None


def memory_token_cache() -> TokenCache:
    """A process-local cache for auths used without a configured TokenCache."""
    global _memory_cache
    if _memory_cache is None:
        _memory_cache = TokenCache()
    return _memory_cache
