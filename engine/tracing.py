"""Optional OpenTelemetry traces: one span per run, one child span per step attempt.

Off unless enabled: `FLOWLINK_OTEL=1`, or an `OTEL_EXPORTER_OTLP_ENDPOINT` /
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set while `FLOWLINK_OTEL` is not `0`. Enabled, spans go
through a BatchSpanProcessor to the OTLP/HTTP (protobuf) exporter, which reads the standard
`OTEL_EXPORTER_OTLP_*` variables; the resource's service.name is `flowlink` unless
`OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` say otherwise.

Like engine/logs.py, the interpreter calls a few hooks here (run start/end, step attempt
start/end). Disabled (or without the opentelemetry packages) every hook returns at once
and opentelemetry is never imported. The provider is this module's own object, not the
OpenTelemetry global one, so tests can configure and reset it as often as they like.

Spans carry ids, types, statuses and error types/messages only: never step inputs,
outputs, trigger data or connection fields.
"""
from __future__ import annotations

import logging
import os
from typing import Any, MutableMapping

log = logging.getLogger("flowlink.tracing")

#: the active tracer and its provider; None while tracing is off
_tracer: Any = None
_provider: Any = None
#: whether the environment has been read (the first hook call does it, once)
_decided = False


class _Handle:
    """A started span and the context token that made it current (detached when it ends)."""

    __slots__ = ("span", "token")

    def __init__(self, span: Any, token: Any) -> None:
        self.span = span
        self.token = token


def enabled_by_env(environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether the environment asks for tracing (see the module docstring)."""
    env = os.environ if environ is None else environ
    flag = env.get("FLOWLINK_OTEL", "").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return False
    if flag in ("1", "true", "yes", "on"):
        return True
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(exporter: Any = None, *, batch: bool | None = None) -> bool:
    """Set tracing up (replacing an earlier set-up) and return whether it is on.

    With `exporter` (e.g. an InMemorySpanExporter in tests) tracing is on whatever the
    environment says, and spans are exported one by one unless `batch` is true. Without it,
    the environment decides, and spans go in batches to the OTLP/HTTP exporter.
    """
    global _tracer, _provider, _decided
    reset()
    _decided = True
    if exporter is None and not enabled_by_env():
        return False
    try:
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
            batch = True if batch is None else batch
    except ImportError as exc:
        log.warning("tracing is enabled but OpenTelemetry is not installed (pip install 'flowlink[otel]'): %s", exc)
        return False
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over the default name
    resource = Resource.create({"service.name": "flowlink"}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    _provider, _tracer = provider, provider.get_tracer("flowlink")
    return True


def reset() -> None:
    """Turn tracing off, flushing and shutting down the provider; the next hook reads the environment again."""
    global _tracer, _provider, _decided
    provider, _provider, _tracer, _decided = _provider, None, None, False
    if provider is not None:
        provider.shutdown()


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Export every finished span now (True when nothing is pending or all went out)."""
    return _provider.force_flush(timeout_millis) if _provider is not None else True


def enabled() -> bool:
    """Whether spans are being recorded (reads the environment on first use)."""
    return _active() is not None


def _active() -> Any:
    if not _decided:
        configure()
    return _tracer


# ---------------------------------------------------------------------- hooks


def run_started(run: Any, flow: Any, trigger: Any) -> _Handle | None:
    """Start the `flowlink.run <flow id>` span and make it current; None when tracing is off.

    A webhook trigger whose headers carry a W3C `traceparent` makes the span a child of the
    caller's trace.
    """
    tracer = _tracer if _decided else _active()
    if tracer is None:
        return None
    from opentelemetry import context, propagate, trace

    trigger_type = (flow.trigger or {}).get("type") or "manual"
    parent = None
    carrier = _headers(trigger)
    if carrier:
        parent = propagate.extract(carrier)
    span = tracer.start_span(
        f"flowlink.run {flow.id}",
        context=parent,
        kind=trace.SpanKind.CONSUMER if carrier else trace.SpanKind.INTERNAL,
        attributes={
            "flowlink.flow.id": flow.id,
            "flowlink.flow.version": flow.version,
            "flowlink.run.id": run.id,
            "flowlink.run.lane": run.lane,
            "flowlink.trigger.type": trigger_type,
        },
    )
    return _Handle(span, context.attach(trace.set_span_in_context(span)))


def run_ended(handle: _Handle | None, run: Any) -> None:
    """End the run span with the run's status (ERROR with the error type and message on failure)."""
    if handle is None:
        return
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    span = handle.span
    status = run.status if run.status != "running" else "cancelled"
    span.set_attribute("flowlink.run.status", status)
    if status != "succeeded":
        error = run.error or {}
        kind, message = str(error.get("type") or "Error"), str(error.get("message") or "")
        span.set_attribute("error.type", kind)
        if error.get("step"):
            span.set_attribute("flowlink.error.step", str(error["step"]))
        span.set_status(Status(StatusCode.ERROR, f"{kind}: {message}" if message else kind))
    else:
        span.set_status(Status(StatusCode.OK))
    context.detach(handle.token)
    span.end()


def step_started(step: Any, path: str, attempt: int) -> _Handle | None:
    """Start a `flowlink.step <step id>` span for one attempt, current until it ends; None when off."""
    tracer = _tracer if _decided else _active()
    if tracer is None:
        return None
    from opentelemetry import context, trace

    attributes = {
        "flowlink.step.id": step.id,
        "flowlink.step.path": path,
        "flowlink.step.type": step.type,
        "flowlink.step.attempt": attempt,
    }
    if step.action_ref:
        attributes["flowlink.step.action"] = step.action_ref
    span = tracer.start_span(f"flowlink.step {step.id}", attributes=attributes)
    return _Handle(span, context.attach(trace.set_span_in_context(span)))


def step_ended(handle: _Handle | None, error: Any = None) -> None:
    """End an attempt's span: OK, or ERROR with an `exception` event (the StepError's type and message)."""
    if handle is None:
        return
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    span = handle.span
    if error is None:
        span.set_attribute("flowlink.step.status", "succeeded")
        span.set_status(Status(StatusCode.OK))
    else:
        kind = str(getattr(error, "kind", None) or type(error).__name__)
        message = str(getattr(error, "message", None) or error)
        span.set_attribute("flowlink.step.status", "failed")
        span.set_attribute("error.type", kind)
        status = getattr(error, "status", None)
        if status is not None:
            span.set_attribute("flowlink.error.status", status)
        # not span.record_exception: a stack trace is more than "the error type and message"
        span.add_event("exception", {"exception.type": kind, "exception.message": message})
        span.set_status(Status(StatusCode.ERROR, f"{kind}: {message}" if message else kind))
    context.detach(handle.token)
    span.end()


def inject_headers(headers: MutableMapping[str, str]) -> None:
    """Add the current span's `traceparent` (and `tracestate`) to outgoing headers, only while tracing is on."""
    if _tracer is None:
        return
    from opentelemetry import propagate, trace

    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)


def _headers(trigger: Any) -> dict[str, str] | None:
    """The trigger's HTTP headers (lower-cased keys) when they carry a traceparent."""
    if not isinstance(trigger, dict):
        return None
    headers = trigger.get("headers")
    if not isinstance(headers, dict):
        return None
    carrier = {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)}
    return carrier if "traceparent" in carrier else None
