"""Engine semantics end to end with real HTTP: retry, catch, timeouts, routing, map,
parallel, payload and step limits, resume.

Timing assertions use the server's hit timestamps or the recorded step times, with a
small lower tolerance (clock granularity) and a generous upper one (slow machines).
"""
from __future__ import annotations

from typing import Any

import orjson
import pytest

from engine.interpreter import Interpreter
from engine.records import MemoryRecorder, RunRecord, StepRecord
from engine.runtime import FlowEngine
from engine.validation import load_flow
from tests.fake_http import FakeHttp

EARLY = 0.015  # how much earlier than planned a measured gap may look
LATE = 0.35  # how much later than planned a measured gap may be


def compile_flow(steps: list[dict[str, Any]], **extra: Any):
    result = load_flow({"id": "t", "name": "t", "trigger": {"type": "manual"}, "steps": steps, **extra})
    assert result.ok, result.issues
    return result.flow


_LANE = {"name": "event"}


@pytest.fixture(autouse=True, params=["event", pytest.param("tracked", marks=pytest.mark.prefect)])
def lane(request: pytest.FixtureRequest) -> str:
    """Every test here runs in both lanes; the tracked one through real Prefect flow and task runs."""
    if request.param == "tracked":
        request.getfixturevalue("prefect_server")
    _LANE["name"] = request.param
    yield request.param
    _LANE["name"] = "event"


async def run_flow(flow, trigger: Any = None, **kwargs: Any) -> RunRecord:
    if _LANE["name"] == "tracked":
        import uuid

        from engine.tracked import run_tracked

        recorder = MemoryRecorder()
        run = await run_tracked(flow, trigger, run_id=str(uuid.uuid4()), recorder=recorder, **kwargs)
        assert run.prefect_flow_run_id, "a tracked run has a Prefect flow run"
        return recorder.runs[run.id]
    return await Interpreter(MemoryRecorder()).execute(flow, trigger, **kwargs)


def step(run: RunRecord, path: str) -> StepRecord:
    found = [s for s in run.steps if s.path == path]
    assert len(found) == 1, [s.path for s in run.steps]
    return found[0]


def get(sid: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": sid, "type": "action", "action": "http.request", "args": {"url": url}, **extra}


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def assert_gaps(times: list[float], planned: list[float]) -> None:
    measured = gaps(times)
    assert len(measured) == len(planned), (measured, planned)
    for got, want in zip(measured, planned):
        assert want - EARLY <= got <= want + LATE, (measured, planned)


# --------------------------------------------------------------------------- retry


async def test_retry_then_succeed_records_every_attempt(http: FakeHttp) -> None:
    flow = compile_flow([
        get("call", f"{http.base_url}/flaky/a?fail=2&code=503",
            retry=[{"errors": ["Transient"], "interval": 0.1, "backoff_rate": 2, "max_attempts": 3}]),
    ])
    run = await run_flow(flow)
    assert run.status == "succeeded", run.error
    assert run.output["body"] == {"ok": True, "attempts": 3}
    record = step(run, "call")
    assert record.status == "succeeded"
    assert record.error is None
    attempts = record.attempts
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["error"]["type"] for a in attempts[:2]] == ["Transient", "Transient"]
    assert [a["error"]["status"] for a in attempts[:2]] == [503, 503]
    assert "error" not in attempts[2]
    assert [a.get("retry_in") for a in attempts] == [0.1, 0.2, None]
    # the attempts' own start times and the server's arrival times both show the backoff
    assert_gaps([a["started_at"] for a in attempts], [0.1, 0.2])
    assert_gaps(http.hits["flaky/a"], [0.1, 0.2])
    assert record.started_at <= attempts[0]["started_at"] <= attempts[-1]["started_at"] <= record.ended_at


