"""Prometheus metrics: runs, step latency, retries, webhook intake and queue depth.

Each service has its own registry (so several apps in one process do not clash). The
engine feeds runs and steps through :class:`MetricsRecorder` (a recorder beside the store's,
no locks: prometheus_client counters are thread-safe by themselves); the webhook intake calls
:meth:`Metrics.webhook`; queue depth is read from the database when /metrics is scraped.
"""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the route)
from sqlalchemy import Engine, func, select

from engine.records import RunRecord, StepRecord
from engine.store.tables import webhook_events

STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The service's metric families."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter("flowlink_runs", "Finished runs by flow and status", ("flow", "status"), registry=self.registry)
        self.step_seconds = Histogram("flowlink_step_duration_seconds", "Step execution time (all attempts) by action",
                                      ("action", "status"), buckets=STEP_BUCKETS, registry=self.registry)
        self.retries = Counter("flowlink_step_retries", "Step attempts after the first, by action", ("action",),
                               registry=self.registry)
        self.webhooks = Counter("flowlink_webhook_requests", "Webhook deliveries by flow and outcome",
                                ("flow", "outcome"), registry=self.registry)
        self.queue_depth = Gauge("flowlink_webhook_queue_depth", "Webhook events accepted or running (not done yet)",
                                 ("status",), registry=self.registry)

    def webhook(self, flow: str, outcome: str) -> None:
        """Count one delivery: accepted, duplicate or rejected."""
        self.webhooks.labels(flow, outcome).inc()

    def refresh_queue(self, db: Engine) -> None:
        """Set the queue depth gauge from webhook_events (called on scrape)."""
        counts = {"accepted": 0, "running": 0}
        with db.connect() as conn:
            rows = conn.execute(select(webhook_events.c.status, func.count())
                                .where(webhook_events.c.status.in_(tuple(counts)))
                                .group_by(webhook_events.c.status)).all()
        counts.update({status: n for status, n in rows})
        for status, n in counts.items():
            self.queue_depth.labels(status).set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)


_EMPTY: dict[str, str] = {}


class MetricsRecorder:
    """A Recorder that counts runs and times steps (the engine adds it beside the store's recorder)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        #: run id -> {step id: action ref}; plain dict operations, no lock
        self.actions: dict[str, dict[str, str]] = {}
        self._by_flow: dict[int, tuple[Any, dict[str, str]]] = {}
        self._step_children: dict[tuple[str, str], Any] = {}

    def watch(self, run_id: str, flow: Any) -> None:
        """Remember which action each step of `flow` runs (for the run `run_id`; computed once per flow)."""
        entry = self._by_flow.get(id(flow))
        if entry is None or entry[0] is not flow:
            if len(self._by_flow) > 1000:
                self._by_flow.clear()
            entry = self._by_flow[id(flow)] = (flow, _step_actions(flow))
        self.actions[run_id] = entry[1]

    def run_started(self, run: RunRecord) -> None:
        pass

    def step_finished(self, step: StepRecord) -> None:
        action = self.actions.get(step.run_id, _EMPTY).get(step.step_id) or step.type
        key = (action, step.status)
        child = self._step_children.get(key)
        if child is None:  # labelled children are looked up once, then kept in a plain dict
            child = self._step_children[key] = self.metrics.step_seconds.labels(action, step.status)
        child.observe(max(step.ended_at - step.started_at, 0.0))
        if len(step.attempts) > 1:
            self.metrics.retries.labels(action).inc(len(step.attempts) - 1)

    def run_finished(self, run: RunRecord) -> None:
        self.actions.pop(run.id, None)
        self.metrics.runs.labels(run.flow_id, run.status).inc()


def _step_actions(flow: Any) -> dict[str, str]:
    """Step id -> action ref for every action step of a compiled flow (nested graphs included)."""
    found: dict[str, str] = {}
    seen: set[int] = set()

    def walk(node: Any) -> None:
        if node is None or id(node) in seen or isinstance(node, (str, bytes, int, float, bool)):
            return
        seen.add(id(node))
        ref = getattr(node, "action_ref", None)
        if isinstance(ref, str) and getattr(node, "id", None):
            found[node.id] = ref if "@" not in ref else f"{ref.split('@', 1)[0]}.{ref.rsplit('.', 1)[1]}"
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)
        elif hasattr(node, "__dataclass_fields__"):
            for name in node.__dataclass_fields__:
                if name not in ("action", "args", "condition", "value", "items", "seconds", "item_output"):
                    walk(getattr(node, name, None))

    walk(flow)
    return found
