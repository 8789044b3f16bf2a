"""Trigger declarations and the poll runner on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import datetime, timezone

import orjson
import pytest
import sqlalchemy as sa

from connectors.sdk import Connector
from connectors.sdk.triggers import (
    LAST_ITEM,
    TIME_BASED,
    PollState,
    PollTrigger,
    RequestInfo,
    ScheduleTrigger,
    WebhookRejected,
    WebhookResponse,
    WebhookTrigger,
    add_trigger,
    dedupe,
    load_poll_state,
    poll_once,
    receive_webhook,
    triggers_of,
)
from engine.errors import ConnectorError
from engine.store.db import make_engine, migrate
from engine.store.tables import trigger_state


@pytest.fixture()
def db(database_url: str):
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


class Source:
    """A fake platform list endpoint: records newest first, as most list APIs answer."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.states: list[PollState] = []
        self.delay = 0.0

    def add(self, rid: str, at: float | str = 0) -> None:
        self.records.insert(0, {"id": rid, "created": at})

    async def fetch(self, ctx, state: PollState) -> list[dict]:  # noqa: ANN001
        self.states.append(state)
        records = list(self.records)
        if self.delay:
            await asyncio.sleep(self.delay)
        return records


def ids(items: list[dict]) -> list[str]:
    return [i["id"] for i in items]


async def test_last_item_first_poll_seeds_then_only_new_items(db) -> None:
    src = Source()
    for rid in ("a", "b", "c"):
        src.add(rid)
    trigger = PollTrigger(name="new_order", title={"en": "New order"}, sample={"id": "o1"}, fetch=src.fetch, strategy=LAST_ITEM, item_key="id")

    assert await poll_once(trigger, "flow-1:new_order", db) == []  # no history replay
    assert await poll_once(trigger, "flow-1:new_order", db) == []
    src.add("d")
    src.add("e")
    assert ids(await poll_once(trigger, "flow-1:new_order", db)) == ["d", "e"]  # oldest first
    assert await poll_once(trigger, "flow-1:new_order", db) == []

    src.records = [r for r in src.records if r["id"] != "e"]  # the newest seen item was deleted
    src.add("f")
    assert ids(await poll_once(trigger, "flow-1:new_order", db)) == ["f"]  # the seen set stops a replay of a..d

    state = load_poll_state(db, trigger, "flow-1:new_order")
    assert state.seeded and state.last_key == "f" and {"a", "b", "c", "d", "e", "f"} <= set(state.seen)
    assert src.states[0] == PollState() and src.states[-1].last_key == "e"
    with db.connect() as conn:
        row = conn.execute(sa.select(trigger_state).where(trigger_state.c.key == "flow-1:new_order")).one()
    assert orjson.loads(row.cursor) == {"strategy": "last_item", "last_key": "f"}


async def test_time_based_keeps_the_newest_time_and_dedupes_shared_timestamps(db) -> None:
    src = Source()
    src.add("a", 100)
    src.add("b", 100)
    trigger = PollTrigger(name="updated", title={"en": "Updated"}, sample={}, fetch=src.fetch, strategy=TIME_BASED, item_key="id", item_time="created")

    assert await poll_once(trigger, "k", db) == []
    assert load_poll_state(db, trigger, "k").last_time == 100
    src.add("c", 100)  # same second as the watermark, arrived after the poll: not lost
    assert ids(await poll_once(trigger, "k", db)) == ["c"]
    src.add("e", 102)
    src.add("d", 101)
    assert ids(await poll_once(trigger, "k", db)) == ["d", "e"]  # sorted by time
    assert await poll_once(trigger, "k", db) == []
    src.add("late", 50)  # older than the watermark: ignored
    src.add("f", 102)
    assert ids(await poll_once(trigger, "k", db)) == ["f"]
    assert src.states[-1].last_time == 102


async def test_time_based_reads_iso_times_and_first_poll_without_items(db) -> None:
    src = Source()
    trigger = PollTrigger(name="t", title={"en": "T"}, sample={}, fetch=src.fetch, strategy="time_based", item_key="id", item_time="created")
    assert await poll_once(trigger, "iso", db) == []  # seeds an empty state
    src.add("a", "2026-03-01T08:00:00Z")
    src.add("b", "2026-03-01T16:00:01+08:00")
    assert ids(await poll_once(trigger, "iso", db)) == ["a", "b"]
    assert load_poll_state(db, trigger, "iso").last_time == datetime(2026, 3, 1, 8, 0, 1, tzinfo=timezone.utc).timestamp()
    src.add("bad", "yesterday")
    with pytest.raises(ConnectorError, match="not a time"):
        await poll_once(trigger, "iso", db)


