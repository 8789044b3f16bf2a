"""Trigger declarations for connectors: webhooks, polling and schedules.

- :class:`WebhookTrigger`: the platform calls us. Hooks: ``verify`` (check the signature,
  raise to reject), ``handshake`` (answer URL-verification requests), ``parse`` (the
  events in a delivery), ``dedupe_key`` (drop re-deliveries, see :func:`receive_webhook`).
- :class:`PollTrigger`: we ask the platform for recent items (Activepieces-style).
  :func:`poll_once` keeps the cursor in ``trigger_state``; the first poll only seeds it
  (no replay of history); later polls return only new items. Two strategies share one
  dedupe helper (a bounded set of recently seen item keys):

  * ``TIME_BASED`` keeps the newest item time seen (the "last poll" watermark) and
    returns items at or after it whose key was not seen, so items sharing a timestamp
    are neither lost nor repeated;
  * ``LAST_ITEM`` expects items newest first, keeps the newest key, and returns the
    items before it (all of them if it vanished) that were not seen.

- :class:`ScheduleTrigger`: a cron expression in a time zone.

Every trigger carries ``sample`` data that the flow editor shows before a real event exists.
Attach triggers to a connector with :func:`add_trigger`, list them with :func:`triggers_of`.
"""
from __future__ import annotations

import asyncio
import enum
import hashlib
import inspect
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import sqlalchemy as sa
from croniter import croniter
from sqlalchemy import Engine

from connectors.sdk.ratelimit import locked_transaction, lock_row
from engine.errors import ConnectorError, InvalidInput, PermissionDenied
from engine.expressions import compile_expression
from engine.store.tables import trigger_state

Extractor = str | Callable[[Any], Any]
_MAX_STATE_KEY = 200


def _extractor(spec: Extractor | None) -> Callable[[Any], Any] | None:
    if spec is None or callable(spec):
        return spec
    expression = compile_expression(spec)
    return lambda value: expression.search(value)


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _state_key(key: str) -> str:
    if not key:
        raise ValueError("trigger state key must not be empty")
    if len(key) <= _MAX_STATE_KEY:
        return key
    return key[:160] + "~" + hashlib.sha256(key.encode()).hexdigest()[:32]


def content_key(item: Any) -> str:
    """The identity of an item without a declared key: a hash of its canonical JSON."""
    return hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:32]


def dedupe(keys: Iterable[str], seen: Iterable[str], limit: int) -> tuple[list[str], list[str]]:
    """The shared dedupe helper: (keys not in `seen` nor repeated, the new bounded seen list).

    The seen list keeps the most recent keys first: `keys` (in order), then the old ones,
    at most `limit` of them.
    """
    old = list(seen)
    known = set(old)
    fresh: list[str] = []
    for key in keys:
        if key not in known:
            known.add(key)
            fresh.append(key)
    merged = list(dict.fromkeys([*keys, *old]))
    return fresh, merged[:limit]


def _to_time(value: Any) -> float:
    """Epoch seconds from a number, a datetime, or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a time")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    raise TypeError(f"cannot read a time from {type(value).__name__}")


def _manifest(trigger: Any, **extra: Any) -> dict[str, Any]:
    """A trigger's entry in its connector's manifest (see ``schemas/connector.schema.json``)."""
    entry: dict[str, Any] = {"kind": trigger.kind, "title": dict(trigger.title) or {"en": trigger.name}}
    if trigger.description:
        entry["description"] = trigger.description
    schema = getattr(trigger, "output_schema", None)
    if schema is not None:
        entry["output_schema"] = schema if isinstance(schema, dict) else schema.model_json_schema()
    entry["sample"] = trigger.sample
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


# --------------------------------------------------------------------------- webhooks
@dataclass
class RequestInfo:
    """An incoming webhook request as trigger hooks see it (header names lower-cased)."""

    method: str = "POST"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    connection: dict[str, Any] | None = None  # decrypted connection fields (signing secrets ...)
    config: dict[str, Any] = field(default_factory=dict)  # the flow trigger's `config`

    def __post_init__(self) -> None:
        self.headers = {k.lower(): v for k, v in self.headers.items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (None when empty); InvalidInput when it is not JSON."""
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"webhook body is not JSON: {exc}") from None


@dataclass
class WebhookResponse:
    """What to answer the platform (a handshake's challenge, or the acknowledgement)."""

    status: int = 200
    body: Any = None  # str/bytes are sent as is, anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)


class WebhookRejected(PermissionDenied):
    """A delivery failed verification (bad signature, stale timestamp, wrong token ...)."""


@dataclass
class WebhookResult:
    """The answer to send and the events (each starts one run) of one delivery."""

    response: WebhookResponse
    events: list[Any]
    handshake: bool = False
    duplicates: int = 0