async def test_retry_exhausted_goes_to_catch(http: FakeHttp) -> None:
    flow = compile_flow([
        get("call", f"{http.base_url}/status/503",
            retry=[{"errors": ["Transient"], "interval": 0.05, "max_attempts": 2}],
            catch=[{"errors": ["Transient"], "next": "recover", "as": "failure"}],
            end=True),
        {"id": "recover", "type": "set", "value": {
            "caught": {"$expr": "failure"},
            "status": {"$expr": "steps.call.status"},
            "output": {"$expr": "steps.call.output"},
            "summary": "{{ failure.type }} at {{ failure.step }}",
        }},
    ])
    run = await run_flow(flow)
    assert run.status == "succeeded", run.error
    out = run.output
    assert out["status"] == "failed"
    assert out["output"] is None
    assert out["summary"] == "Transient at call"
    assert out["caught"]["type"] == "Transient"
    assert out["caught"]["status"] == 503
    assert out["caught"]["step"] == "call"
    assert "HTTP 503" in out["caught"]["message"]
    record = step(run, "call")
    assert record.status == "failed"
    assert record.error["type"] == "Transient"
    assert [a.get("retry_in") for a in record.attempts] == [0.05, None]
    assert len(http.hits["status/503"]) == 2
    assert [s.step_id for s in sorted(run.steps, key=lambda s: s.seq)] == ["call", "recover"]


async def test_catch_default_key_is_error_and_first_matching_catcher_wins(http: FakeHttp) -> None:
    flow = compile_flow([
        get("call", f"{http.base_url}/status/404", retry=[], catch=[
            {"errors": ["Transient"], "next": "transient"},
            {"errors": ["http.4xx"], "next": "client"},
            {"errors": ["*"], "next": "other"},
        ], end=True),
        {"id": "transient", "type": "set", "value": "transient", "end": True},
        {"id": "client", "type": "set", "value": {"$expr": "error.type"}, "end": True},
        {"id": "other", "type": "set", "value": "other"},
    ])
    run = await run_flow(flow)
    assert run.output == "NotFound"


async def test_uncaught_error_fails_the_run_and_stops(http: FakeHttp) -> None:
    flow = compile_flow([
        get("call", f"{http.base_url}/status/404", retry=[], catch=[{"errors": ["Transient"], "next": "after"}]),
        get("after", f"{http.base_url}/echo"),
    ])
    run = await run_flow(flow)
    assert run.status == "failed"
    assert run.error["type"] == "NotFound"
    assert run.error["step"] == "call"
    assert http.hits["echo"] == []


async def test_first_matching_policy_decides(http: FakeHttp) -> None:
    """ASL: the first policy whose errors match is used; once exhausted, later ones are not consulted."""
    narrow_first = compile_flow([
        get("call", f"{http.base_url}/status/503", retry=[
            {"errors": ["http.503"], "max_attempts": 1},
            {"errors": ["Transient"], "max_attempts": 5, "interval": 0.01},
        ]),
    ])
    run = await run_flow(narrow_first)
    assert run.status == "failed"
    assert len(step(run, "call").attempts) == 1
    assert len(http.hits["status/503"]) == 1

    http.reset()
    broad_first = compile_flow([
        get("call", f"{http.base_url}/status/503", retry=[
            {"errors": ["Transient"], "max_attempts": 4, "interval": 0.01, "backoff_rate": 1},
            {"errors": ["http.503"], "max_attempts": 1},
        ]),
    ])
    run = await run_flow(broad_first)
    assert [a.get("retry_in") for a in step(run, "call").attempts] == [0.01, 0.01, 0.01, None]
    assert len(http.hits["status/503"]) == 4


async def test_error_matching_no_policy_is_not_retried(http: FakeHttp) -> None:
    flow = compile_flow([
        get("call", f"{http.base_url}/status/404", retry=[{"errors": ["Transient", "Timeout"], "interval": 0.01}]),
    ])
    run = await run_flow(flow)
    assert run.error["type"] == "NotFound"
    assert len(http.hits["status/404"]) == 1


async def test_max_delay_caps_backoff(http: FakeHttp) -> None:
    flow = compile_flow([
        get("call", f"{http.base_url}/flaky/cap?fail=3",
            retry=[{"errors": ["*"], "interval": 0.05, "backoff_rate": 10, "max_delay": 0.12, "max_attempts": 4}]),
    ])
    run = await run_flow(flow)
    assert run.status == "succeeded", run.error
    assert [a.get("retry_in") for a in step(run, "call").attempts] == [0.05, 0.12, 0.12, None]
    assert_gaps(http.hits["flaky/cap"], [0.05, 0.12, 0.12])


