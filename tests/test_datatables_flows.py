"""The `tables` connector in flows through FlowEngine (SQLite and PostgreSQL): an SCRM lead
intake, errors flows catch, round-robin and counters under concurrent runs and two processes,
the row-changed poll trigger through the service's scheduler, and the contract kit."""
from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from api.scheduler import Scheduler
from connectors.core import connector as core_connector
from connectors.sdk import ConnectorRegistry
from connectors.sdk.contract import check_connector
from connectors.tables import connector as tables_connector
from engine.runtime import FlowEngine
from engine.store.datatables import DataTables, load_definitions

FLOWS_TABLES = Path(__file__).resolve().parent.parent / "flows" / "tables"
REPS = [("zhangsan", True), ("lisi", True), ("wangwu", False), ("zhaoliu", True)]
ACTIVE = [userid for userid, active in REPS if active]

#: A web lead: upsert the customer, give new ones the next active rep, count the lead.
LEAD_INTAKE = {
    "id": "lead-intake-tables", "name": "Lead intake on data tables",
    "trigger": {"type": "manual"},
    "steps": [
        {"id": "customer", "type": "action", "action": "tables.upsert",
         "args": {"table": "customers", "row": {"external_userid": {"$expr": "trigger.id"}, "name": {"$expr": "trigger.name"},
                                                "source": "web", "tags": ["lead"]}}},
        {"id": "is_new", "type": "choice", "choices": [{"when": "steps.customer.output.created", "next": "rep"}], "default": "count"},
        {"id": "rep", "type": "action", "action": "tables.next_in_rotation",
         "args": {"table": "sales_reps", "rotation": "web-leads", "where": {"active": True}}},
        {"id": "assign", "type": "action", "action": "tables.update",
         "args": {"table": "customers", "id": {"$expr": "steps.customer.output.row._id"},
                  "set": {"owner": {"$expr": "steps.rep.output.userid"}, "state": "new"}}},
        {"id": "count", "type": "action", "action": "tables.increment",
         "args": {"table": "counters", "key": "web-leads", "column": "value"}},
    ],
    "output": {"owner": {"$expr": "steps.rep.output.userid"}, "turn": {"$expr": "steps.rep.output._turn"},
               "created": {"$expr": "steps.customer.output.created"}, "count": {"$expr": "steps.count.output.value"}},
}


def _registry() -> ConnectorRegistry:
    return ConnectorRegistry([core_connector, tables_connector])


def _prepare(engine: FlowEngine) -> DataTables:
    tables = DataTables(engine.db)
    load_definitions(tables, FLOWS_TABLES)
    for userid, active in REPS:
        tables.insert("sales_reps", {"userid": userid, "name": userid.title(), "active": active})
    return tables


@pytest.fixture()
def engine(database_url: str) -> Iterator[FlowEngine]:
    eng = FlowEngine(database_url, registry=_registry())
    yield eng
    eng.close()


async def test_lead_intake_flow_upserts_assigns_and_counts(engine: FlowEngine) -> None:
    tables = _prepare(engine)
    flow = engine.compile(LEAD_INTAKE)
    first = await engine.run(flow, {"id": "wmL1", "name": "Li Lei"})
    assert first.status == "succeeded", first.error
    assert first.output == {"owner": "zhangsan", "turn": 1, "created": True, "count": 1}
    again = await engine.run(flow, {"id": "wmL1", "name": "Li Lei"})  # a known customer keeps its owner
    assert again.output == {"owner": None, "turn": None, "created": False, "count": 2}
    second = await engine.run(flow, {"id": "wmL2", "name": "Han Meimei"})
    assert second.output["owner"] == "lisi"
    row = tables.get("customers", key_value="wmL1")
    assert (row["owner"], row["state"], row["tags"], row["source"]) == ("zhangsan", "new", ["lead"], "web")
    engine.flush()
    steps = {s.step_id: s.to_dict() for s in engine.runs.get(first.id).steps}
    assert steps["assign"]["output"]["updated"] == 1