@dataclass
class WebhookTrigger:
    """The platform pushes events to our URL.

    Hooks take a :class:`RequestInfo` and may be sync or async: ``verify`` returns None or
    raises (any exception rejects the delivery); ``handshake`` returns a response for a
    URL-verification request, else None; ``parse`` returns the events (default: the JSON
    body as one event). ``verify`` runs first, so handshakes are verified too.

    Two hooks shape the answer: ``ack(request, events)`` the acknowledgement of a delivery,
    sent once its events are committed (default JSON ``{"ok": true}``), and
    ``reply(request, output)`` a passive reply built from the run's output when the flow
    asks to answer (``respond: last``); None from ``reply`` falls back to ``ack``.
    """

    name: str
    title: dict[str, str]
    sample: Any
    description: str = ""
    verify: Callable[[RequestInfo], Any] | None = None
    handshake: Callable[[RequestInfo], Any] | None = None
    parse: Callable[[RequestInfo], Any] | None = None
    dedupe_key: Extractor | None = None
    seen_limit: int = 1000
    output_schema: dict[str, Any] | None = None
    ack: Callable[[RequestInfo, list[Any]], Any] | None = None
    reply: Callable[[RequestInfo, Any], Any] | None = None
    kind: ClassVar[str] = "webhook"

    def __post_init__(self) -> None:
        self._dedupe_key = _extractor(self.dedupe_key)

    async def ack_response(self, request: RequestInfo, events: list[Any]) -> WebhookResponse:
        """The acknowledgement of a delivery whose events were accepted."""
        if self.ack is None:
            return WebhookResponse(body={"ok": True})
        return _as_response(await _call(self.ack, request, events))

    async def reply_response(self, request: RequestInfo, output: Any) -> WebhookResponse | None:
        """The passive reply built from a run's output (None: the trigger has none)."""
        if self.reply is None:
            return None
        answer = await _call(self.reply, request, output)
        return None if answer is None else _as_response(answer)

    def manifest(self) -> dict[str, Any]:
        """The manifest entry: kind, title, description, output schema and sample."""
        return _manifest(self)

    def event_key(self, event: Any) -> str | None:
        """The dedupe key of an event (None when the trigger declares none or it is missing)."""
        if self._dedupe_key is None:
            return None
        value = self._dedupe_key(event)
        return None if value is None else str(value)

    async def handle(self, request: RequestInfo) -> WebhookResult:
        """Verify, answer a handshake, or parse the events of one delivery."""
        if self.verify is not None:
            try:
                await _call(self.verify, request)
            except WebhookRejected:
                raise
            except Exception as exc:
                raise WebhookRejected(f"webhook '{self.name}' rejected: {exc}") from exc
        if self.handshake is not None:
            answer = await _call(self.handshake, request)
            if answer is not None:
                return WebhookResult(response=_as_response(answer), events=[], handshake=True)
        events = await _call(self.parse, request) if self.parse is not None else request.json()
        if events is None:
            events = []
        elif not isinstance(events, list):
            events = [events]
        return WebhookResult(response=await self.ack_response(request, events), events=events)


def _as_response(answer: Any) -> WebhookResponse:
    return answer if isinstance(answer, WebhookResponse) else WebhookResponse(body=answer)


async def receive_webhook(
    trigger: WebhookTrigger,
    request: RequestInfo,
    *,
    engine: Engine | None = None,
    store_key: str | None = None,
) -> WebhookResult:
    """:meth:`WebhookTrigger.handle`, then, given a database and a key, drop events whose
    `dedupe_key` was seen recently (platforms re-deliver on timeouts)."""
    result = await trigger.handle(request)
    if engine is None or store_key is None or trigger.dedupe_key is None or not result.events:
        return result
    keyed = [(trigger.event_key(e), e) for e in result.events]
    keys = [k for k, _ in keyed if k is not None]
    fresh = set(await asyncio.to_thread(_remember, engine, store_key, keys, trigger.seen_limit))
    events = []
    for key, event in keyed:
        if key is None:
            events.append(event)
        elif key in fresh:
            fresh.discard(key)  # a key repeated within one delivery counts once
            events.append(event)
    return WebhookResult(result.response, events, duplicates=len(result.events) - len(events))


def _remember(engine: Engine, store_key: str, keys: list[str], limit: int) -> list[str]:
    with locked_transaction(engine) as conn:
        key = _state_key(store_key)
        row = lock_row(conn, trigger_state, key, {"cursor": None, "seen": None, "updated_at": time.time()})
        fresh, seen = dedupe(keys, orjson.loads(row.seen) if row.seen else [], limit)
        conn.execute(
            trigger_state.update().where(trigger_state.c.key == key)
            .values(cursor=row.cursor or '{"kind":"webhook"}', seen=orjson.dumps(seen).decode(), updated_at=time.time())
        )
        return fresh


