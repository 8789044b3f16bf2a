"""Optional OpenTelemetry traces: span tree of a run, webhook trace propagation, OTLP/HTTP export, off by default."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from api.main import create_app
from engine import tracing
from engine.interpreter import MappingConnections
from engine.runtime import FlowEngine
from tests.conftest import bearer, login
from tests.fake_http import FakeHttp

ROOT = Path(__file__).resolve().parent.parent
SECRET = "tok-S3CRET-9f2"
MOBILE = "13800001111"
_ENV = ("FLOWLINK_OTEL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")


@pytest.fixture(autouse=True)
def _tracing_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with no tracing environment and leaves tracing off."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    tracing.reset()
    yield
    tracing.reset()


@pytest.fixture()
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    assert tracing.configure(exporter=exporter)
    return exporter


def sample_flow(http: FakeHttp) -> dict[str, Any]:
    """A set step, an authenticated call that fails once and is retried, and a map of calls."""
    return {
        "id": "traced", "name": "traced", "version": 3, "trigger": {"type": "manual"},
        "steps": [
            {"id": "prep", "type": "set", "value": {"who": {"$expr": "trigger.customer"}, "mobile": {"$expr": "trigger.mobile"}}},
            {"id": "flaky", "type": "action", "action": "http.request", "connection": "api",
             "args": {"url": f"{http.base_url}/flaky/t?fail=1", "method": "POST", "json": {"mobile": {"$expr": "trigger.mobile"}}},
             "retry": [{"errors": ["Transient"], "interval": 0.01, "max_attempts": 2}]},
            {"id": "each", "type": "map", "items": "trigger.items",
             "steps": [{"id": "call", "type": "action", "action": "http.request",
                        "args": {"url": f"{http.base_url}/echo", "method": "POST", "json": {"item": {"$expr": "item"}}}}]},
        ],
    }


async def run_sample(tmp_path: Path, http: FakeHttp) -> Any:
    engine = FlowEngine(f"sqlite:///{tmp_path / 'flowlink.db'}",
                        connections=MappingConnections({"api": {"auth": "bearer", "token": SECRET}}))
    try:
        flow = engine.compile(sample_flow(http), check_connections=False)
        return await engine.run(flow, {"customer": "Zhang San", "mobile": MOBILE, "items": ["x-1", "x-2"]})
    finally:
        engine.close()


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return sorted((s for s in finished if s.name == name), key=lambda s: s.start_time)


async def test_run_and_step_spans_form_a_tree(spans: InMemorySpanExporter, http: FakeHttp, tmp_path: Path) -> None:
    run = await run_sample(tmp_path, http)
    assert run.status == "succeeded", run.error
    finished = spans.get_finished_spans()
    [root] = by_name(finished, "flowlink.run traced")
    assert root.parent is None
    assert dict(root.attributes) == {
        "flowlink.flow.id": "traced", "flowlink.flow.version": 3, "flowlink.run.id": run.id,
        "flowlink.run.lane": "event", "flowlink.trigger.type": "manual", "flowlink.run.status": "succeeded",
    }
    assert root.status.status_code is StatusCode.OK
    assert root.resource.attributes["service.name"] == "flowlink"
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}

    [prep] = by_name(finished, "flowlink.step prep")
    assert prep.parent.span_id == root.context.span_id
    assert prep.attributes["flowlink.step.type"] == "set" and "flowlink.step.action" not in prep.attributes

    failed, retried = by_name(finished, "flowlink.step flaky")
    for attempt, span in enumerate((failed, retried), start=1):
        assert span.parent.span_id == root.context.span_id
        assert span.attributes["flowlink.step.attempt"] == attempt
        assert span.attributes["flowlink.step.action"] == "http.request"
        assert span.attributes["flowlink.step.type"] == "action"
    assert failed.status.status_code is StatusCode.ERROR and failed.status.description.startswith("Transient")
    assert failed.attributes["flowlink.step.status"] == "failed" and failed.attributes["error.type"] == "Transient"
    assert failed.attributes["flowlink.error.status"] == 503
    [event] = failed.events
    assert event.name == "exception" and event.attributes["exception.type"] == "Transient"
    assert retried.status.status_code is StatusCode.OK and not retried.events

    [each] = by_name(finished, "flowlink.step each")
    assert each.parent.span_id == root.context.span_id and each.attributes["flowlink.step.type"] == "map"
    inner = by_name(finished, "flowlink.step call")
    assert len(inner) == 2
    assert {s.parent.span_id for s in inner} == {each.context.span_id}
    assert sorted(s.attributes["flowlink.step.path"] for s in inner) == ["each[0].call", "each[1].call"]
    assert len(finished) == 1 + 1 + 2 + 1 + 2

    # nothing of the data or the connection reaches a span
    for span in finished:
        values = [str(v) for v in span.attributes.values()]
        values += [str(v) for e in span.events for v in e.attributes.values()]
        values.append(span.status.description or "")
        for value in values:
            assert SECRET not in value and MOBILE not in value and "Zhang San" not in value and "x-1" not in value


async def test_outgoing_calls_carry_traceparent_only_while_tracing(http: FakeHttp, tmp_path: Path) -> None:
    off = await run_sample(tmp_path, http)
    assert off.status == "succeeded", off.error
    assert "traceparent" not in off.output[0]["body"]["headers"]

    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter)
    on = await run_sample(tmp_path, http)
    inner = {s.attributes["flowlink.step.path"]: s for s in by_name(exporter.get_finished_spans(), "flowlink.step call")}
    for index, result in enumerate(on.output):
        span = inner[f"each[{index}].call"]
        expected = f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-{span.context.trace_flags:02x}"
        assert result["body"]["headers"]["traceparent"] == expected


async def test_failed_run_span_has_error_status(spans: InMemorySpanExporter, http: FakeHttp, tmp_path: Path) -> None:
    engine = FlowEngine(f"sqlite:///{tmp_path / 'f.db'}")
    flow = engine.compile({"id": "broken", "name": "broken", "trigger": {"type": "manual"},
                           "steps": [{"id": "call", "type": "action", "action": "http.request",
                                      "args": {"url": f"{http.base_url}/status/404"}, "retry": []}]})
    run = await engine.run(flow, {})
    engine.close()
    assert run.status == "failed"
    [root] = by_name(spans.get_finished_spans(), "flowlink.run broken")
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["flowlink.run.status"] == "failed"
    assert root.attributes["error.type"] == run.error["type"] == "NotFound"
    assert root.status.description == f"NotFound: {run.error['message']}"
    [call] = by_name(spans.get_finished_spans(), "flowlink.step call")
    assert call.parent.span_id == root.context.span_id and call.status.status_code is StatusCode.ERROR


def test_webhook_traceparent_makes_the_run_a_child_of_the_callers_trace(
        spans: InMemorySpanExporter, sqlite_url: str, admin_password: str) -> None:
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    definition = {"id": "hooked", "name": "hooked", "trigger": {"type": "webhook", "path": "traced", "respond": "last"},
                  "steps": [{"id": "echo", "type": "set", "value": {"got": {"$expr": "trigger.body"}}}]}
    with TestClient(create_app(sqlite_url)) as client:
        client.headers.update(bearer(login(client)))
        assert client.post("/api/flows", json={"definition": definition}).status_code == 201
        assert client.post("/api/flows/hooked/activate").status_code == 200
        answer = client.post("/hooks/traced", json={"a": 1},
                             headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})
        assert answer.status_code == 200, answer.text
        plain = client.post("/hooks/traced", json={"a": 2})
        assert plain.status_code == 200, plain.text
    child, root = by_name(spans.get_finished_spans(), "flowlink.run hooked")
    assert f"{child.context.trace_id:032x}" == caller_trace
    assert f"{child.parent.span_id:016x}" == caller_span and child.parent.is_remote
    assert child.attributes["flowlink.trigger.type"] == "webhook"
    assert root.parent is None and f"{root.context.trace_id:032x}" != caller_trace
    [step] = [s for s in by_name(spans.get_finished_spans(), "flowlink.step echo") if s.context.trace_id == child.context.trace_id]
    assert step.parent.span_id == child.context.span_id


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace collector: decodes each protobuf export request."""

    received: list[Any] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.received.append((self.path, self.headers.get("Content-Type"), request))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