async def test_named_retry_policies(http: FakeHttp) -> None:
    flow = compile_flow(
        [get("call", f"{http.base_url}/flaky/named?fail=2&code=500", retry=["never_404", "quick"])],
        retry_policies={
            "never_404": {"errors": ["NotFound"], "max_attempts": 1},
            "quick": {"errors": ["http.5xx"], "interval": 0.03, "backoff_rate": 2, "max_attempts": 3},
        },
    )
    run = await run_flow(flow)
    assert run.status == "succeeded", run.error
    assert [a.get("retry_in") for a in step(run, "call").attempts] == [0.03, 0.06, None]
    assert_gaps(http.hits["flaky/named"], [0.03, 0.06])


def test_unknown_named_policy_is_a_compile_issue() -> None:
    result = load_flow({
        "id": "t", "name": "t", "trigger": {"type": "manual"},
        "retry_policies": {"quick": {"interval": 0.1}},
        "steps": [{"id": "s", "type": "action", "action": "http.request", "args": {"url": "http://x"}, "retry": ["quik"]}],
    })
    assert not result.ok
    assert [(i.pointer, "quik" in i.message) for i in result.issues] == [("/steps/0/retry/0", True)]


async def test_step_retry_replaces_the_action_default(http: FakeHttp) -> None:
    """A step's own retry list is used instead of the connector default, not added to it."""
    flow = compile_flow([get("call", f"{http.base_url}/status/503", retry=[{"errors": ["Timeout"], "interval": 0.01}])])
    run = await run_flow(flow)
    assert len(step(run, "call").attempts) == 1


# --------------------------------------------------------------------------- timeouts


async def test_step_timeout_fails_with_timeout(http: FakeHttp) -> None:
    flow = compile_flow([get("call", f"{http.base_url}/slow?seconds=1", timeout=0.3, retry=[])])
    run = await run_flow(flow)
    assert run.status == "failed"
    assert run.error["type"] == "Timeout"
    assert run.error["step"] == "call"
    assert "0.3s" in run.error["message"]
    record = step(run, "call")
    assert record.error["type"] == "Timeout"
    assert 0.3 - EARLY <= record.ended_at - record.started_at <= 0.3 + LATE
    assert 300 - EARLY * 1000 <= record.attempts[0]["duration_ms"] <= (0.3 + LATE) * 1000


async def test_step_timeout_is_retried_when_a_policy_matches(http: FakeHttp) -> None:
    flow = compile_flow([
        get("call", f"{http.base_url}/slow?seconds=1", timeout=0.3,
            retry=[{"errors": ["Timeout"], "interval": 0.05, "max_attempts": 2}],
            catch=[{"errors": ["Timeout"], "next": "late"}], end=True),
        {"id": "late", "type": "set", "value": {"$expr": "error.type"}},
    ])
    run = await run_flow(flow)
    assert run.status == "succeeded", run.error
    assert run.output == "Timeout"
    attempts = step(run, "call").attempts
    assert [a["error"]["type"] for a in attempts] == ["Timeout", "Timeout"]
    assert attempts[0]["retry_in"] == 0.05
    assert len(http.hits["slow"]) == 2
    # second request = first one's timeout + the retry delay later
    assert_gaps(http.hits["slow"], [0.35])


async def test_timeout_only_limits_one_attempt(http: FakeHttp) -> None:
    """Three 0.1 s attempts under a 0.25 s step timeout: the timeout is per attempt, not per step."""
    flow = compile_flow([
        get("call", f"{http.base_url}/flaky/per?fail=2&code=503", timeout=0.25,
            retry=[{"errors": ["Transient"], "interval": 0.1, "backoff_rate": 1, "max_attempts": 3}]),
    ])
    run = await run_flow(flow)
    assert run.status == "succeeded", run.error
    assert len(step(run, "call").attempts) == 3


async def test_whole_run_timeout(http: FakeHttp) -> None:
    flow = compile_flow(
        [
            get("first", f"{http.base_url}/echo"),
            get("call", f"{http.base_url}/slow?seconds=2", retry=[]),
            get("never", f"{http.base_url}/text"),
        ],
        execution={"timeout": 0.3},
    )
    run = await run_flow(flow)
    assert run.status == "failed"
    assert run.error["type"] == "Timeout"
    assert "execution.timeout" in run.error["message"]
    assert 0.3 - EARLY <= run.ended_at - run.started_at <= 0.3 + LATE
    assert step(run, "first").status == "succeeded"
    assert http.hits["text"] == []