# --------------------------------------------------------------------------- polling
class PollStrategy(str, enum.Enum):
    """How a poll trigger tells new items from old ones."""

    TIME_BASED = "time_based"
    LAST_ITEM = "last_item"


TIME_BASED = PollStrategy.TIME_BASED
LAST_ITEM = PollStrategy.LAST_ITEM


@dataclass(frozen=True)
class PollState:
    """What ``fetch`` may use to ask only for recent items (e.g. ``since=state.last_time``)."""

    seeded: bool = False
    last_time: float | None = None  # TIME_BASED: the newest item time seen
    last_key: str | None = None  # LAST_ITEM: the key of the newest item seen
    seen: tuple[str, ...] = ()


@dataclass
class PollTrigger:
    """We fetch recent items every `interval` seconds; :func:`poll_once` yields the new ones.

    ``fetch(ctx, state)`` (sync or async) returns a list of items: newest first for
    ``LAST_ITEM``, any order for ``TIME_BASED``. ``item_key`` (JMESPath or callable) gives
    an item's identity (default: a hash of its content); ``item_time`` its time (epoch
    number, ISO 8601 string or datetime), required for ``TIME_BASED``.
    """

    name: str
    title: dict[str, str]
    sample: Any
    fetch: Callable[[Any, PollState], Any]
    strategy: PollStrategy = PollStrategy.LAST_ITEM
    item_key: Extractor | None = None
    item_time: Extractor | None = None
    description: str = ""
    interval: float = 300.0
    seen_limit: int = 500
    output_schema: dict[str, Any] | None = None
    kind: ClassVar[str] = "poll"

    def __post_init__(self) -> None:
        self.strategy = PollStrategy(self.strategy)
        if self.strategy is PollStrategy.TIME_BASED and self.item_time is None:
            raise ValueError(f"poll trigger '{self.name}': TIME_BASED needs item_time")
        if self.seen_limit < 1:
            raise ValueError("seen_limit must be at least 1")
        self._key = _extractor(self.item_key)
        self._time = _extractor(self.item_time)

    def manifest(self) -> dict[str, Any]:
        """The manifest entry: kind, title, description, output schema, sample, strategy, interval."""
        return _manifest(self, strategy=self.strategy.value, interval=self.interval)

    def key_of(self, item: Any) -> str:
        """The identity of an item."""
        if self._key is None:
            return content_key(item)
        value = self._key(item)
        if value is None:
            raise ConnectorError(f"poll trigger '{self.name}': an item has no key ({self.item_key!r})")
        return str(value)

    def time_of(self, item: Any) -> float:
        """The time of an item in epoch units (TIME_BASED)."""
        assert self._time is not None
        value = self._time(item)
        try:
            return _to_time(value)
        except (TypeError, ValueError) as exc:
            raise ConnectorError(f"poll trigger '{self.name}': item time {value!r} is not a time ({exc})") from None


def _read_state(raw_cursor: str | None, raw_seen: str | None, strategy: PollStrategy) -> PollState:
    if not raw_cursor:
        return PollState()
    cursor = orjson.loads(raw_cursor)
    if cursor.get("strategy") != strategy.value:  # the trigger changed strategy: start over
        return PollState()
    return PollState(
        seeded=True,
        last_time=cursor.get("time"),
        last_key=cursor.get("last_key"),
        seen=tuple(orjson.loads(raw_seen) if raw_seen else ()),
    )


