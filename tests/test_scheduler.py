"""Schedules and polls of active flows (api/scheduler.py)."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from api.scheduler import Scheduler
from connectors.core import connector as core_connector
from connectors.sdk import Connector, ConnectorRegistry
from connectors.sdk.triggers import LAST_ITEM, PollTrigger, add_trigger
from engine.runtime import FlowEngine


def _schedule_flow(cron: str, tz: str = "UTC", lane: str = "event", flow_id: str = "tick") -> dict:
    return {
        "id": flow_id, "name": "scheduled",
        "trigger": {"type": "schedule", "cron": cron, "timezone": tz},
        "execution": {"lane": lane},
        "steps": [{"id": "out", "type": "set", "value": {"$expr": "trigger"}}],
    }


def _activate(engine: FlowEngine, definition: dict) -> None:
    engine.flows.save(definition, "test")
    engine.flows.set_active(definition["id"], True, "test")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


async def _settle(*schedulers: Scheduler) -> None:
    for scheduler in schedulers:
        polls = [e.task for e in scheduler.polls.values() if e.task is not None]
        await asyncio.gather(*polls)
        while scheduler.runs:
            await asyncio.gather(*list(scheduler.runs))
        scheduler.engine.flush()


def _outputs(engine: FlowEngine, flow_id: str) -> list:
    records = [engine.runs.get(r.id) for r in engine.runs.list(flow_id=flow_id, limit=500)]
    assert all(r.status == "succeeded" for r in records), [r.error for r in records]
    return sorted((r.output for r in records), key=lambda o: str(o.get("scheduled_at", o)) if isinstance(o, dict) else str(o))


async def test_schedule_fires_on_time_in_its_time_zone(flow_engine: FlowEngine) -> None:
    _activate(flow_engine, _schedule_flow("30 9 * * *", "Asia/Shanghai"))
    clock = Clock(datetime(2026, 3, 1, 1, 29, tzinfo=timezone.utc))  # 09:29 in Shanghai
    scheduler = Scheduler(flow_engine, clock=clock)
    await scheduler.run_once()
    clock.now += 59.5  # 09:29:59.5
    await scheduler.run_once()
    await _settle(scheduler)
    assert _outputs(flow_engine, "tick") == []
    clock.now += 0.6  # 09:30:00.1 Shanghai = 01:30:00.1 UTC
    await scheduler.run_once()
    await scheduler.run_once()
    await _settle(scheduler)
    [out] = _outputs(flow_engine, "tick")
    assert out["scheduled_at"] == "2026-03-01T09:30:00+08:00"
    assert out["timezone"] == "Asia/Shanghai" and out["cron"] == "30 9 * * *"
    assert scheduler.schedules["tick"].next_at == datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc).timestamp()


async def test_per_second_cron_fires_each_second_in_real_time(flow_engine: FlowEngine) -> None:
    _activate(flow_engine, _schedule_flow("* * * * * *", "Europe/Berlin"))  # 6 fields: seconds last
    scheduler = Scheduler(flow_engine, tick=0.2)
    await scheduler.start()
    await asyncio.sleep(3.3)
    await scheduler.stop()
    flow_engine.flush()
    outs = _outputs(flow_engine, "tick")
    assert 2 <= len(outs) <= 4
    slots = [datetime.fromisoformat(o["scheduled_at"]) for o in outs]
    assert all(s.microsecond == 0 and s.utcoffset() is not None for s in slots)
    assert len(set(slots)) == len(slots)
    for out, slot in zip(outs, slots):
        late = datetime.fromisoformat(out["fired_at"]) - slot
        assert 0 <= late.total_seconds() < 0.5


async def test_missed_fires_run_once_on_start_up(flow_engine: FlowEngine) -> None:
    _activate(flow_engine, _schedule_flow("*/5 * * * *"))
    clock = Clock(datetime(2026, 5, 1, 8, 1, tzinfo=timezone.utc))
    first = Scheduler(flow_engine, clock=clock)
    await first.run_once()  # a new flow starts from now: nothing is back-filled
    await first.stop()
    clock.now += 3600  # down for an hour: 12 slots missed
    second = Scheduler(flow_engine, clock=clock)
    await second.run_once()
    await second.run_once()
    await _settle(second)
    [out] = _outputs(flow_engine, "tick")
    assert out["scheduled_at"] == "2026-05-01T09:00:00+00:00"  # the latest missed slot
    clock.now += 240  # 09:05 next
    await second.run_once()
    await _settle(second)
    assert len(_outputs(flow_engine, "tick")) == 2
    await second.stop()


async def test_two_processes_fire_each_slot_once(database_url: str) -> None:
    engines = [FlowEngine(database_url), FlowEngine(database_url)]
    try:
        _activate(engines[0], _schedule_flow("* * * * * */2"))  # every two seconds
        clock = Clock(datetime(2026, 7, 1, 12, 0, 0, 300000, tzinfo=timezone.utc))
        schedulers = [Scheduler(e, clock=clock) for e in engines]
        for _ in range(21):  # 10 seconds in steps of 0.5 s, both processes racing each step
            await asyncio.gather(*(s.run_once() for s in schedulers))
            clock.now += 0.5
        await _settle(*schedulers)
        outs = _outputs(engines[0], "tick")
        slots = [o["scheduled_at"] for o in outs]
        assert len(slots) == len(set(slots)) == 5, slots
        assert slots[0] == "2026-07-01T12:00:02+00:00" and slots[-1] == "2026-07-01T12:00:10+00:00"
        for s in schedulers:
            await s.stop()
    finally:
        for e in engines:
            e.close()


class Source:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.seen_args: list[dict] = []

    def fetch(self, ctx, state) -> list[dict]:
        self.seen_args.append(ctx.args)
        return list(reversed(self.rows))  # newest first


async def test_poll_seeds_then_starts_one_run_per_new_item(sqlite_url: str) -> None:
    source = Source()
    demo = Connector(name="demo", version="1.0.0", title={"en": "Demo"})
    add_trigger(demo, PollTrigger(name="new_row", title={"en": "New row"}, sample={"id": 1}, fetch=source.fetch,
                                  strategy=LAST_ITEM, item_key="id"))
    engine = FlowEngine(sqlite_url, registry=ConnectorRegistry([core_connector, demo]))
    try:
        _activate(engine, {
            "id": "rows", "name": "new rows",
            "trigger": {"type": "poll", "source": "demo.new_row", "interval": 30, "args": {"table": "leads"}},
            "steps": [{"id": "out", "type": "set", "value": {"row": {"$expr": "trigger.id"}}}],
        })
        source.rows = [{"id": 1}, {"id": 2}]  # history: not replayed
        clock = Clock(datetime(2026, 1, 1, tzinfo=timezone.utc))
        scheduler = Scheduler(engine, clock=clock)
        await scheduler.run_once()
        await _settle(scheduler)
        assert engine.runs.list(flow_id="rows") == []
        source.rows += [{"id": 3}, {"id": 4}]
        clock.now += 10  # before the interval: no poll
        await scheduler.run_once()
        await _settle(scheduler)
        assert len(source.seen_args) == 1
        clock.now += 20
        await scheduler.run_once()
        await _settle(scheduler)
        assert [o["row"] for o in _outputs(engine, "rows")] == [3, 4]
        clock.now += 30  # nothing new
        await scheduler.run_once()
        await _settle(scheduler)
        assert len(engine.runs.list(flow_id="rows")) == 2
        assert source.seen_args == [{"table": "leads"}] * 3
        await scheduler.stop()
    finally:
        engine.close()


async def test_deactivated_flows_stop_firing(flow_engine: FlowEngine) -> None:
    _activate(flow_engine, _schedule_flow("* * * * * *"))
    clock = Clock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    scheduler = Scheduler(flow_engine, clock=clock)
    await scheduler.run_once()
    flow_engine.flows.set_active("tick", False, "test")
    clock.now += 5
    await scheduler.run_once()
    await _settle(scheduler)
    assert _outputs(flow_engine, "tick") == []
    await scheduler.stop()


@pytest.mark.prefect
async def test_scheduled_run_in_the_tracked_lane(prefect_server, flow_engine: FlowEngine) -> None:
    _activate(flow_engine, _schedule_flow("0 * * * *", lane="tracked"))
    clock = Clock(datetime(2026, 1, 1, 9, 59, 59, tzinfo=timezone.utc))
    scheduler = Scheduler(flow_engine, clock=clock)
    await scheduler.run_once()
    clock.now += 1.5
    await scheduler.run_once()
    await _settle(scheduler)
    [summary] = flow_engine.runs.list(flow_id="tick")
    record = flow_engine.runs.get(summary.id)
    assert record.status == "succeeded" and record.lane == "tracked" and record.prefect_flow_run_id
    assert record.output["scheduled_at"] == "2026-01-01T10:00:00+00:00"
    await scheduler.stop()