async def test_whole_run_timeout_cancels_a_map_in_flight(http: FakeHttp) -> None:
    flow = compile_flow(
        [{"id": "m", "type": "map", "items": "trigger.items", "steps": [get("call", f"{http.base_url}/slow?seconds=2", retry=[])]}],
        execution={"timeout": 0.3},
    )
    run = await run_flow(flow, {"items": [1, 2, 3]})
    assert run.status == "failed"
    assert run.error["type"] == "Timeout"
    assert run.ended_at - run.started_at <= 0.3 + LATE


async def test_whole_run_timeout_is_not_caught_by_step_catch(http: FakeHttp) -> None:
    flow = compile_flow(
        [
            get("call", f"{http.base_url}/slow?seconds=2", retry=[], catch=[{"errors": ["*"], "next": "handled"}], end=True),
            {"id": "handled", "type": "set", "value": "handled"},
        ],
        execution={"timeout": 0.2},
    )
    run = await run_flow(flow)
    assert run.status == "failed"
    assert run.error["type"] == "Timeout"


# --------------------------------------------------------------------------- if, fail, choice


async def test_if_false_skips_the_step(http: FakeHttp) -> None:
    flow = compile_flow([
        get("call", f"{http.base_url}/echo", **{"if": "trigger.go"}),
        {"id": "after", "type": "set", "value": {
            "status": {"$expr": "steps.call.status"},
            "output": {"$expr": "steps.call.output"},
        }},
    ])
    run = await run_flow(flow, {"go": False})
    assert run.status == "succeeded", run.error
    record = step(run, "call")
    assert record.status == "skipped"
    assert record.output_json is None
    assert record.attempts == []
    assert run.output == {"status": "skipped", "output": None}
    assert http.hits["echo"] == []

    ran = await run_flow(flow, {"go": True})
    assert step(ran, "call").status == "succeeded"
    assert ran.output["status"] == "succeeded"
    assert len(http.hits["echo"]) == 1


async def test_fail_step_fails_the_run_with_its_error(http: FakeHttp) -> None:
    flow = compile_flow([
        get("lookup", f"{http.base_url}/echo?order=7"),
        {"id": "reject", "type": "fail", "error": "Orders.Rejected",
         "message": "order {{ steps.lookup.output.body.query.order }} rejected"},
    ])
    run = await run_flow(flow)
    assert run.status == "failed"
    assert run.output is None
    assert run.error == {"type": "Orders.Rejected", "message": "order 7 rejected", "step": "reject"}
    record = step(run, "reject")
    assert record.status == "failed"
    assert record.error["type"] == "Orders.Rejected"


async def test_fail_step_default_error(http: FakeHttp) -> None:
    run = await run_flow(compile_flow([{"id": "stop", "type": "fail"}]))
    assert run.error["type"] == "FlowFailed"
    assert "stop" in run.error["message"]


def _router() -> dict[str, Any]:
    return {"id": "route", "type": "choice", "choices": [
        {"when": "trigger.n > `10`", "next": "big"},
        {"when": "trigger.n > `5`", "next": "medium"},
    ]}


@pytest.mark.parametrize("n, expected", [(50, "big"), (7, "medium"), (1, "small")])
async def test_choice_routes_to_first_match_or_default(n: int, expected: str) -> None:
    flow = compile_flow([
        {**_router(), "default": "small"},
        {"id": "big", "type": "set", "value": "big", "end": True},
        {"id": "medium", "type": "set", "value": "medium", "end": True},
        {"id": "small", "type": "set", "value": "small"},
    ])
    run = await run_flow(flow, {"n": n})
    assert run.status == "succeeded", run.error
    assert run.output == expected
    assert orjson.loads(step(run, "route").output_json) == {"next": expected}
    assert sorted(s.step_id for s in run.steps) == sorted(["route", expected])


async def test_choice_without_match_or_default_fails() -> None:
    flow = compile_flow([
        _router(),
        {"id": "big", "type": "set", "value": "big", "end": True},
        {"id": "medium", "type": "set", "value": "medium"},
    ])
    run = await run_flow(flow, {"n": 1})
    assert run.status == "failed"
    assert run.error["type"] == "NoChoiceMatched"
    assert run.error["step"] == "route"
    assert step(run, "route").status == "failed"