async def test_flows_catch_table_errors_by_code_and_kind(engine: FlowEngine) -> None:
    _prepare(engine)
    flow = engine.compile({
        "id": "errors", "name": "errors", "trigger": {"type": "manual"},
        "steps": [
            {"id": "add", "type": "action", "action": "tables.insert",
             "args": {"table": "sales_reps", "row": {"userid": "zhangsan", "name": "Again", "active": True}},
             "catch": [{"errors": ["tables.duplicate_key"], "next": "missing", "as": "dup"}]},
            {"id": "missing", "type": "action", "action": "tables.get", "args": {"table": "customers", "key": "nobody"},
             "catch": [{"errors": ["NotFound"], "next": "bad", "as": "nf"}]},
            {"id": "bad", "type": "action", "action": "tables.insert",
             "args": {"table": "customers", "row": {"external_userid": "x", "name": "X", "spend": "lots"}},
             "catch": [{"errors": ["InvalidInput"], "next": "done", "as": "invalid"}]},
            {"id": "done", "type": "set", "value": {"dup": {"$expr": "dup.code"}, "nf": {"$expr": "nf.code"},
                                                   "invalid": {"$expr": "invalid.message"}}},
        ],
    })
    run = await engine.run(flow, {})
    assert run.status == "succeeded", run.error
    assert run.output["dup"] == "duplicate_key" and run.output["nf"] == "row_not_found"
    assert "column 'spend': 'lots' is not of type 'number'" in run.output["invalid"]
    unknown = await engine.run(engine.compile({"id": "unknown", "name": "u", "trigger": {"type": "manual"}, "steps": [
        {"id": "q", "type": "action", "action": "tables.query", "args": {"table": "nope"}}]}), {})
    assert unknown.status == "failed" and unknown.error["type"] == "NotFound" and "no data table 'nope'" in unknown.error["message"]


async def test_query_action_filters_sorts_and_pages(engine: FlowEngine) -> None:
    tables = _prepare(engine)
    for i in range(12):
        tables.insert("customers", {"external_userid": f"wm{i:02}", "name": f"C{i}", "spend": i * 100,
                                    "tags": ["vip"] if i % 3 == 0 else []})
    flow = engine.compile({"id": "q", "name": "q", "trigger": {"type": "manual"}, "steps": [
        {"id": "page", "type": "action", "action": "tables.query",
         "args": {"table": "customers", "where": {"spend": {"gte": 300}, "tags": {"contains": "vip"}},
                  "sort": [{"column": "spend", "desc": True}], "limit": 2, "offset": 1}}]})
    run = await engine.run(flow, {})
    assert run.status == "succeeded", run.error
    assert run.output["total"] == 3  # 300, 600, 900 ... and 0 is below 300
    assert [r["external_userid"] for r in run.output["rows"]] == ["wm06", "wm03"]


async def test_concurrent_runs_never_share_a_rotation_turn_or_a_counter_value(engine: FlowEngine) -> None:
    _prepare(engine)
    flow = engine.compile(LEAD_INTAKE)
    runs = await asyncio.gather(*(engine.run(flow, {"id": f"wm{i}", "name": f"Lead {i}"}) for i in range(24)))
    assert all(r.status == "succeeded" for r in runs), [r.error for r in runs if r.status != "succeeded"]
    turns = sorted(r.output["turn"] for r in runs)
    counts = sorted(r.output["count"] for r in runs)
    assert turns == list(range(1, 25)) and counts == list(range(1, 25))
    # round-robin: each turn n goes to the (n-1) mod 3-th active rep, so each rep gets 8 leads
    assert all(r.output["owner"] == ACTIVE[(r.output["turn"] - 1) % len(ACTIVE)] for r in runs)
    assert Counter(r.output["owner"] for r in runs) == {userid: 8 for userid in ACTIVE}


def _worker(database_url: str, prefix: str, count: int) -> list[dict[str, Any]]:
    """In another process: `count` concurrent lead-intake runs; their outputs."""
    async def main() -> list[dict[str, Any]]:
        eng = FlowEngine(database_url, registry=_registry())
        try:
            flow = eng.compile(LEAD_INTAKE)
            runs = await asyncio.gather(*(eng.run(flow, {"id": f"{prefix}{i}", "name": f"Lead {i}"}) for i in range(count)))
            return [r.output if r.status == "succeeded" else {"error": r.error} for r in runs]
        finally:
            eng.close()

    return asyncio.run(main())


def test_two_processes_never_share_a_rotation_turn_or_a_counter_value(database_url: str) -> None:
    setup = FlowEngine(database_url, registry=_registry())
    _prepare(setup)
    setup.close()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_worker, database_url, prefix, 15) for prefix in ("a", "b")]
        outputs = [o for f in futures for o in f.result(timeout=240)]
    assert all("error" not in o for o in outputs), outputs
    assert sorted(o["turn"] for o in outputs) == list(range(1, 31))
    assert sorted(o["count"] for o in outputs) == list(range(1, 31))
    assert Counter(o["owner"] for o in outputs) == {userid: 10 for userid in ACTIVE}


