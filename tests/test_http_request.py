"""The `http.request` action against a real HTTP server (tests/fake_http.py).

Flows are compiled from dicts and run by the interpreter; assertions look at the run
record, the recorded steps and what the server saw.
"""
from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from connectors.http import DEFAULT_RETRY
from connectors.sdk import default_registry
from engine.interpreter import Interpreter, MappingConnections
from engine.records import MemoryRecorder, RunRecord, StepRecord
from engine.validation import load_flow
from tests.fake_http import FakeHttp, free_port


def compile_flow(steps: list[dict[str, Any]], **extra: Any):
    result = load_flow({"id": "t", "name": "t", "trigger": {"type": "manual"}, "steps": steps, **extra})
    assert result.ok, result.issues
    return result.flow


async def run_flow(flow, trigger: Any = None, connections: dict[str, dict[str, Any]] | None = None) -> RunRecord:
    resolver = MappingConnections(connections) if connections is not None else None
    return await Interpreter(MemoryRecorder(), resolver).execute(flow, trigger)


def step(run: RunRecord, path: str) -> StepRecord:
    found = [s for s in run.steps if s.path == path]
    assert len(found) == 1, [s.path for s in run.steps]
    return found[0]


def call(args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "call", "type": "action", "action": "http.request", "args": args, **extra}


async def request(args: dict[str, Any], trigger: Any = None, connections=None, **extra: Any) -> RunRecord:
    return await run_flow(compile_flow([call(args, **extra)]), trigger, connections)


# --------------------------------------------------------------------------- requests


async def test_get_sends_query_and_headers(http: FakeHttp) -> None:
    run = await request({
        "url": f"{http.base_url}/echo",
        "query": {"q": "flow link", "page": 2, "exact": True},
        "headers": {"X-Trace": "abc-123"},
    })
    assert run.status == "succeeded", run.error
    out = run.output
    assert out["status"] == 200
    assert out["headers"]["content-type"] == "application/json"
    body = out["body"]
    assert body["method"] == "GET"
    assert body["query"] == {"q": "flow link", "page": "2", "exact": "true"}
    assert body["headers"]["x-trace"] == "abc-123"
    assert body["headers"]["user-agent"].startswith("Flowlink/")
    assert body["body"] is None
    assert len(http.hits["echo"]) == 1


async def test_args_are_rendered_from_the_trigger(http: FakeHttp) -> None:
    run = await request(
        {"method": "POST", "url": "{{ trigger.base }}/echo", "json": {"name": {"$expr": "trigger.name"}, "tags": ["a", "b"]}},
        {"base": http.base_url, "name": "李雷"},
    )
    assert run.status == "succeeded", run.error
    body = run.output["body"]
    assert body["method"] == "POST"
    assert body["headers"]["content-type"] == "application/json"
    assert body["body"] == {"name": "李雷", "tags": ["a", "b"]}
    recorded = orjson.loads(step(run, "call").input_json)
    assert recorded["url"] == f"{http.base_url}/echo"


