"""What a run leaves behind: run and step records, and where they go (a recorder)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


def dumps(value: Any) -> bytes:
    """Compact JSON (UTF-8, non-ASCII kept) for records and size limits."""
    return orjson.dumps(value, default=_default)


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@dataclass
class StepRecord:
    """One execution of one step (a step in a loop or a map yields several)."""

    run_id: str
    seq: int
    step_id: str
    path: str
    type: str
    status: str  # succeeded | failed | skipped
    started_at: float
    ended_at: float
    input_json: bytes | None = None
    output_json: bytes | None = None
    error: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shown by the CLI and the API."""
        return {
            "seq": self.seq,
            "step_id": self.step_id,
            "path": self.path,
            "type": self.type,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_ms": round((self.ended_at - self.started_at) * 1000, 3),
            "input": orjson.loads(self.input_json) if self.input_json else None,
            "output": orjson.loads(self.output_json) if self.output_json else None,
            "error": self.error,
            "attempts": self.attempts,
        }


@dataclass
class RunRecord:
    """One run of a flow."""

    id: str
    flow_id: str
    flow_version: int | None
    lane: str
    status: str  # running | succeeded | failed | cancelled
    started_at: float
    trigger_json: bytes = b"null"
    ended_at: float | None = None
    output_json: bytes | None = None
    error: dict[str, Any] | None = None
    prefect_flow_run_id: str | None = None
    resumed_from: str | None = None
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def output(self) -> Any:
        """The run's output value."""
        return orjson.loads(self.output_json) if self.output_json else None

    def to_dict(self, with_steps: bool = True) -> dict[str, Any]:
        """The JSON shape shown by the CLI and the API."""
        data = {
            "id": self.id,
            "flow_id": self.flow_id,
            "flow_version": self.flow_version,
            "lane": self.lane,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_ms": None if self.ended_at is None else round((self.ended_at - self.started_at) * 1000, 3),
            "trigger": orjson.loads(self.trigger_json) if self.trigger_json else None,
            "output": self.output,
            "error": self.error,
            "prefect_flow_run_id": self.prefect_flow_run_id,
            "resumed_from": self.resumed_from,
        }
        if with_steps:
            data["steps"] = [s.to_dict() for s in sorted(self.steps, key=lambda s: s.seq)]
        return data


class Recorder(Protocol):
    """Where the interpreter reports runs and steps as they happen."""

    def run_started(self, run: RunRecord) -> None:
        """A run began."""

    def step_finished(self, step: StepRecord) -> None:
        """A step execution ended (succeeded, failed or skipped)."""

    def run_finished(self, run: RunRecord) -> None:
        """A run ended."""


class MemoryRecorder:
    """Keeps records in memory: for tests, the editor's test-step, and CLI progress."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}

    def run_started(self, run: RunRecord) -> None:
        self.runs[run.id] = run

    def step_finished(self, step: StepRecord) -> None:
        run = self.runs.get(step.run_id)
        if run is not None:
            run.steps.append(step)

    def run_finished(self, run: RunRecord) -> None:
        self.runs[run.id] = run


class FanOutRecorder:
    """Sends every record to several recorders (for example the store and a progress printer)."""

    def __init__(self, *recorders: Recorder) -> None:
        self.recorders = recorders

    def run_started(self, run: RunRecord) -> None:
        for r in self.recorders:
            r.run_started(run)

    def step_finished(self, step: StepRecord) -> None:
        for r in self.recorders:
            r.step_finished(step)

    def run_finished(self, run: RunRecord) -> None:
        for r in self.recorders:
            r.run_finished(run)

    async def durable(self) -> None:
        """Wait until the recorders that persist have committed everything so far."""
        for r in self.recorders:
            durable = getattr(r, "durable", None)
            if durable is not None:
                await durable()