# ---------------------------------------------------------------------------- the trigger


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, tzinfo=timezone.utc).timestamp()

    def __call__(self) -> float:
        return self.now


async def _tick(scheduler: Scheduler, clock: Clock, seconds: float) -> None:
    clock.now += seconds
    await scheduler.run_once()
    await asyncio.gather(*(e.task for e in scheduler.polls.values() if e.task is not None))
    while scheduler.runs:
        await asyncio.gather(*list(scheduler.runs))
    scheduler.engine.flush()


def _watch(engine: FlowEngine, flow_id: str, args: dict[str, Any]) -> None:
    definition = {"id": flow_id, "name": flow_id,
                  "trigger": {"type": "poll", "source": "tables.row_changed", "interval": 5, "args": args},
                  "steps": [{"id": "seen", "type": "set", "value": {"event": {"$expr": "trigger._event"},
                                                                   "who": {"$expr": "trigger.external_userid"},
                                                                   "spend": {"$expr": "trigger.spend"}}}]}
    engine.compile(definition)
    engine.flows.save(definition, "test")
    engine.flows.set_active(flow_id, True, "test")


def _seen(engine: FlowEngine, flow_id: str) -> list[dict[str, Any]]:
    runs = sorted(engine.runs.list(flow_id=flow_id, limit=100), key=lambda r: r.started_at)
    records = [engine.runs.get(r.id) for r in runs]
    assert all(r.status == "succeeded" for r in records), [r.error for r in records]
    return sorted((r.output for r in records), key=lambda o: (o["who"], o["event"]))


async def test_row_changed_trigger_starts_one_run_per_change(engine: FlowEngine) -> None:
    tables = _prepare(engine)
    tables.insert("customers", {"external_userid": "old", "name": "History"})  # before the trigger: not replayed
    _watch(engine, "every-change", {"table": "customers"})
    _watch(engine, "deletes-only", {"table": "customers", "events": ["deleted"]})
    clock = Clock()
    scheduler = Scheduler(engine, clock=clock)
    try:
        await _tick(scheduler, clock, 0)  # seeds the cursors
        assert engine.runs.list(flow_id="every-change") == []
        tables.insert("customers", {"external_userid": "new1", "name": "New", "spend": 10})
        tables.update("customers", where={"external_userid": "old"}, values={"spend": 99})
        tables.delete("customers", where={"external_userid": "new1"})
        await _tick(scheduler, clock, 5)
        assert _seen(engine, "every-change") == [
            {"event": "deleted", "who": "new1", "spend": 10}, {"event": "inserted", "who": "new1", "spend": 10},
            {"event": "updated", "who": "old", "spend": 99}]
        assert _seen(engine, "deletes-only") == [{"event": "deleted", "who": "new1", "spend": 10}]
        await _tick(scheduler, clock, 5)  # nothing new: no more runs
        assert len(engine.runs.list(flow_id="every-change")) == 3
        tables.upsert("customers", {"external_userid": "old", "spend": 100})
        await _tick(scheduler, clock, 5)
        assert [o for o in _seen(engine, "every-change") if o["spend"] == 100] == [{"event": "updated", "who": "old", "spend": 100}]
    finally:
        await scheduler.stop()


async def test_row_changed_on_an_empty_table_picks_up_the_first_changes(engine: FlowEngine) -> None:
    tables = _prepare(engine)
    _watch(engine, "first", {"table": "customers"})
    clock = Clock()
    scheduler = Scheduler(engine, clock=clock)
    try:
        await _tick(scheduler, clock, 0)
        for i in range(3):
            tables.insert("customers", {"external_userid": f"c{i}", "name": "C", "spend": i})
        await _tick(scheduler, clock, 5)
        assert [o["who"] for o in _seen(engine, "first")] == ["c0", "c1", "c2"]
    finally:
        await scheduler.stop()


# ---------------------------------------------------------------------------- contract kit


async def test_contract_kit_passes() -> None:
    report = await check_connector(tables_connector)
    assert report.ok, "\n".join(report.lines())
    examples = [c.name for c in report.checks if c.name.startswith("example: ")]
    assert {name.split(" — ")[0][len("example: "):] for name in examples} == set(tables_connector.actions)
    assert "row_changed" in tables_connector.triggers