async def test_post_form_body(http: FakeHttp) -> None:
    run = await request({"method": "POST", "url": f"{http.base_url}/echo", "form": {"a": "1", "b": "x y&z"}})
    assert run.status == "succeeded", run.error
    body = run.output["body"]
    assert body["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert body["body"] == "a=1&b=x+y%26z"


async def test_raw_text_body(http: FakeHttp) -> None:
    run = await request({
        "method": "PUT",
        "url": f"{http.base_url}/echo",
        "body": "plain words, not JSON",
        "headers": {"Content-Type": "text/plain"},
    })
    assert run.status == "succeeded", run.error
    body = run.output["body"]
    assert body["method"] == "PUT"
    assert body["headers"]["content-type"] == "text/plain"
    assert body["body"] == "plain words, not JSON"


async def test_query_merges_with_the_urls_own_query_string(http: FakeHttp) -> None:
    """httpx >= 0.28 replaces a URL's query with `params=`; the action must merge them."""
    run = await request({"url": f"{http.base_url}/echo?a=1&b=from-url", "query": {"b": "from-args", "c": 3}})
    assert run.status == "succeeded", run.error
    assert run.output["body"]["query"] == {"a": "1", "b": "from-args", "c": "3"}


async def test_url_query_is_kept_without_query_arg(http: FakeHttp) -> None:
    run = await request({"url": f"{http.base_url}/echo?a=1&b=2"})
    assert run.output["body"]["query"] == {"a": "1", "b": "2"}


# --------------------------------------------------------------------------- responses


async def test_text_response_is_text(http: FakeHttp) -> None:
    run = await request({"url": f"{http.base_url}/text"})
    assert run.status == "succeeded", run.error
    assert run.output["body"] == "hello 你好"


async def test_binary_response_is_base64(http: FakeHttp) -> None:
    run = await request({"url": f"{http.base_url}/bytes"})
    assert run.status == "succeeded", run.error
    body = run.output["body"]
    assert body["content_type"] == "application/octet-stream"
    assert base64.b64decode(body["base64"]) == b"\x00\x01\xff"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "code, kind",
    [
        (400, "InvalidInput"),
        (401, "PermissionDenied"),
        (403, "PermissionDenied"),
        (404, "NotFound"),
        (422, "InvalidInput"),
        (429, "RateLimited"),
        (500, "Transient"),
        (503, "Transient"),
    ],
)
async def test_non_2xx_maps_to_typed_error(http: FakeHttp, code: int, kind: str) -> None:
    run = await request({"url": f"{http.base_url}/status/{code}"}, retry=[])
    assert run.status == "failed"
    assert run.output is None
    assert run.error["type"] == kind
    assert run.error["status"] == code
    assert run.error["step"] == "call"
    assert f"HTTP {code} from GET {http.base_url}/status/{code}" in run.error["message"]
    assert run.error["details"]["body"] == {"error": f"status {code}"}
    record = step(run, "call")
    assert record.status == "failed"
    assert record.error["type"] == kind
    assert len(record.attempts) == 1
    assert len(http.hits[f"status/{code}"]) == 1


@pytest.mark.parametrize(
    "code, pattern, caught",
    [
        (404, "HttpError", True),
        (404, "http.404", True),
        (404, "http.4xx", True),
        (404, "NotFound", True),
        (404, "*", True),
        (404, "http.5xx", False),
        (404, "http.403", False),
        (404, "Transient", False),
        (503, "http.5xx", True),
        (503, "Transient", True),
        (503, "HttpError", True),
        (503, "http.4xx", False),
        (422, "InvalidInput", True),
        (429, "RateLimited", True),
        (429, "http.429", True),
    ],
)
async def test_catch_patterns_match_http_errors(http: FakeHttp, code: int, pattern: str, caught: bool) -> None:
    flow = compile_flow([
        call({"url": f"{http.base_url}/status/{code}"}, retry=[], catch=[{"errors": [pattern], "next": "handled"}], end=True),
        {"id": "handled", "type": "set", "value": {"kind": {"$expr": "error.type"}, "status": {"$expr": "error.status"}}},
    ])
    run = await run_flow(flow)
    if caught:
        assert run.status == "succeeded", run.error
        kinds = {404: "NotFound", 503: "Transient", 422: "InvalidInput", 429: "RateLimited"}
        assert run.output == {"kind": kinds[code], "status": code}
        assert step(run, "call").status == "failed"
    else:
        assert run.status == "failed"
        assert run.error["status"] == code
        assert [s.step_id for s in run.steps] == ["call"]


# --------------------------------------------------------------------------- default retry


def test_default_retry_is_429_and_5xx_three_attempts() -> None:
    action = default_registry().resolve("http.request")
    assert action.default_retry == DEFAULT_RETRY
    (policy,) = DEFAULT_RETRY
    assert set(policy["errors"]) == {"RateLimited", "Transient"}
    assert policy["max_attempts"] == 3


