"""Schedules and polls of active flows, run by every `flowlink serve` process.

- **schedule** triggers (cron, 5 fields or 6 with seconds, in an IANA ``timezone``): each fire
  is claimed in the database before it runs. The row ``trigger_state["schedule:<flow id>"]``
  holds the last fired slot; a process advances it with a conditional UPDATE (``WHERE cursor =
  <what it read>``), so when several processes share a database exactly one of them wins each
  slot and runs it. A flow seen for the first time starts from "now" (no back-fill). Slots
  missed while no service was running (or while the flow was inactive) are **fired at most
  once** on start-up: the scheduler claims only the latest missed slot (``scheduled_at`` = that
  slot) and then goes on with the next future slot.
- **poll** triggers (``source`` = ``<connector>.<trigger>`` naming a PollTrigger): every
  ``interval`` seconds :func:`poll_once` fetches and compares with the cursor in
  ``trigger_state["poll:<flow id>"]`` (atomic across processes); the first poll only seeds it,
  later polls start one run per new item, the trigger payload being the item.

Runs go through :meth:`FlowEngine.run` in the flow's lane (``tracked`` by default for
schedules). With no ``PREFECT_API_URL`` Prefect starts a temporary server on first use
(10-15 s, blocking); the scheduler starts it in a worker thread first, so the event loop keeps
serving webhooks and the API meanwhile. Concurrent runs are bounded (``max_concurrent``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

import orjson
from croniter import croniter
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from connectors.sdk.triggers import PollTrigger, poll_once
from engine.model import Flow
from engine.runtime import FlowEngine
from engine.store.tables import trigger_state

log = logging.getLogger("flowlink.scheduler")


class PollContext:
    """What a PollTrigger's ``fetch(ctx, state)`` receives: the flow's trigger ``args``, the
    decrypted ``connection`` fields, the pooled ``http`` client and the connector's ``client``."""

    def __init__(self, flow_id: str, connector: Any, args: dict[str, Any], connection: dict[str, Any] | None,
                 connection_name: str | None, engine: FlowEngine) -> None:
        self.flow_id, self.connector, self.args = flow_id, connector, args
        self.connection, self.connection_name = connection, connection_name
        self.token_cache, self.rate_limiter = engine.token_cache, engine.rate_limiter
        self.log = lambda message: log.info("poll %s: %s", flow_id, message)
        self._client: Any = None

    @property
    def http(self) -> Any:
        from connectors.sdk.http import shared_client

        return shared_client()

    @property
    def client(self) -> Any:
        if self._client is None:
            from connectors.sdk.action import build_client

            self._client = build_client(self.connector, self.connection, connection_name=self.connection_name,
                                        token_cache=self.token_cache, rate_limiter=self.rate_limiter)
        return self._client


@dataclass
class _Schedule:
    flow: Flow
    cron: str
    zone: ZoneInfo
    next_at: float | None = None  # epoch of the next slot (None: read the stored state first)