async def test_max_steps_stops_an_endless_loop() -> None:
    flow = compile_flow(
        [
            {"id": "tick", "type": "set", "value": 1},
            {"id": "loop", "type": "choice", "choices": [{"when": "`true`", "next": "tick"}]},
        ],
        execution={"max_steps": 25},
    )
    run = await run_flow(flow)
    assert run.status == "failed"
    assert run.error["type"] == "StepLimitExceeded"
    assert "25" in run.error["message"]
    assert len(run.steps) == 25


async def test_choice_loop_with_exit_under_max_steps(http: FakeHttp) -> None:
    """A bounded loop: poll until the flaky endpoint answers 200."""
    flow = compile_flow(
        [
            get("poll", f"{http.base_url}/flaky/loop?fail=3&code=500", retry=[],
                catch=[{"errors": ["Transient"], "next": "again"}], next="done"),
            {"id": "again", "type": "choice", "choices": [{"when": "steps.poll.status == 'failed'", "next": "poll"}]},
            {"id": "done", "type": "set", "value": {"$expr": "steps.poll.output.body"}},
        ],
        execution={"max_steps": 20},
    )
    run = await run_flow(flow)
    assert run.status == "succeeded", run.error
    assert run.output == {"ok": True, "attempts": 4}
    assert [s.status for s in run.steps if s.step_id == "poll"] == ["failed"] * 3 + ["succeeded"]


# --------------------------------------------------------------------------- map


def _overlaps(a: StepRecord, b: StepRecord) -> bool:
    return a.started_at < b.ended_at and b.started_at < a.ended_at


def _slow_map(http: FakeHttp, concurrency: int, seconds: float) -> Any:
    return compile_flow([{
        "id": "m", "type": "map", "items": "trigger.items", "max_concurrency": concurrency,
        "steps": [get("call", f"{http.base_url}/slow?seconds={seconds}", retry=[])],
        "item_output": {"$expr": "index"},
    }])


async def test_map_runs_items_concurrently(http: FakeHttp) -> None:
    run = await run_flow(_slow_map(http, 4, 0.3), {"items": ["a", "b", "c", "d"]})
    assert run.status == "succeeded", run.error
    assert run.output == [0, 1, 2, 3]
    inner = [step(run, f"m[{i}].call") for i in range(4)]
    assert max(s.started_at for s in inner) < min(s.ended_at for s in inner)  # all four overlap
    assert max(http.hits["slow"]) - min(http.hits["slow"]) < 0.15
    assert step(run, "m").ended_at - step(run, "m").started_at < 0.3 + LATE


async def test_map_with_max_concurrency_one_runs_items_in_order(http: FakeHttp) -> None:
    run = await run_flow(_slow_map(http, 1, 0.15), {"items": ["a", "b", "c", "d"]})
    assert run.status == "succeeded", run.error
    inner = [step(run, f"m[{i}].call") for i in range(4)]
    for earlier, later in zip(inner, inner[1:]):
        assert earlier.ended_at <= later.started_at
    assert_gaps(http.hits["slow"], [0.15, 0.15, 0.15])


async def test_map_max_concurrency_bounds_overlap(http: FakeHttp) -> None:
    run = await run_flow(_slow_map(http, 2, 0.15), {"items": list(range(6))})
    assert run.status == "succeeded", run.error
    inner = [step(run, f"m[{i}].call") for i in range(6)]
    for probe in inner:
        running = [s for s in inner if s.started_at <= probe.started_at < s.ended_at]
        assert len(running) <= 2
    assert any(_overlaps(a, b) for a in inner for b in inner if a is not b)


async def test_map_item_context_and_inner_records(http: FakeHttp) -> None:
    flow = compile_flow([{
        "id": "m", "type": "map", "items": "trigger.users",
        "steps": [{"id": "call", "type": "action", "action": "http.request",
                   "args": {"url": f"{http.base_url}/echo", "query": {"user": "{{ item.name }}", "i": {"$expr": "index"}}}}],
        "item_output": {"$expr": "steps.call.output.body.query"},
    }])
    run = await run_flow(flow, {"users": [{"name": "ann"}, {"name": "bo"}]})
    assert run.status == "succeeded", run.error
    assert run.output == [{"user": "ann", "i": "0"}, {"user": "bo", "i": "1"}]
    assert {s.path for s in run.steps} == {"m", "m[0].call", "m[1].call"}
    assert orjson.loads(step(run, "m").input_json) == [{"name": "ann"}, {"name": "bo"}]