async def test_default_retry_waits_its_interval_then_succeeds(http: FakeHttp) -> None:
    """The real default policy: one 503, a retry after 1 s, then 200 (takes ~1 s)."""
    run = await request({"url": f"{http.base_url}/flaky/d1?fail=1&code=503"})
    assert run.status == "succeeded", run.error
    assert run.output["body"] == {"ok": True, "attempts": 2}
    attempts = step(run, "call").attempts
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0]["error"]["type"] == "Transient"
    assert attempts[0]["retry_in"] == DEFAULT_RETRY[0]["interval"]
    hits = http.hits["flaky/d1"]
    assert hits[1] - hits[0] >= DEFAULT_RETRY[0]["interval"] - 0.02


@pytest.fixture()
def fast_default_retry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The http action's default policy with its interval shrunk (errors and attempts unchanged)."""
    action = default_registry().resolve("http.request")
    fast = {**DEFAULT_RETRY[0], "interval": 0.02}
    monkeypatch.setattr(action, "default_retry", (fast,))
    return fast


@pytest.mark.parametrize("code, kind", [(429, "RateLimited"), (500, "Transient"), (503, "Transient")])
async def test_default_retry_exhausts_after_three_attempts(http: FakeHttp, fast_default_retry, code: int, kind: str) -> None:
    run = await request({"url": f"{http.base_url}/status/{code}"})
    assert run.status == "failed"
    assert run.error["type"] == kind
    attempts = step(run, "call").attempts
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert all(a["error"]["status"] == code for a in attempts)
    assert [a.get("retry_in") for a in attempts] == [0.02, 0.04, None]
    assert len(http.hits[f"status/{code}"]) == 3


@pytest.mark.parametrize("code", [400, 401, 404, 422])
async def test_default_retry_leaves_client_errors_alone(http: FakeHttp, fast_default_retry, code: int) -> None:
    run = await request({"url": f"{http.base_url}/status/{code}"})
    assert run.status == "failed"
    assert len(step(run, "call").attempts) == 1
    assert len(http.hits[f"status/{code}"]) == 1


async def test_empty_retry_disables_the_default(http: FakeHttp) -> None:
    run = await request({"url": f"{http.base_url}/status/503"}, retry=[])
    assert run.status == "failed"
    assert run.error["type"] == "Transient"
    assert len(step(run, "call").attempts) == 1
    assert len(http.hits["status/503"]) == 1


async def test_retry_after_is_honoured(http: FakeHttp) -> None:
    """A 429 with Retry-After: 1 is retried no sooner than 1 s, even when the policy says 0.05 s."""
    run = await request(
        {"url": f"{http.base_url}/limited/r1?fail=1&retry_after=1"},
        retry=[{"errors": ["RateLimited"], "interval": 0.05, "max_attempts": 3}],
    )
    assert run.status == "succeeded", run.error
    attempts = step(run, "call").attempts
    assert attempts[0]["error"]["type"] == "RateLimited"
    assert attempts[0]["error"]["retry_after"] == 1.0
    assert attempts[0]["retry_in"] == 1.0
    assert "error" not in attempts[1]
    hits = http.hits["limited/r1"]
    assert len(hits) == 2
    assert hits[1] - hits[0] >= 0.98


async def test_retry_after_on_503_is_honoured_too(http: FakeHttp) -> None:
    run = await request(
        {"url": f"{http.base_url}/status/503?retry_after=0"},
        retry=[{"errors": ["Transient"], "interval": 0.03, "max_attempts": 2}],
    )
    attempts = step(run, "call").attempts
    assert attempts[0]["error"]["retry_after"] == 0.0
    assert attempts[0]["retry_in"] == 0.03  # Retry-After is a floor, not a replacement


# --------------------------------------------------------------------------- transport failures


async def test_connection_refused_is_transient(http: FakeHttp) -> None:
    port = free_port()  # nothing listens there
    run = await request({"url": f"http://127.0.0.1:{port}/x"}, retry=[])
    assert run.status == "failed"
    assert run.error["type"] == "Transient"
    assert "ConnectError" in run.error["message"]
    assert "status" not in run.error


async def test_connection_refused_is_retried_by_default(http: FakeHttp, fast_default_retry) -> None:
    run = await request({"url": f"http://127.0.0.1:{free_port()}/x"})
    assert run.status == "failed"
    assert [a["error"]["type"] for a in step(run, "call").attempts] == ["Transient"] * 3