async def test_spans_are_exported_over_otlp_http(http: FakeHttp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("FLOWLINK_OTEL", "1")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        tracing.reset()  # the next run reads the environment
        run = await run_sample(tmp_path, http)
        assert tracing.enabled() and tracing.force_flush(10_000)
    finally:
        server.shutdown()
        server.server_close()
    assert run.status == "succeeded", run.error
    assert _Collector.received, "the collector got no export"
    names, resource = [], {}
    for path, content_type, request in _Collector.received:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        for resource_spans in request.resource_spans:
            resource.update({a.key: a.value.string_value for a in resource_spans.resource.attributes})
            for scope_spans in resource_spans.scope_spans:
                names += [span.name for span in scope_spans.spans]
    assert resource["service.name"] == "flowlink" and resource["deployment.environment"] == "test"
    assert sorted(names) == sorted(["flowlink.run traced", "flowlink.step prep", "flowlink.step flaky", "flowlink.step flaky",
                                    "flowlink.step each", "flowlink.step call", "flowlink.step call"])


def test_service_name_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "flowlink-eu")
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter)
    handle = tracing.step_started(type("S", (), {"id": "s", "type": "set", "action_ref": None})(), "s", 1)
    tracing.step_ended(handle)
    [span] = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "flowlink-eu"


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"FLOWLINK_OTEL": "1"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "FLOWLINK_OTEL": "0"}, False),
])
def test_enabled_by_env(env: dict[str, str], on: bool) -> None:
    assert tracing.enabled_by_env(env) is on


async def test_off_by_default_records_nothing(http: FakeHttp, tmp_path: Path) -> None:
    run = await run_sample(tmp_path, http)
    assert run.status == "succeeded", run.error
    assert not tracing.enabled() and tracing.force_flush()


def test_disabled_hooks_never_import_opentelemetry(tmp_path: Path) -> None:
    script = """
import asyncio, sys
from engine import tracing
from engine.interpreter import Interpreter
from engine.records import MemoryRecorder
from engine.validation import load_flow
flow = load_flow({"id": "f", "name": "f", "trigger": {"type": "webhook", "path": "p"}, "steps": [
    {"id": "a", "type": "set", "value": 1},
    {"id": "m", "type": "map", "items": "trigger.body.items", "steps": [{"id": "b", "type": "set", "value": {"$expr": "item"}}]}]}).flow
trigger = {"body": {"items": [1, 2]}, "headers": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
run = asyncio.run(Interpreter(MemoryRecorder()).execute(flow, trigger))
print(run.status, tracing.enabled(), sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    env = {k: v for k, v in os.environ.items() if k not in _ENV and not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "succeeded False []"