def load_poll_state(engine: Engine, trigger: PollTrigger, store_key: str) -> PollState:
    """The stored state of a poll trigger (unseeded when none)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(trigger_state).where(trigger_state.c.key == _state_key(store_key))).first()
    return _read_state(row.cursor, row.seen, trigger.strategy) if row else PollState()


async def poll_once(trigger: PollTrigger, store_key: str, engine: Engine, ctx: Any = None) -> list[Any]:
    """Fetch, compare with the stored state, save the new state; return the new items, oldest first.

    The first poll only seeds the state and returns []. The fetch runs without holding a
    lock; the comparison and the save run in one transaction holding the state row locked
    (``FOR UPDATE`` / SQLite ``BEGIN IMMEDIATE``) against the *current* state, so two
    processes polling the same trigger at once never both return an item.
    """
    state = await asyncio.to_thread(load_poll_state, engine, trigger, store_key)
    fetched = await _call(trigger.fetch, ctx, state)
    items = list(fetched or [])
    entries = [
        (item, trigger.key_of(item), trigger.time_of(item) if trigger.strategy is PollStrategy.TIME_BASED else None)
        for item in items
    ]
    return await asyncio.to_thread(_commit_poll, engine, trigger, store_key, entries)


def _commit_poll(engine: Engine, trigger: PollTrigger, store_key: str, entries: list[tuple[Any, str, float | None]]) -> list[Any]:
    key = _state_key(store_key)
    with locked_transaction(engine) as conn:
        row = lock_row(conn, trigger_state, key, {"cursor": None, "seen": None, "updated_at": time.time()})
        state = _read_state(row.cursor, row.seen, trigger.strategy)
        if trigger.strategy is PollStrategy.TIME_BASED:
            new, cursor, seen = _time_based(trigger, state, entries)
        else:
            new, cursor, seen = _last_item(trigger, state, entries)
        conn.execute(
            trigger_state.update().where(trigger_state.c.key == key).values(
                cursor=orjson.dumps({"strategy": trigger.strategy.value, **cursor}).decode(),
                seen=orjson.dumps(seen).decode(),
                updated_at=time.time(),
            )
        )
    return new if state.seeded else []


def _time_based(trigger: PollTrigger, state: PollState, entries: list) -> tuple[list, dict, list[str]]:
    times = [t for _, _, t in entries]
    newest = max([t for t in (state.last_time, *times) if t is not None], default=None)
    if not state.seeded:
        at_newest = [k for _, k, t in entries if t == newest]
        return [], {"time": newest}, dedupe(at_newest, (), trigger.seen_limit)[1]
    since = state.last_time
    candidates = [e for e in entries if since is None or e[2] >= since]
    candidates.sort(key=lambda e: e[2])  # oldest first
    fresh, _ = dedupe([k for _, k, _ in candidates], state.seen, trigger.seen_limit)
    fresh_set = set(fresh)
    new = []
    for item, k, _ in candidates:
        if k in fresh_set:
            fresh_set.discard(k)
            new.append(item)
    # keys at the newest time first: they are the ones a later poll may see again
    ordered = sorted(candidates, key=lambda e: -e[2])
    _, seen = dedupe([k for _, k, _ in ordered], state.seen if newest == since else (), trigger.seen_limit)
    return new, {"time": newest}, seen


def _last_item(trigger: PollTrigger, state: PollState, entries: list) -> tuple[list, dict, list[str]]:
    keys = [k for _, k, _ in entries]
    if not state.seeded:
        return [], {"last_key": keys[0] if keys else None}, dedupe(keys, (), trigger.seen_limit)[1]
    before = entries[: keys.index(state.last_key)] if state.last_key in keys else entries
    fresh, _ = dedupe([k for _, k, _ in before], state.seen, trigger.seen_limit)
    fresh_set = set(fresh)
    new = []
    for item, k, _ in before:
        if k in fresh_set:
            fresh_set.discard(k)
            new.append((item, k))
    _, seen = dedupe(keys, state.seen, trigger.seen_limit)
    last_key = new[0][1] if new else state.last_key
    return [item for item, _ in reversed(new)], {"last_key": last_key}, seen


# --------------------------------------------------------------------------- schedules
@dataclass
class ScheduleTrigger:
    """Runs on a cron schedule (5 fields, or 6 with seconds) in the time zone `tz`."""

    cron: str
    tz: str = "UTC"
    name: str = "schedule"
    title: dict[str, str] = field(default_factory=lambda: {"en": "On a schedule", "zh": "定时触发"})
    sample: Any = None
    description: str = ""
    kind: ClassVar[str] = "schedule"

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.cron):
            raise ValueError(f"invalid cron expression '{self.cron}'")
        try:
            self.zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{self.tz}'") from None
        if self.sample is None:
            at = self.next_after(datetime(2026, 1, 1, tzinfo=self.zone))
            self.sample = {"scheduled_at": at.isoformat(), "cron": self.cron, "tz": self.tz}

    def manifest(self) -> dict[str, Any]:
        """The manifest entry: kind, title, description, sample, cron and time zone."""
        return _manifest(self, cron=self.cron, tz=self.tz)

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (aware, in the trigger's zone)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return croniter(self.cron, moment.astimezone(self.zone)).get_next(datetime)

    def upcoming(self, moment: datetime, count: int = 5) -> list[datetime]:
        """The next `count` fire times after `moment` (for the editor's preview)."""
        out, at = [], moment
        for _ in range(count):
            at = self.next_after(at)
            out.append(at)
        return out


# --------------------------------------------------------------------------- registration
Trigger = WebhookTrigger | PollTrigger | ScheduleTrigger


def triggers_of(connector: Any) -> dict[str, Trigger]:
    """The triggers declared on a connector (name -> trigger)."""
    found = getattr(connector, "triggers", None)
    if found is None:
        found = {}
        setattr(connector, "triggers", found)
    return found


def add_trigger(connector: Any, trigger: Trigger) -> Trigger:
    """Declare `trigger` on `connector` (a later one with the same name replaces it)."""
    if trigger.sample is None:
        raise ValueError(f"trigger '{trigger.name}' needs sample data for the editor")
    triggers_of(connector)[trigger.name] = trigger
    return trigger