async def test_request_timeout_is_transient(http: FakeHttp) -> None:
    run = await request({"url": f"{http.base_url}/slow?seconds=1", "timeout": 0.1}, retry=[])
    assert run.status == "failed"
    assert run.error["type"] == "Transient"
    assert "timed out" in run.error["message"]
    record = step(run, "call")
    assert record.ended_at - record.started_at < 0.6
    assert len(http.hits["slow"]) == 1


# --------------------------------------------------------------------------- auth


async def test_bearer_connection(http: FakeHttp) -> None:
    flow = compile_flow([call({"url": f"{http.base_url}/auth/bearer"}, connection="api", retry=[])])
    ok = await run_flow(flow, connections={"api": {"auth": "bearer", "token": "good-token"}})
    assert ok.status == "succeeded", ok.error
    assert ok.output["body"] == {"ok": True}
    # the secret never lands in the recorded input or output
    for record in ok.steps:
        assert b"good-token" not in (record.input_json or b"") + (record.output_json or b"")

    bad = await run_flow(flow, connections={"api": {"auth": "bearer", "token": "stale"}})
    assert bad.status == "failed"
    assert bad.error["type"] == "PermissionDenied"
    assert bad.error["status"] == 401
    assert len(http.hits["bearer"]) == 2


async def test_basic_connection(http: FakeHttp) -> None:
    flow = compile_flow([call({"url": f"{http.base_url}/echo"}, connection="svc")])
    run = await run_flow(flow, connections={"svc": {"auth": "basic", "username": "ann", "password": "s3cret:x"}})
    assert run.status == "succeeded", run.error
    expected = "Basic " + base64.b64encode(b"ann:s3cret:x").decode()
    assert run.output["body"]["headers"]["authorization"] == expected


async def test_api_key_in_header(http: FakeHttp) -> None:
    flow = compile_flow([call({"url": f"{http.base_url}/echo"}, connection="svc")])
    named = await run_flow(flow, connections={"svc": {"auth": "api_key", "name": "X-Token", "value": "k-1"}})
    assert named.output["body"]["headers"]["x-token"] == "k-1"
    default = await run_flow(flow, connections={"svc": {"auth": "api_key", "value": "k-2"}})
    assert default.output["body"]["headers"]["x-api-key"] == "k-2"


async def test_api_key_in_query(http: FakeHttp) -> None:
    flow = compile_flow([call({"url": f"{http.base_url}/echo", "query": {"page": 1}}, connection="svc")])
    run = await run_flow(flow, connections={"svc": {"auth": "api_key", "in": "query", "name": "key", "value": "k-3"}})
    assert run.status == "succeeded", run.error
    assert run.output["body"]["query"] == {"page": "1", "key": "k-3"}
    assert "x-api-key" not in run.output["body"]["headers"]


async def test_api_key_in_query_is_kept_out_of_error_messages(http: FakeHttp) -> None:
    flow = compile_flow([call({"url": f"{http.base_url}/status/404"}, connection="svc")])
    run = await run_flow(flow, connections={"svc": {"auth": "api_key", "in": "query", "name": "key", "value": "k-secret"}})
    assert run.error["type"] == "NotFound"
    assert "k-secret" not in orjson.dumps(run.error).decode()


async def test_api_key_in_query_keeps_the_urls_query(http: FakeHttp) -> None:
    flow = compile_flow([call({"url": f"{http.base_url}/echo?page=2"}, connection="svc")])
    run = await run_flow(flow, connections={"svc": {"auth": "api_key", "in": "query", "name": "key", "value": "k-4"}})
    assert run.status == "succeeded", run.error
    assert run.output["body"]["query"] == {"page": "2", "key": "k-4"}


@pytest.mark.parametrize("fields, missing", [({"auth": "bearer"}, "token"), ({"auth": "basic", "username": "u"}, "password"), ({"auth": "api_key"}, "value")])
async def test_connection_missing_a_field_is_invalid_input(http: FakeHttp, fields: dict[str, Any], missing: str) -> None:
    flow = compile_flow([call({"url": f"{http.base_url}/echo"}, connection="svc")])
    run = await run_flow(flow, connections={"svc": fields})
    assert run.status == "failed"
    assert run.error["type"] == "InvalidInput"
    assert f"'{missing}'" in run.error["message"]
    assert http.hits["echo"] == []