@dataclass
class _Poll:
    flow: Flow
    trigger: PollTrigger
    connector: Any
    interval: float
    next_at: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def _warm_prefect() -> None:
    """Start Prefect's temporary server (blocking, 10-15 s) unless an API URL is configured."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    SubprocessASGIServer().start()


class Scheduler:
    """Fires the schedules and polls of active flows (see the module docstring)."""

    def __init__(self, engine: FlowEngine, *, clock: Callable[[], float] = time.time, tick: float = 1.0,
                 refresh: float = 10.0, max_concurrent: int | None = None) -> None:
        self.engine = engine
        self.db = engine.db
        self.clock = clock
        self.tick = tick
        self.refresh = refresh
        self.max_concurrent = max_concurrent or int(os.environ.get("FLOWLINK_SCHEDULER_CONCURRENCY", "16"))
        self.schedules: dict[str, _Schedule] = {}
        self.polls: dict[str, _Poll] = {}
        self.runs: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(self.max_concurrent)
        self._loaded_at = 0.0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._prefect: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        engine.flows.listeners.append(self._flow_changed)

    def _flow_changed(self, _flow_id: str) -> None:
        self._loaded_at = 0.0  # may be called from a worker thread: the loop reloads on its next tick

    # ------------------------------------------------------------------ active flows

    def _load(self) -> tuple[dict[str, _Schedule], dict[str, _Poll]]:
        schedules: dict[str, _Schedule] = {}
        polls: dict[str, _Poll] = {}
        for flow_id, definition in self.engine.flows.active_definitions():
            trigger = definition.get("trigger") or {}
            kind = trigger.get("type")
            if kind not in ("schedule", "poll"):
                continue
            try:
                flow = self.engine.compile(definition, check_connections=False)
                if kind == "schedule":
                    schedules[flow_id] = _Schedule(flow, trigger["cron"], ZoneInfo(trigger.get("timezone", "UTC")))
                else:
                    name, _, trigger_name = trigger["source"].partition(".")
                    connector = self.engine.registry.connectors[name]
                    poll = (getattr(connector, "triggers", {}) or {})[trigger_name]
                    if not isinstance(poll, PollTrigger):
                        raise ValueError(f"'{trigger['source']}' is not a poll trigger")
                    polls[flow_id] = _Poll(flow, poll, connector, float(trigger.get("interval", poll.interval)))
            except Exception:  # one broken flow must not stop the others
                log.exception("active %s flow %s cannot be scheduled", kind, flow_id)
        return schedules, polls

    async def _refresh(self) -> None:
        started = time.monotonic()
        schedules, polls = await asyncio.to_thread(self._load)
        for flow_id, entry in schedules.items():
            old = self.schedules.get(flow_id)
            if old is not None and old.cron == entry.cron and old.zone == entry.zone:
                entry.next_at = old.next_at
        for flow_id, entry in polls.items():
            old = self.polls.get(flow_id)
            if old is not None:
                entry.next_at, entry.task = old.next_at, old.task
        for flow_id, old in self.polls.items():
            if flow_id not in polls and old.task is not None:
                old.task.cancel()
        self.schedules, self.polls = schedules, polls
        self._loaded_at = started

    # ------------------------------------------------------------------ schedules

    def _next_slot(self, entry: _Schedule, after: float) -> float:
        moment = datetime.fromtimestamp(after, entry.zone)
        return croniter(entry.cron, moment).get_next(datetime).timestamp()

    def _latest_slot(self, entry: _Schedule, now: float) -> float:
        """The latest slot at or before `now`."""
        at = self._next_slot(entry, now - 1e-3)
        if at <= now:
            return at
        return croniter(entry.cron, datetime.fromtimestamp(now, entry.zone)).get_prev(datetime).timestamp()

    def _read_last(self, flow_id: str, now: float) -> float:
        """The last fired slot of a flow; a flow seen for the first time starts at `now`."""
        key = f"schedule:{flow_id}"
        with self.db.begin() as conn:
            cursor = conn.execute(select(trigger_state.c.cursor).where(trigger_state.c.key == key)).scalar()
            if cursor is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(trigger_state).values(key=key, cursor=orjson.dumps({"last": now}).decode(),
                                                                  seen=None, updated_at=time.time()))
                    return now
                except IntegrityError:  # another process created it first
                    cursor = conn.execute(select(trigger_state.c.cursor).where(trigger_state.c.key == key)).scalar()
        return float(orjson.loads(cursor)["last"])

    def _claim(self, flow_id: str, slot: float) -> bool:
        """Advance the flow's last fired slot to `slot`; True only for the one process that did."""
        key = f"schedule:{flow_id}"
        with self.db.begin() as conn:
            cursor = conn.execute(select(trigger_state.c.cursor).where(trigger_state.c.key == key)).scalar()
            if cursor is None or float(orjson.loads(cursor)["last"]) >= slot:
                return False
            changed = conn.execute(update(trigger_state).where(trigger_state.c.key == key, trigger_state.c.cursor == cursor)
                                   .values(cursor=orjson.dumps({"last": slot}).decode(), updated_at=time.time())).rowcount
        return changed == 1

    async def _due_schedules(self, now: float) -> None:
        for flow_id, entry in list(self.schedules.items()):
            try:
                if entry.next_at is None:
                    last = await asyncio.to_thread(self._read_last, flow_id, now)
                    entry.next_at = self._next_slot(entry, last)
                if entry.next_at > now:
                    continue
                slot = max(entry.next_at, self._latest_slot(entry, now))  # missed slots: only the latest fires
                entry.next_at = self._next_slot(entry, slot)
                if await asyncio.to_thread(self._claim, flow_id, slot):
                    scheduled = datetime.fromtimestamp(slot, entry.zone)
                    payload = {"scheduled_at": scheduled.isoformat(), "fired_at": datetime.fromtimestamp(now, timezone.utc).isoformat(),
                               "cron": entry.cron, "timezone": str(entry.zone)}
                    self._start(entry.flow, payload)
            except Exception:
                log.exception("schedule of flow %s failed", flow_id)

    # ------------------------------------------------------------------ polls

    async def _poll(self, flow_id: str, entry: _Poll) -> None:
        trigger = entry.flow.trigger
        try:
            connection = None
            if trigger.get("connection"):
                connection = await asyncio.to_thread(self.engine.connection_store.fields, trigger["connection"])
            ctx = PollContext(flow_id, entry.connector, dict(trigger.get("args") or {}), connection,
                              trigger.get("connection"), self.engine)
            items = await poll_once(entry.trigger, f"poll:{flow_id}", self.db, ctx)
            for item in items:
                self._start(entry.flow, item)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("poll of flow %s failed", flow_id)

    def _due_polls(self, now: float) -> None:
        for flow_id, entry in list(self.polls.items()):
            if entry.next_at > now or (entry.task is not None and not entry.task.done()):
                continue
            entry.next_at = now + entry.interval
            entry.task = asyncio.create_task(self._poll(flow_id, entry), name=f"poll-{flow_id}")

    # ------------------------------------------------------------------ runs

    def _start(self, flow: Flow, payload: Any) -> None:
        task = asyncio.create_task(self._run(flow, payload), name=f"scheduled-{flow.id}")
        self.runs.add(task)
        task.add_done_callback(self.runs.discard)

    async def _run(self, flow: Flow, payload: Any) -> None:
        async with self._slots:
            try:
                if flow.lane == "tracked":
                    await self._ensure_prefect()
                record = await self.engine.run(flow, payload)
                if record.status != "succeeded":
                    log.warning("scheduled run %s of %s ended %s", record.id, flow.id, record.status)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduled run of flow %s failed", flow.id)

    async def _ensure_prefect(self) -> None:
        if self._prefect is None:
            self._prefect = asyncio.create_task(asyncio.to_thread(_warm_prefect))
        await asyncio.shield(self._prefect)

    # ------------------------------------------------------------------ loop

    async def run_once(self) -> None:
        """One pass: reload the active flows when stale, fire what is due (tests call this)."""
        if not self._loaded_at or time.monotonic() - self._loaded_at > self.refresh:
            await self._refresh()
        now = self.clock()
        await self._due_schedules(now)
        self._due_polls(now)

    def _sleep_for(self) -> float:
        now = self.clock()
        upcoming = [e.next_at for e in self.schedules.values() if e.next_at is not None]
        upcoming += [e.next_at for e in self.polls.values()]
        return max(0.01, min([self.tick, *[at - now for at in upcoming]]))

    async def _loop(self) -> None:
        while not self._stopping:
            self.wake.clear()
            try:
                await self.run_once()
            except Exception:
                log.exception("scheduler pass failed")
            try:
                await asyncio.wait_for(self.wake.wait(), self._sleep_for())
            except asyncio.TimeoutError:
                pass

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop firing; let started runs finish (bounded), then cancel them."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        polls = [e.task for e in self.polls.values() if e.task is not None]
        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        if self.runs:
            await asyncio.wait(list(self.runs), timeout=grace)
        for task in list(self.runs):
            task.cancel()
        await asyncio.gather(*self.runs, return_exceptions=True)
        try:
            self.engine.flows.listeners.remove(self._flow_changed)
        except ValueError:
            pass