async def test_a_failing_fetch_stores_nothing(db) -> None:
    async def fetch(ctx, state):  # noqa: ANN001
        raise ConnectorError("platform down")

    trigger = PollTrigger(name="t", title={"en": "T"}, sample={}, fetch=fetch)
    with pytest.raises(ConnectorError):
        await poll_once(trigger, "down", db)
    assert not load_poll_state(db, trigger, "down").seeded


async def test_items_without_declared_keys_use_their_content_and_sync_fetch_works(db) -> None:
    rows = [{"n": 1}]
    trigger = PollTrigger(name="t", title={"en": "T"}, sample={"n": 0}, fetch=lambda ctx, state: list(rows), strategy=LAST_ITEM)
    assert await poll_once(trigger, "content", db, ctx=object()) == []
    rows.insert(0, {"n": 2})
    assert await poll_once(trigger, "content", db) == [{"n": 2}]
    long_key = "flow:" + "x" * 300
    assert await poll_once(trigger, long_key, db) == []
    rows.insert(0, {"n": 3})
    assert await poll_once(trigger, long_key, db) == [{"n": 3}]


@pytest.mark.parametrize("strategy", [LAST_ITEM, TIME_BASED])
async def test_two_pollers_at_once_never_return_an_item_twice(database_url, strategy) -> None:
    engines = [make_engine(database_url), make_engine(database_url)]  # two pools: two "processes"
    migrate(engines[0])
    src = Source()
    src.delay = 0.01
    clock = iter(range(1000))
    for _ in range(3):
        src.add(f"old{next(clock)}", 1000)
    trigger = PollTrigger(name="t", title={"en": "T"}, sample={}, fetch=src.fetch, strategy=strategy, item_key="id", item_time="created")

    seeded = await asyncio.gather(*(poll_once(trigger, "shared", e) for e in engines))
    assert seeded == [[], []]
    delivered: list[str] = []
    added: list[str] = []
    for round_ in range(12):
        for _ in range(round_ % 3):
            rid = f"r{next(clock)}"
            src.add(rid, 1000 + round_ // 2)  # several items share a timestamp
            added.append(rid)
        results = await asyncio.gather(*(poll_once(trigger, "shared", e) for e in engines))
        for items in results:
            delivered.extend(ids(items))
    delivered.extend(ids(await poll_once(trigger, "shared", engines[0])))
    for engine in engines:
        engine.dispose()
    assert sorted(delivered) == sorted(added)  # every new item once, none twice, no history
    assert len(delivered) == len(set(delivered))


def test_declarations_validate() -> None:
    with pytest.raises(ValueError, match="needs item_time"):
        PollTrigger(name="t", title={}, sample={}, fetch=lambda c, s: [], strategy=TIME_BASED)
    with pytest.raises(ValueError):
        PollTrigger(name="t", title={}, sample={}, fetch=lambda c, s: [], strategy="sometimes")
    with pytest.raises(ValueError, match="invalid cron"):
        ScheduleTrigger(cron="61 * * * *")
    with pytest.raises(ValueError, match="time zone"):
        ScheduleTrigger(cron="0 9 * * *", tz="Mars/Olympus")


def test_schedule_trigger_in_a_time_zone() -> None:
    trigger = ScheduleTrigger(cron="0 9 * * 1-5", tz="Asia/Shanghai")
    after = datetime(2026, 3, 6, 2, 0, tzinfo=timezone.utc)  # Friday 10:00 in Shanghai
    nxt = trigger.next_after(after)
    assert nxt.isoformat() == "2026-03-09T09:00:00+08:00"  # the following Monday
    assert [d.day for d in trigger.upcoming(after, 3)] == [9, 10, 11]
    assert trigger.sample["scheduled_at"] == "2026-01-01T09:00:00+08:00"


def _signed(secret: str, body: bytes, **headers: str) -> RequestInfo:
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return RequestInfo(headers={"X-Signature": sig, **headers}, body=body, connection={"secret": secret})


def _verify(request: RequestInfo) -> None:
    expected = hmac.new(request.connection["secret"].encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.header("x-signature") or ""):
        raise ValueError("bad signature")


def _handshake(request: RequestInfo):  # noqa: ANN202
    body = request.json()
    if body.get("type") == "url_verification":
        return {"challenge": body["challenge"]}
    return None


def _webhook() -> WebhookTrigger:
    return WebhookTrigger(
        name="message",
        title={"en": "New message", "zh": "新消息"},
        sample={"event_id": "ev1", "text": "hello"},
        verify=_verify,
        handshake=_handshake,
        parse=lambda request: request.json()["events"],
        dedupe_key="event_id",
    )


async def test_webhook_verify_handshake_and_parse() -> None:
    trigger = _webhook()
    body = orjson.dumps({"type": "url_verification", "challenge": "xyz"})
    result = await trigger.handle(_signed("s3cret", body))
    assert result.handshake and result.events == [] and result.response == WebhookResponse(body={"challenge": "xyz"})

    body = orjson.dumps({"type": "event", "events": [{"event_id": "1"}, {"event_id": "2"}]})
    result = await trigger.handle(_signed("s3cret", body))
    assert not result.handshake and result.events == [{"event_id": "1"}, {"event_id": "2"}]

    forged = _signed("s3cret", body)
    forged.connection = {"secret": "other"}
    with pytest.raises(WebhookRejected, match="bad signature") as info:
        await trigger.handle(forged)
    assert info.value.kind == "PermissionDenied"

    plain = WebhookTrigger(name="raw", title={"en": "Raw"}, sample={})
    assert (await plain.handle(RequestInfo(body=b'{"a": 1}'))).events == [{"a": 1}]
    assert (await plain.handle(RequestInfo(body=b""))).events == []


async def test_webhook_redeliveries_are_dropped(db) -> None:
    trigger = _webhook()

    def delivery(*event_ids: str) -> RequestInfo:
        return _signed("s3cret", orjson.dumps({"events": [{"event_id": e} for e in event_ids]}))

    first = await receive_webhook(trigger, delivery("1", "2", "2"), engine=db, store_key="flow-9:message")
    assert first.events == [{"event_id": "1"}, {"event_id": "2"}] and first.duplicates == 1
    again = await receive_webhook(trigger, delivery("2", "3"), engine=db, store_key="flow-9:message")
    assert again.events == [{"event_id": "3"}] and again.duplicates == 1
    other_flow = await receive_webhook(trigger, delivery("2"), engine=db, store_key="flow-10:message")
    assert other_flow.events == [{"event_id": "2"}]


def test_dedupe_helper_is_bounded() -> None:
    fresh, seen = dedupe(["c", "b", "c"], ["b", "a"], limit=3)
    assert fresh == ["c"] and seen == ["c", "b", "a"]
    assert dedupe(["d"], seen, limit=3) == (["d"], ["d", "c", "b"])


def test_triggers_attach_to_a_connector_with_samples() -> None:
    connector = Connector(name="demo", version="1.0.0", title={"en": "Demo"})
    hook = add_trigger(connector, _webhook())
    poll = add_trigger(connector, PollTrigger(name="new_row", title={"en": "New row"}, sample={"id": 1}, fetch=lambda c, s: []))
    schedule = add_trigger(connector, ScheduleTrigger(cron="*/5 * * * *"))
    assert triggers_of(connector) == {"message": hook, "new_row": poll, "schedule": schedule}
    assert [t.kind for t in triggers_of(connector).values()] == ["webhook", "poll", "schedule"]
    assert all(t.sample is not None for t in triggers_of(connector).values())
    with pytest.raises(ValueError, match="sample"):
        add_trigger(connector, WebhookTrigger(name="x", title={}, sample=None))


def test_trigger_manifests_carry_samples_and_validate() -> None:
    from connectors.sdk.manifest import validate_manifest

    connector = Connector(name="demo", version="1.0.0", title={"en": "Demo"})
    add_trigger(connector, _webhook())
    add_trigger(connector, PollTrigger(
        name="new_row", title={"en": "New row"}, sample={"id": 1}, fetch=lambda c, s: [],
        strategy=TIME_BASED, item_time="t", interval=60, output_schema={"type": "object"},
    ))
    add_trigger(connector, ScheduleTrigger(cron="0 9 * * *", tz="Asia/Shanghai"))
    manifest = connector.manifest()
    assert manifest["triggers"]["message"] == {
        "kind": "webhook", "title": {"en": "New message", "zh": "新消息"}, "sample": {"event_id": "ev1", "text": "hello"},
    }
    assert manifest["triggers"]["new_row"]["strategy"] == "time_based"
    assert manifest["triggers"]["new_row"]["interval"] == 60
    assert manifest["triggers"]["schedule"]["cron"] == "0 9 * * *"
    assert validate_manifest(manifest) == []
