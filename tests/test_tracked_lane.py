"""The tracked lane: real Prefect flow runs, one task run per step attempt, findable by our run id."""
from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterTags
from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort

from engine.runtime import FlowEngine
from tests.fake_http import FakeHttp

pytestmark = [pytest.mark.prefect]


def _flow(base_url: str) -> dict:
    return {
        "id": "tracked-demo",
        "name": "tracked demo",
        "trigger": {"type": "manual"},
        "execution": {"lane": "tracked"},
        "steps": [
            {"id": "fetch", "type": "action", "action": "http.request",
             "args": {"url": f"{base_url}/flaky/tracked?fail=1"},
             "retry": [{"errors": ["Transient"], "max_attempts": 3, "interval": 0.05}]},
            {"id": "route", "type": "choice", "choices": [{"when": "steps.fetch.output.body.ok", "next": "each"}], "default": "broken"},
            {"id": "each", "type": "map", "items": "trigger.items", "max_concurrency": 3,
             "steps": [{"id": "double", "type": "set", "value": {"$expr": "mul(item, `2`)"}}], "end": True},
            {"id": "broken", "type": "fail", "error": "Broken"},
        ],
    }


async def _prefect_runs(run_id: str):
    async with get_client() as client:
        flow_runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_id])), limit=5, sort=FlowRunSort.START_TIME_DESC)
        tagged = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"flowlink.run:{run_id}"])), limit=5, sort=FlowRunSort.START_TIME_DESC)
        task_runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_id])), limit=50, sort=TaskRunSort.EXPECTED_START_TIME_DESC)
    return flow_runs, tagged, task_runs


async def test_tracked_run_is_a_prefect_flow_run(prefect_server, flow_engine: FlowEngine, http: FakeHttp) -> None:
    definition = _flow(http.base_url)
    definition["steps"][2]["steps"][0]["value"] = {"$expr": "[item, item]"}
    flow = flow_engine.compile(definition)
    run = await flow_engine.run(flow, {"items": [1, 2, 3]})
    assert run.status == "succeeded", run.error
    assert run.lane == "tracked"
    assert run.output == [[1, 1], [2, 2], [3, 3]]
    flow_engine.flush()
    stored = flow_engine.runs.get(run.id)
    assert stored.prefect_flow_run_id == run.prefect_flow_run_id
    fetch = next(s for s in stored.steps if s.step_id == "fetch")
    assert [a.get("error", {}).get("type") for a in fetch.attempts] == ["Transient", None]

    flow_runs, tagged, task_runs = await _prefect_runs(run.id)
    assert [str(f.id) for f in flow_runs] == [run.prefect_flow_run_id]
    assert [str(f.id) for f in tagged] == [run.prefect_flow_run_id]
    assert flow_runs[0].state_type.value == "COMPLETED"
    states = sorted((t.name, t.state_type.value) for t in task_runs)
    assert ("fetch#1", "FAILED") in states and ("fetch#2", "COMPLETED") in states
    assert {name for name, _ in states} >= {"each[0].double#1", "each[1].double#1", "each[2].double#1"}


async def test_failed_run_marks_the_prefect_flow_run_failed(prefect_server, flow_engine: FlowEngine, http: FakeHttp) -> None:
    definition = _flow(http.base_url)
    definition["steps"][0]["args"]["url"] = f"{http.base_url}/status/404"
    definition["steps"][0]["catch"] = [{"errors": ["NotFound"], "next": "broken"}]
    run = await flow_engine.run(flow_engine.compile(definition), {"items": []})
    assert run.status == "failed"
    assert run.error["type"] == "Broken" and run.error["step"] == "broken"
    flow_runs, _, _ = await _prefect_runs(run.id)
    assert flow_runs[0].state_type.value == "FAILED"


async def test_lanes_give_the_same_result(prefect_server, flow_engine: FlowEngine, http: FakeHttp) -> None:
    definition = _flow(http.base_url)
    definition["steps"][0]["args"]["url"] = f"{http.base_url}/echo"
    definition["steps"][0]["retry"] = []
    definition["steps"][1]["choices"][0]["when"] = "steps.fetch.output.status == `200`"
    flow = flow_engine.compile(definition)
    event = await flow_engine.run(flow, {"items": [5, 6]}, lane="event")
    tracked = await flow_engine.run(flow, {"items": [5, 6]}, lane="tracked")
    assert event.status == tracked.status == "succeeded"
    assert event.output == tracked.output == [10, 12]
    assert event.prefect_flow_run_id is None and tracked.prefect_flow_run_id
