"""The compiled flow: typed steps with prebuilt renderers, ready for the interpreter.

`engine.validation.load_flow` builds it; nothing here parses JSON or checks schemas.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from engine.errors import ErrorMatcher
from engine.expressions import Expression, Renderer

#: Context keys a catch's `as` may not overwrite.
RESERVED_CONTEXT_KEYS = frozenset({"trigger", "vars", "steps", "run", "item", "index"})


@dataclass(frozen=True)
class RetryPolicy:
    """When and how often to retry a failed attempt (ASL Retry semantics)."""

    matcher: ErrorMatcher
    max_attempts: int = 3
    interval: float = 1.0
    backoff_rate: float = 2.0
    max_delay: float | None = None
    jitter: float = 0.0


@dataclass(frozen=True)
class Catcher:
    """Where a step's run goes when it fails after retries, and the context key for the error."""

    matcher: ErrorMatcher
    next: str
    as_key: str = "error"


@dataclass
class Graph:
    """A sub-graph of steps: the flow's top level, a map's inner graph or a parallel branch."""

    start: str
    steps: dict[str, "Step"]
    pointer: str


@dataclass
class Branch:
    """One branch of a parallel step."""

    id: str
    graph: Graph
    output: Renderer | None


@dataclass
class Step:
    """One step of a flow, with everything compiled for execution."""

    id: str
    type: str
    pointer: str
    title: str | None = None
    condition: Expression | None = None
    next: str | None = None
    timeout: float | None = None
    retry: tuple[RetryPolicy, ...] | None = None
    catch: tuple[Catcher, ...] = ()
    #: `retry`, or the action's default retry when the step sets none (filled on first run)
    policies: tuple[RetryPolicy, ...] | None = None
    # action
    action_ref: str | None = None
    action: Any = None
    args: Renderer | None = None
    connection: str | None = None
    # choice
    choices: tuple[tuple[Expression, str], ...] = ()
    default: str | None = None
    # map
    items: Expression | None = None
    graph: Graph | None = None
    item_output: Renderer | None = None
    max_concurrency: int = 10
    tolerated_failures: int = 0
    # parallel
    branches: tuple[Branch, ...] = ()
    # set / succeed
    value: Renderer | None = None
    # wait
    seconds: Renderer | None = None
    until: Renderer | None = None
    # fail
    error_name: str = "FlowFailed"
    message: Renderer | None = None


@dataclass
class Execution:
    """Run-level settings from the flow's `execution` block and the service defaults."""

    lane: str = "auto"
    timeout: float | None = None
    max_steps: int = 10_000
    max_step_input_bytes: int = 5 * 1024 * 1024
    max_output_bytes: int = 5 * 1024 * 1024
    sensitive: frozenset[str] = frozenset()  # lower-cased field names masked in run records
    retention_days: float | None = None


@dataclass
class Flow:
    """A validated, compiled flow definition."""

    id: str
    name: str
    version: int | None
    trigger: dict[str, Any]
    vars: dict[str, Any]
    graph: Graph
    output: Renderer | None
    execution: Execution
    definition: dict[str, Any] = field(repr=False, default_factory=dict)
    description: str = ""
    all_steps: dict[str, Step] = field(repr=False, default_factory=dict)

    @property
    def lane(self) -> str:
        """The execution lane: `tracked` for schedules under `auto`, else as configured."""
        if self.execution.lane != "auto":
            return self.execution.lane
        return "tracked" if self.trigger.get("type") == "schedule" else "event"


ActionResolver = Callable[[str], Any]