def _status_map(http: FakeHttp, tolerated: int) -> Any:
    return compile_flow([{
        "id": "m", "type": "map", "items": "trigger.codes", "max_concurrency": 1, "tolerated_failures": tolerated,
        "steps": [{"id": "call", "type": "action", "action": "http.request", "retry": [],
                   "args": {"url": f"{http.base_url}/status/" + "{{ item }}"}}],
        "item_output": {"$expr": "steps.call.output.body"},
    }])


async def test_map_within_tolerated_failures_succeeds_with_nulls(http: FakeHttp) -> None:
    run = await run_flow(_status_map(http, 1), {"codes": [200, 404, 201]})
    assert run.status == "succeeded", run.error
    assert run.output == [{"error": "status 200"}, None, {"error": "status 201"}]
    assert step(run, "m[1].call").status == "failed"
    assert step(run, "m").status == "succeeded"


async def test_map_beyond_tolerated_failures_fails(http: FakeHttp) -> None:
    run = await run_flow(_status_map(http, 1), {"codes": [404, 200, 404, 200]})
    assert run.status == "failed"
    assert run.error["type"] == "NotFound"  # the item's own kind, so retry/catch see what failed
    assert run.error["status"] == 404
    assert "item 2 of map 'm' failed (2 failed, 1 tolerated)" in run.error["message"]
    assert run.error["details"] == {"index": 2, "step": "m[2].call"}
    assert step(run, "m").status == "failed"
    assert len(http.hits["status/404"]) == 2
    assert http.hits["status/200"] and len(http.hits["status/200"]) == 1  # item 3 never ran


async def test_map_failure_is_catchable_by_item_kind(http: FakeHttp) -> None:
    flow = compile_flow([
        {"id": "m", "type": "map", "items": "trigger.codes", "max_concurrency": 1,
         "steps": [{"id": "call", "type": "action", "action": "http.request", "retry": [],
                    "args": {"url": f"{http.base_url}/status/" + "{{ item }}"}}],
         "catch": [{"errors": ["http.404"], "next": "handled", "as": "oops"}], "end": True},
        {"id": "handled", "type": "set", "value": {"$expr": "oops.details.index"}},
    ])
    run = await run_flow(flow, {"codes": [200, 404]})
    assert run.status == "succeeded", run.error
    assert run.output == 1


async def test_map_items_must_be_a_list() -> None:
    flow = compile_flow([{"id": "m", "type": "map", "items": "trigger.items", "steps": [{"id": "s", "type": "set", "value": 1}]}])
    run = await run_flow(flow, {"items": {"not": "a list"}})
    assert run.error["type"] == "InvalidInput"


# --------------------------------------------------------------------------- parallel


async def test_parallel_joins_branch_outputs(http: FakeHttp) -> None:
    flow = compile_flow([
        {"id": "par", "type": "parallel", "branches": [
            {"id": "a", "steps": [get("slow_a", f"{http.base_url}/slow?seconds=0.3", retry=[])], "output": "A"},
            {"id": "b", "steps": [
                get("slow_b", f"{http.base_url}/slow?seconds=0.3", retry=[]),
                get("echo_b", f"{http.base_url}/echo?from=b"),
            ]},
            {"id": "c", "steps": [{"id": "const", "type": "set", "value": {"n": 3}}]},
        ]},
        {"id": "after", "type": "set", "value": {"$expr": "steps.par.output"}},
    ])
    run = await run_flow(flow)
    assert run.status == "succeeded", run.error
    out = run.output
    assert list(out) == ["a", "b", "c"]
    assert out["a"] == "A"
    assert out["b"]["body"]["query"] == {"from": "b"}
    assert out["c"] == {"n": 3}
    assert _overlaps(step(run, "par.a.slow_a"), step(run, "par.b.slow_b"))
    par = step(run, "par")
    assert par.ended_at - par.started_at < 0.6 - EARLY


