"""Personal data masked in run records (flow `execution.sensitive`, connector `x-sensitive`),
history pruned past its retention (per flow shorter), and erasure of a subject's data."""
from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from pydantic import BaseModel, Field

from connectors.sdk import Connector
from connectors.sdk.action import ui
from engine.runtime import FlowEngine
from engine.store import audit
from engine.store.retention import erase_subject, prune
from engine.store.tables import blobs, runs, step_runs, webhook_events

MOBILE = "13800001111"


class Notify(BaseModel):
    phone: str = Field(json_schema_extra=ui(sensitive=True))
    text: str


def crm_connector() -> Connector:
    connector = Connector(name="crmx", version="1.0.0", title={"en": "CRM"})

    @connector.action("notify", input=Notify, examples=[{"input": {"phone": "1", "text": "t"}, "expect": {"sent": True}}])
    def notify(ctx: Any, inp: Notify) -> dict[str, Any]:
        return {"sent": True, "to": inp.phone[-4:]}

    return connector


@pytest.fixture()
def engine(database_url: str):
    eng = FlowEngine(database_url)
    eng.registry.add(crm_connector())
    yield eng
    eng.close()


def flow(flow_id: str = "lead", **execution: Any) -> dict[str, Any]:
    return {"id": flow_id, "name": flow_id, "trigger": {"type": "manual"}, "execution": execution,
            "steps": [{"id": "profile", "type": "set", "value": {"mobile": {"$expr": "trigger.mobile"}, "name": {"$expr": "trigger.name"}}},
                      {"id": "notify", "type": "action", "action": "crmx.notify",
                       "args": {"phone": "{{ steps.profile.output.mobile }}", "text": "hello {{ trigger.name }}"}},
                      {"id": "tail", "type": "set", "value": {"$expr": "steps.notify.output.to"}}]}


def stored_run(engine: FlowEngine, run_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    engine.flush()
    with engine.db.connect() as conn:
        run = dict(conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().one())
        steps = {r["path"]: dict(r) for r in conn.execute(sa.select(step_runs).where(step_runs.c.run_id == run_id)).mappings()}
    return run, steps


async def test_sensitive_fields_are_masked_in_records_not_in_the_run(engine: FlowEngine) -> None:
    record = await engine.run(engine.compile(flow(sensitive=["mobile"])), {"mobile": MOBILE, "name": "Li"})
    assert record.status == "succeeded" and record.output == "1111"  # steps saw the real number
    run, steps = stored_run(engine, record.id)
    assert orjson.loads(run["trigger_json"]) == {"mobile": "***", "name": "Li"}
    assert orjson.loads(steps["profile"]["output_json"]) == {"mobile": "***", "name": "Li"}
    assert orjson.loads(steps["notify"]["input_json"]) == {"phone": "***", "text": "hello Li"}  # x-sensitive of the connector
    assert MOBILE not in str(run) + str(steps)


async def test_without_marks_nothing_is_masked_except_connector_fields(engine: FlowEngine) -> None:
    record = await engine.run(engine.compile(flow()), {"mobile": MOBILE, "name": "Li"})
    run, steps = stored_run(engine, record.id)
    assert orjson.loads(run["trigger_json"])["mobile"] == MOBILE
    assert orjson.loads(steps["notify"]["input_json"])["phone"] == "***"


def test_a_flow_marking_a_field_that_is_not_a_list_is_invalid(engine: FlowEngine) -> None:
    from engine.runtime import FlowInvalid

    with pytest.raises(FlowInvalid, match="/execution/sensitive"):
        engine.compile(flow(sensitive="mobile"))


async def test_prune_by_age_with_a_shorter_flow_retention(engine: FlowEngine) -> None:
    engine.flows.save(flow("short", retention_days=1), "t", "")
    engine.flows.save(flow("normal"), "t", "")
    big = "x" * 10_000  # stored as a blob
    made: dict[str, str] = {}
    for flow_id, age_days in (("short", 2), ("short", 0.5), ("normal", 10), ("normal", 40)):
        record = await engine.run(engine.compile(flow(flow_id)), {"mobile": big, "name": f"{flow_id}-{age_days}"})
        made[f"{flow_id}-{age_days}"] = record.id
    running_id = str(uuid.uuid4())
    now = time.time()
    engine.flush()
    with engine.db.begin() as conn:
        for key, run_id in made.items():
            age = float(key.split("-")[1]) * 86400
            conn.execute(sa.update(runs).where(runs.c.id == run_id).values(started_at=now - age, ended_at=now - age))
        conn.execute(runs.insert().values(id=running_id, flow_id="normal", lane="event", status="running", started_at=now - 90 * 86400))
        conn.execute(blobs.update().values(created_at=now - 7200))
        conn.execute(webhook_events.insert().values(id=str(uuid.uuid4()), flow_id="normal", path="p", payload="{}", status="done",
                                                    attempts=1, received_at=now - 50 * 86400, updated_at=now - 50 * 86400))
    result = prune(engine.db, 30, now=now, batch=1)
    with engine.db.connect() as conn:
        left = set(conn.execute(sa.select(runs.c.id)).scalars())
        blob_count = conn.execute(sa.select(sa.func.count()).select_from(blobs)).scalar()
        orphan_steps = conn.execute(sa.select(sa.func.count()).select_from(step_runs).where(
            step_runs.c.run_id.not_in(sa.select(runs.c.id)))).scalar()
    assert left == {made["short-0.5"], made["normal-10"], running_id}
    assert (result.runs, result.events, result.per_flow) == (2, 1, {"short": 1.0})
    assert result.steps == 6 and orphan_steps == 0
    assert blob_count == 2 and result.blobs == 2  # each run had one blob (trigger = profile output); the kept runs keep theirs


async def test_erase_a_subject_from_history(engine: FlowEngine, capsys: pytest.CaptureFixture[str]) -> None:
    compiled = engine.compile(flow())
    hit = await engine.run(compiled, {"mobile": MOBILE, "name": "Li"})
    blob_hit = await engine.run(compiled, {"mobile": "1", "name": "Wang " + "y" * 6000 + MOBILE})
    other = await engine.run(compiled, {"mobile": "13900002222", "name": "Zhao"})
    engine.flush()
    with engine.db.begin() as conn:
        conn.execute(webhook_events.insert().values(id="ev1", flow_id="lead", path="p", payload=orjson.dumps({"body": {"m": MOBILE}}).decode(),
                                                    status="done", attempts=1, received_at=time.time(), updated_at=time.time()))
    with pytest.raises(ValueError):
        erase_subject(engine.db, "111", actor="t")
    result = erase_subject(engine.db, MOBILE, actor="dpo")
    assert (result.runs, result.events, result.blobs) == (2, 1, 2)  # the trigger (= profile output) and the notify input
    for run_id in (hit.id, blob_hit.id):
        run, steps = stored_run(engine, run_id)
        assert run["trigger_json"] == '{"erased": true}' and run["status"] == "succeeded"
        assert all(s["input_json"] is None and s["output_json"] is None for s in steps.values())
    assert MOBILE not in str(stored_run(engine, hit.id)) + str(stored_run(engine, blob_hit.id))
    assert orjson.loads(stored_run(engine, other.id)[0]["trigger_json"])["mobile"] == "13900002222"
    (entry,) = audit.entries(engine.db, action="subject.erase")
    assert entry["actor"] == "dpo" and MOBILE not in str(entry) and entry["details"]["runs"] == 2