async def test_unknown_connection_is_invalid_input(http: FakeHttp) -> None:
    flow = compile_flow([call({"url": f"{http.base_url}/echo"}, connection="missing")])
    run = await run_flow(flow, connections={})
    assert run.status == "failed"
    assert run.error["type"] == "InvalidInput"
    assert "missing" in run.error["message"]
    assert http.hits["echo"] == []


# --------------------------------------------------------------------------- invalid input


async def test_bad_url_is_invalid_input_naming_the_field(http: FakeHttp) -> None:
    run = await request({"url": {"$expr": "trigger.url"}}, {"url": "ftp://example.com/file"})
    assert run.status == "failed"
    assert run.error["type"] == "InvalidInput"
    assert "args.url" in run.error["message"]
    assert step(run, "call").attempts[0]["error"]["type"] == "InvalidInput"
    assert len(step(run, "call").attempts) == 1  # invalid input is not retried


@pytest.mark.parametrize("url", ["http://", "https://[::1", "http://a:b:c/", "http://127.0.0.1:99999/"])
async def test_malformed_url_is_invalid_input_not_transient(http: FakeHttp, fast_default_retry, url: str) -> None:
    """URLs that pass the schema's ^https?:// pattern but cannot be requested are the input's fault."""
    run = await request({"url": {"$expr": "trigger"}}, url)
    assert run.status == "failed"
    assert run.error["type"] == "InvalidInput"
    assert run.error["message"].startswith("args.url: ")
    assert len(step(run, "call").attempts) == 1  # not retried as if the network were at fault


def test_literal_bad_url_is_rejected_when_compiling() -> None:
    result = load_flow({
        "id": "t", "name": "t", "trigger": {"type": "manual"},
        "steps": [call({"url": "not a url"})],
    })
    assert not result.ok
    assert [i.pointer for i in result.issues] == ["/steps/0/args/url"]


async def test_json_and_form_together_is_invalid_input(http: FakeHttp) -> None:
    run = await request({"method": "POST", "url": f"{http.base_url}/echo", "json": {"a": 1}, "form": {"b": "2"}})
    assert run.status == "failed"
    assert run.error["type"] == "InvalidInput"
    assert "json" in run.error["message"] and "form" in run.error["message"]
    assert run.error["message"].startswith("args")
    assert http.hits["echo"] == []


async def test_json_with_integers_over_64_bits_fails_the_step_cleanly(http: FakeHttp) -> None:
    """The run is recorded as failed (and the failure is catchable) instead of crashing the interpreter."""
    big = "123456789012345678901234567890"
    flow = compile_flow([
        call({"method": "POST", "url": f"{http.base_url}/echo", "body": '{"n": %s}' % big,
              "headers": {"Content-Type": "application/json"}}, catch=[{"errors": ["ConnectorError"], "next": "handled"}], end=True),
        {"id": "handled", "type": "set", "value": {"$expr": "error.message"}},
    ])
    recorder = MemoryRecorder()
    run = await Interpreter(recorder).execute(flow)
    assert run.status == "succeeded", run.error
    assert "cannot be stored as JSON" in run.output
    assert step(run, "call").status == "failed"
    assert recorder.runs[run.id].status == "succeeded"


async def test_shared_client_keeps_no_cookies_between_requests() -> None:
    """A cookie one answer sets must never go out with the next request (another tenant's, maybe)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from connectors.sdk.http import shared_client
    from tests.fake_http import ServerThread

    async def set_cookie(request: Request) -> JSONResponse:
        response = JSONResponse({"cookies": dict(request.cookies)})
        response.set_cookie("session", "tenant-a-secret")
        return response

    server = ServerThread(Starlette(routes=[Route("/c", set_cookie)])).start()
    try:
        url = f"http://127.0.0.1:{server.port}/c"
        first = await shared_client().get(url)
        assert first.cookies.get("session") == "tenant-a-secret"
        second = await shared_client().get(url)
        assert second.json() == {"cookies": {}}
    finally:
        server.stop()