async def test_parallel_branch_failure_fails_the_step(http: FakeHttp) -> None:
    flow = compile_flow([
        {"id": "par", "type": "parallel", "branches": [
            {"id": "ok", "steps": [get("slow", f"{http.base_url}/slow?seconds=1", retry=[])]},
            {"id": "bad", "steps": [get("missing", f"{http.base_url}/status/404", retry=[])]},
        ]},
        get("after", f"{http.base_url}/echo"),
    ])
    run = await run_flow(flow)
    assert run.status == "failed"
    assert run.error["type"] == "NotFound"
    assert run.error["step"] == "par.bad.missing"
    assert step(run, "par").status == "failed"
    assert run.ended_at - run.started_at < 0.6  # the slow sibling was cancelled, not awaited
    assert http.hits["echo"] == []


async def test_parallel_branch_failure_is_catchable(http: FakeHttp) -> None:
    flow = compile_flow([
        {"id": "par", "type": "parallel", "branches": [
            {"id": "ok", "steps": [{"id": "fine", "type": "set", "value": 1}]},
            {"id": "bad", "steps": [get("missing", f"{http.base_url}/status/404", retry=[])]},
        ], "catch": [{"errors": ["NotFound"], "next": "handled"}], "end": True},
        {"id": "handled", "type": "set", "value": {
            "type": {"$expr": "error.type"}, "step": {"$expr": "error.step"}, "par": {"$expr": "steps.par.status"}}},
    ])
    run = await run_flow(flow)
    assert run.status == "succeeded", run.error
    assert run.output == {"type": "NotFound", "step": "par", "par": "failed"}


# --------------------------------------------------------------------------- payload limits


async def test_step_input_over_limit_is_payload_too_large(http: FakeHttp) -> None:
    flow = compile_flow(
        [{"id": "send", "type": "action", "action": "http.request", "args": {
            "method": "POST", "url": f"{http.base_url}/echo",
            "json": {"a": {"$expr": "trigger.text"}, "b": {"$expr": "trigger.text"}}}}],
        execution={"max_step_input_bytes": 1024},
    )
    run = await run_flow(flow, {"text": "x" * 600})
    assert run.status == "failed"
    assert run.error["type"] == "PayloadTooLarge"
    assert "1,024" in run.error["message"] and "nothing was truncated" in run.error["message"]
    assert step(run, "send").input_json is None
    assert http.hits["echo"] == []

    small = await run_flow(flow, {"text": "x" * 100})
    assert small.status == "succeeded", small.error
    assert small.output["body"]["body"] == {"a": "x" * 100, "b": "x" * 100}  # not truncated


async def test_trigger_over_limit_is_payload_too_large() -> None:
    flow = compile_flow([{"id": "s", "type": "set", "value": 1}], execution={"max_step_input_bytes": 1024})
    run = await run_flow(flow, {"text": "x" * 2000})
    assert run.status == "failed"
    assert run.error["type"] == "PayloadTooLarge"
    assert run.steps == []


async def test_step_output_over_limit_is_payload_too_large(http: FakeHttp) -> None:
    flow = compile_flow(
        [get("call", f"{http.base_url}/echo?pad=" + "y" * 1500)],
        execution={"max_output_bytes": 1024},
    )
    run = await run_flow(flow)
    assert run.status == "failed"
    assert run.error["type"] == "PayloadTooLarge"
    assert "max_output_bytes" in run.error["message"]
    assert step(run, "call").output_json is None


# --------------------------------------------------------------------------- resume


def _order_flow(http: FakeHttp, send_url: str):
    return compile_flow([
        get("fetch", f"{http.base_url}/echo?order=42"),
        {"id": "build", "type": "set", "value": {"order": {"$expr": "steps.fetch.output.body.query.order"}}},
        {"id": "send", "type": "action", "action": "http.request", "retry": [],
         "args": {"method": "POST", "url": send_url, "json": {"$expr": "steps.build.output"}}},
    ])


async def test_resume_from_failed_step_reuses_earlier_outputs(http: FakeHttp) -> None:
    failing = await run_flow(_order_flow(http, f"{http.base_url}/status/503"))
    assert failing.status == "failed"
    assert failing.error["step"] == "send"
    assert len(http.hits["echo"]) == 1

    prior = {
        s.step_id: {"output": orjson.loads(s.output_json) if s.output_json else None, "status": s.status}
        for s in failing.steps if s.status == "succeeded"
    }
    assert set(prior) == {"fetch", "build"}
    resumed = await run_flow(_order_flow(http, f"{http.base_url}/echo"),
                             prior_steps=prior, start_at="send", resumed_from=failing.id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.resumed_from == failing.id
    assert [s.step_id for s in resumed.steps] == ["send"]
    assert resumed.output["body"]["body"] == {"order": "42"}
    assert len(http.hits["echo"]) == 2  # fetch was not called again; only send hit /echo


async def test_resume_at_unknown_step_is_invalid_input(http: FakeHttp) -> None:
    run = await run_flow(_order_flow(http, f"{http.base_url}/echo"), start_at="nope")
    assert run.status == "failed"
    assert run.error["type"] == "InvalidInput"
    assert "nope" in run.error["message"]
    assert http.hits["echo"] == []


# --------------------------------------------------------------------------- failures outside typed errors


class BrokenConnections:
    async def resolve(self, name: str) -> dict[str, Any]:
        raise RuntimeError("the keyring cannot decrypt this connection")


async def test_untyped_failure_is_recorded_not_raised(http: FakeHttp) -> None:
    flow = compile_flow([get("call", f"{http.base_url}/echo", connection="svc")])
    recorder = MemoryRecorder()
    run = await Interpreter(recorder, BrokenConnections()).execute(flow)
    assert run.status == "failed"
    assert run.error["type"] == "ConnectorError"
    assert "keyring" in run.error["message"]
    assert recorder.runs[run.id].status == "failed"
    assert recorder.runs[run.id].ended_at is not None
    assert http.hits["echo"] == []


# --------------------------------------------------------------------------- through the engine facade


async def test_attempts_are_persisted_by_the_engine(http: FakeHttp, flow_engine: FlowEngine) -> None:
    flow = flow_engine.compile({
        "id": "persisted", "name": "persisted", "trigger": {"type": "manual"},
        "steps": [get("call", f"{http.base_url}/flaky/p?fail=1&code=429",
                      retry=[{"errors": ["RateLimited"], "interval": 0.05, "max_attempts": 2}])],
    })
    run = await flow_engine.run(flow)
    assert run.status == "succeeded", run.error
    flow_engine.flush()
    stored = flow_engine.runs.get(run.id)
    assert stored.status == "succeeded"
    (call,) = stored.steps
    assert [a["attempt"] for a in call.attempts] == [1, 2]
    assert call.attempts[0]["error"]["type"] == "RateLimited"
    assert call.attempts[0]["retry_in"] == 0.05
    assert stored.output["body"] == {"ok": True, "attempts": 2}


async def test_retry_after_beyond_max_delay_is_not_waited_out(http) -> None:
    """A platform asking for a longer pause than the policy's max_delay ends the retries at once."""
    import time as _time

    from engine.interpreter import Interpreter as _Interpreter
    from engine.records import MemoryRecorder as _Memory
    from engine.validation import load_flow as _load

    flow = _load({"id": "ra", "name": "ra", "trigger": {"type": "manual"}, "steps": [
        {"id": "call", "type": "action", "action": "http.request",
         "args": {"url": f"{http.base_url}/status/429?retry_after=30"},
         "retry": [{"errors": ["RateLimited"], "max_attempts": 3, "interval": 0.01, "max_delay": 5}]}]}).flow
    began = _time.monotonic()
    run = await _Interpreter(_Memory()).execute(flow, {})
    assert _time.monotonic() - began < 2
    assert run.status == "failed" and run.error["type"] == "RateLimited" and run.error["retry_after"] == 30
    assert len(http.hits["status/429"]) == 1


async def test_run_timeout_records_the_steps_it_cut_off(http: FakeHttp) -> None:
    """execution.timeout: the step under way is recorded as failed and named in the run's error."""
    flow = compile_flow([
        {"id": "quick", "type": "set", "value": 1},
        {"id": "fan", "type": "map", "items": "[`1`, `2`]", "max_concurrency": 2,
         "steps": [get("slow_call", f"{http.base_url}/slow?seconds=2", retry=[])]},
    ], execution={"timeout": 0.4})
    run = await run_flow(flow)
    assert run.status == "failed" and run.error["type"] == "Timeout"
    assert run.error["step"] == "fan"
    cut = {s.path: s for s in run.steps if s.status == "failed"}
    assert set(cut) == {"fan", "fan[0].slow_call", "fan[1].slow_call"}
    assert all(s.error["type"] == "Timeout" for s in cut.values())
    assert step(run, "quick").status == "succeeded"
