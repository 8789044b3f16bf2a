"""The interpreter: walks a compiled flow's graph and runs its steps.

One implementation drives every lane. Choice, map, parallel, retry, catch and timeouts
are decided here; a lane only changes how one attempt of a leaf step is invoked (inline
in the event lane, as a Prefect task run in the tracked lane) and where records go.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import orjson
from inspect import isawaitable
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from connectors.sdk.action import ActionContext
from engine.errors import (
    ConnectorError,
    InvalidInput,
    PayloadTooLarge,
    StepError,
    StepTimeout,
    error_from_exception,
)
from engine.expressions import _parse_instant, truthy
from engine.model import Flow, Graph, Step
from engine import tracing
from engine.logs import FLOW_ID, RUN_ID, STEP, log_to_run_logger
from engine.pii import mask_json
from engine.records import Recorder, RunRecord, StepRecord, dumps
from engine.retry import RetryState, compile_policies

#: How one attempt of a leaf step is invoked: (step path, attempt number, the call) -> result.
AttemptInvoker = Callable[[str, int, Callable[[], Awaitable[Any]]], Awaitable[Any]]


class ConnectionResolver(Protocol):
    """Gives actions the decrypted fields of a named connection."""

    async def resolve(self, name: str) -> dict[str, Any]:
        """The connection's fields; raise a StepError when it does not exist."""


class NoConnections:
    """Resolver for contexts with no connection store: every name is unknown."""

    async def resolve(self, name: str) -> dict[str, Any]:
        raise InvalidInput(f"unknown connection '{name}' (no connection store configured)")


class MappingConnections:
    """Resolver over a plain mapping of name -> fields (tests, CLI --connections file)."""

    def __init__(self, connections: dict[str, dict[str, Any]]) -> None:
        self.connections = connections

    async def resolve(self, name: str) -> dict[str, Any]:
        try:
            return self.connections[name]
        except KeyError:
            raise InvalidInput(f"unknown connection '{name}'") from None


class _EndGraph(Exception):
    """A `succeed` step ended the current graph."""


@dataclass
class _RunState:
    run: RunRecord
    flow: Flow
    seq: int = 0
    executed: int = 0
    #: guarded steps under way (path -> (step, start, attempts)), to record them if the run times out
    in_flight: dict[str, tuple[Step, float, list[dict[str, Any]]]] = field(default_factory=dict)
    #: resuming an interrupted attempt: step path -> its recorded output (JSON), reused, not run again
    completed: dict[str, bytes] = field(default_factory=dict)
    resumed_from: str | None = None
    #: commit the history after every action step, so a crash never repeats a completed call
    checkpoint: bool = False


def _size_check(data: bytes, limit: int, what: str, setting: str) -> None:
    if len(data) > limit:
        raise PayloadTooLarge(
            f"{what} is {len(data):,} bytes, over the limit of {limit:,} (execution.{setting}); nothing was truncated"
        )


def _dump(value: Any, what: str, error: type[StepError]) -> bytes:
    """`dumps`, failing the step (not the interpreter) when the value has no JSON form."""
    try:
        return dumps(value)
    except TypeError as exc:  # orjson: integers over 64 bits, non-string keys, ...
        raise error(f"{what} cannot be stored as JSON: {exc}") from None


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if dump is not None else value


class Interpreter:
    """Runs compiled flows. One instance serves many concurrent runs."""

    def __init__(
        self,
        recorder: Recorder,
        connections: ConnectionResolver | None = None,
        invoke: AttemptInvoker | None = None,
        log: Callable[[str], None] | None = None,
        token_cache: Any = None,
        rate_limiter: Any = None,
        db: Any = None,
    ) -> None:
        self.recorder = recorder
        self.connections = connections or NoConnections()
        self.invoke = invoke
        self.log = log or log_to_run_logger
        #: shared by the `ctx.client` of every action (None: the process-local token cache)
        self.token_cache = token_cache
        #: waits for connector/action rate budgets (None: no rate limiting)
        self.rate_limiter = rate_limiter
        #: Flowlink's database for built-in actions (data tables); default: the token cache's
        self.db = db if db is not None else getattr(token_cache, "engine", None)

    # ------------------------------------------------------------------ runs

    async def execute(
        self,
        flow: Flow,
        trigger: Any = None,
        *,
        run_id: str | None = None,
        lane: str | None = None,
        prior_steps: dict[str, dict[str, Any]] | None = None,
        start_at: str | None = None,
        resumed_from: str | None = None,
        prefect_flow_run_id: str | None = None,
        completed: dict[str, bytes] | None = None,
        checkpoint: bool = False,
    ) -> RunRecord:
        """Run `flow` to the end and return its record (failures are recorded, not raised).

        `prior_steps` and `start_at` resume a run from a step, reusing earlier outputs
        (retry from the failed step). `completed` (step path -> recorded output JSON, from an
        interrupted attempt) replays the run from the start without running those steps
        again: their outputs are reused, so choices take the same branches. `checkpoint`
        waits for the history to be committed after each action step (see
        SqlRecorder.durable), which is what makes `completed` complete after a crash.
        """
        run = RunRecord(
            id=run_id or str(uuid.uuid4()),
            flow_id=flow.id,
            flow_version=flow.version,
            lane=lane or flow.lane,
            status="running",
            started_at=time.time(),
            prefect_flow_run_id=prefect_flow_run_id,
            resumed_from=resumed_from,
        )
        state = _RunState(run=run, flow=flow, completed=dict(completed or {}), checkpoint=checkpoint,
                          resumed_from=resumed_from)
        context = (RUN_ID.set(run.id), FLOW_ID.set(flow.id))
        span = tracing.run_started(run, flow, trigger)
        try:
            return await self._execute(state, trigger, prior_steps, start_at)
        finally:
            tracing.run_ended(span, run)
            RUN_ID.reset(context[0])
            FLOW_ID.reset(context[1])

    async def _execute(self, state: _RunState, trigger: Any, prior_steps: dict[str, dict[str, Any]] | None,
                       start_at: str | None) -> RunRecord:
        run, flow = state.run, state.flow
        limit = flow.execution.max_step_input_bytes
        try:
            run.trigger_json = mask_json(dumps(trigger), flow.execution.sensitive)
        except TypeError as exc:
            run.trigger_json = b"null"
            return self._finish_early(run, InvalidInput(f"trigger payload is not JSON: {exc}"))
        self.recorder.run_started(run)
        scope: dict[str, Any] = {
            "trigger": trigger,
            "vars": flow.vars,
            "steps": dict(prior_steps or {}),
            "run": {"id": run.id, "flow_id": flow.id, "flow_version": flow.version},
        }
        try:
            _size_check(run.trigger_json, limit, "the trigger payload", "max_step_input_bytes")
            if start_at is not None and start_at not in flow.graph.steps:
                raise InvalidInput(f"cannot start at '{start_at}': no such top-level step")
            if flow.execution.timeout:
                async with asyncio.timeout(flow.execution.timeout):
                    last = await self._run_graph(state, flow.graph, scope, "", start_at)
            else:
                last = await self._run_graph(state, flow.graph, scope, "", start_at)
            output = flow.output(scope) if flow.output is not None else last
            run.output_json = dumps(_jsonable(output))
            _size_check(run.output_json, flow.execution.max_output_bytes, "the run output", "max_output_bytes")
            run.output_json = mask_json(run.output_json, flow.execution.sensitive)
            run.status = "succeeded"
        except StepError as err:
            run.status = "failed"
            run.output_json = None
            run.error = {**err.to_dict(), "step": getattr(err, "step_path", None)}
        except TimeoutError:
            run.status = "failed"
            error = StepTimeout(f"the run took longer than execution.timeout={flow.execution.timeout}s").to_dict()
            cut_off = sorted(state.in_flight.items(), key=lambda item: item[1][1])
            for path, (step, began, attempts) in cut_off:
                self._record(state, step, path, "failed", began, error=error, attempts=attempts)
            run.error = {**error, "step": cut_off[0][0] if cut_off else None}
        except Exception as exc:  # anything untyped (keyring, a bug): record the failure, never leave the run "running"
            run.status = "failed"
            run.output_json = None
            run.error = {**error_from_exception(exc).to_dict(), "step": None}
        except asyncio.CancelledError:
            run.status = "cancelled"
            run.error = {"type": "Cancelled", "message": "the run was cancelled"}
            run.ended_at = time.time()
            self.recorder.run_finished(run)
            raise
        run.ended_at = time.time()
        self.recorder.run_finished(run)
        return run

    async def run_step(self, flow: Flow, step: Step, scope: dict[str, Any], run: RunRecord) -> str | None:
        """Run one step on its own against a prepared context (the editor's "test step").

        `scope` is the run context (`trigger`, `vars`, `steps`, ...). The step's record goes to
        the recorder under `run`; a failure its catch does not handle raises StepError.
        Returns the id of the step that would come next.
        """
        next_step, _ = await self._run_step(_RunState(run=run, flow=flow), step, scope, "", None)
        return next_step

    def _finish_early(self, run: RunRecord, err: StepError) -> RunRecord:
        run.status, run.error, run.ended_at = "failed", err.to_dict(), time.time()
        self.recorder.run_started(run)
        self.recorder.run_finished(run)
        return run

    # ------------------------------------------------------------------ graphs

    async def _run_graph(
        self, state: _RunState, graph: Graph, scope: dict[str, Any], prefix: str, start_at: str | None = None
    ) -> Any:
        sid: str | None = start_at or graph.start
        last: Any = None
        max_steps = state.flow.execution.max_steps
        try:
            while sid is not None:
                state.executed += 1
                if state.executed > max_steps:
                    raise StepError(
                        f"the run executed more than {max_steps} steps (execution.max_steps); a loop may never end",
                        kind="StepLimitExceeded",
                    )
                step = graph.steps[sid]
                sid, last = await self._run_step(state, step, scope, prefix, last)
        except _EndGraph:
            pass
        return last

    async def _run_step(
        self, state: _RunState, step: Step, scope: dict[str, Any], prefix: str, last: Any
    ) -> tuple[str | None, Any]:
        path = prefix + step.id
        started = time.time()
        kind = step.type
        try:
            if step.condition is not None and not truthy(step.condition.search(scope)):
                scope["steps"][step.id] = {"output": None, "status": "skipped"}
                self._record(state, step, path, "skipped", started)
                return step.next, last
            if kind == "choice":
                target = self._choose(step, scope)
                scope["steps"][step.id] = {"output": {"next": target}, "status": "succeeded"}
                self._record(state, step, path, "succeeded", started, output_json=dumps({"next": target}))
                return target, last
            if kind == "succeed":
                scope["steps"][step.id] = {"output": last, "status": "succeeded"}
                self._record(state, step, path, "succeeded", started)
                raise _EndGraph()
            if kind == "fail":
                message = step.message(scope) if step.message is not None else f"the flow failed at step '{step.id}'"
                raise StepError(message if isinstance(message, str) else dumps(message).decode(), kind=step.error_name)
        except StepError as err:
            self._record(state, step, path, "failed", started, error=err.to_dict())
            if not hasattr(err, "step_path"):
                err.step_path = path
            raise
        return await self._run_guarded(state, step, scope, path, started)

    def _choose(self, step: Step, scope: dict[str, Any]) -> str:
        for condition, target in step.choices:
            if truthy(condition.search(scope)):
                return target
        if step.default is None:
            raise StepError(f"no choice of step '{step.id}' matched and it has no default", kind="NoChoiceMatched")
        return step.default

    async def _run_guarded(
        self, state: _RunState, step: Step, scope: dict[str, Any], path: str, started: float
    ) -> tuple[str | None, Any]:
        """Leaf steps, maps and parallels: input rendering, attempts with retries, catch."""
        if step.type in _REPLAYABLE and path in state.completed:
            return self._reuse(state, step, scope, path, started)
        token = STEP.set(path)
        try:
            return await self._guarded(state, step, scope, path, started)
        finally:
            STEP.reset(token)

    async def _guarded(
        self, state: _RunState, step: Step, scope: dict[str, Any], path: str, started: float
    ) -> tuple[str | None, Any]:
        attempts: list[dict[str, Any]] = []
        input_json: bytes | None = None
        state.in_flight[path] = (step, started, attempts)
        try:
            value, input_json = self._render_input(state, step, scope)
            output = await self._attempts(state, step, scope, path, value, attempts)
            output = _jsonable(output)
            output_json = _dump(output, f"the output of step '{step.id}'", ConnectorError)
            _size_check(output_json, state.flow.execution.max_output_bytes, f"the output of step '{step.id}'", "max_output_bytes")
        except StepError as err:
            state.in_flight.pop(path, None)
            self._record(state, step, path, "failed", started, input_json, None, err.to_dict(), attempts)
            for catcher in step.catch:
                if catcher.matcher.matches(err):
                    error = {**err.to_dict(), "step": step.id}
                    scope["steps"][step.id] = {"output": None, "status": "failed", "error": error}
                    scope[catcher.as_key] = error
                    return catcher.next, None
            if not hasattr(err, "step_path"):
                err.step_path = path
            raise
        state.in_flight.pop(path, None)
        scope["steps"][step.id] = {"output": output, "status": "succeeded"}
        self._record(state, step, path, "succeeded", started, input_json, output_json, None, attempts)
        if state.checkpoint and step.type == "action":
            durable = getattr(self.recorder, "durable", None)
            if durable is not None:
                await durable()
        return step.next, output

    def _reuse(self, state: _RunState, step: Step, scope: dict[str, Any], path: str, started: float) -> tuple[str | None, Any]:
        """A step the interrupted attempt completed: its recorded output, without running it."""
        output_json = state.completed.pop(path)
        output = orjson.loads(output_json)
        scope["steps"][step.id] = {"output": output, "status": "succeeded"}
        self._record(state, step, path, "succeeded", started, None, output_json, None,
                     [{"attempt": 0, "reused_from": state.resumed_from}])
        return step.next, output

    def _render_input(self, state: _RunState, step: Step, scope: dict[str, Any]) -> tuple[Any, bytes | None]:
        kind = step.type
        if kind == "action":
            value = step.args(scope)
        elif kind == "map":
            value = step.items.search(scope)
            if not isinstance(value, list):
                raise InvalidInput(f"map items must be a list, got {type(value).__name__} from `{step.items.text}`")
        elif kind == "wait":
            value = {"seconds": self._wait_seconds(step, scope)}
        else:
            return None, None
        input_json = _dump(value, f"the input of step '{step.id}'", InvalidInput)
        _size_check(input_json, state.flow.execution.max_step_input_bytes, f"the input of step '{step.id}'", "max_step_input_bytes")
        return value, input_json

    async def _attempts(
        self, state: _RunState, step: Step, scope: dict[str, Any], path: str, value: Any, attempts: list[dict[str, Any]]
    ) -> Any:
        policies = step.policies
        if policies is None:
            policies = step.retry
            if policies is None and step.action is not None and step.action.default_retry:
                policies = compile_policies(step.action.default_retry)
            step.policies = policies = policies or ()
        retry: RetryState | None = None
        connection = None
        if step.type == "action" and step.connection:
            connection = await self.connections.resolve(step.connection)
        number = 0
        while True:
            number += 1
            began = time.time()
            span = tracing.step_started(step, path, number)
            try:
                result = self._body(state, step, scope, path, value, connection, number)
                if isawaitable(result):
                    if step.timeout is not None and (self.invoke is None or step.type not in _LEAVES):
                        result = await _bounded(result, step)
                    else:
                        result = await result
            except Exception as exc:  # every failure becomes a typed StepError
                err = error_from_exception(exc, step.action.connector.name if step.action and step.action.connector else None)
                tracing.step_ended(span, err)
                ended = time.time()
                attempts.append({"attempt": number, "started_at": began, "duration_ms": round((ended - began) * 1000, 3), "error": err.to_dict()})
                if retry is None and policies:
                    retry = RetryState(policies)
                delay = retry.next_delay(err) if retry is not None else None
                if delay is None:
                    raise err from None
                attempts[-1]["retry_in"] = delay
                await asyncio.sleep(delay)
                continue
            except BaseException as exc:  # cancelled (run timeout, a sibling failed): end the span, then go on
                tracing.step_ended(span, exc)
                raise
            tracing.step_ended(span)
            attempts.append({"attempt": number, "started_at": began, "duration_ms": round((time.time() - began) * 1000, 3)})
            return result

    def _body(
        self,
        state: _RunState,
        step: Step,
        scope: dict[str, Any],
        path: str,
        value: Any,
        connection: dict[str, Any] | None,
        number: int,
    ) -> Any:
        """One attempt: a value (sync work done inline) or an awaitable."""
        kind = step.type
        # Under an invoker (the tracked lane) the step timeout is applied inside the invoked
        # call, so that the orchestrator's own overhead does not eat into the step's time.
        if kind == "action":
            if self.invoke is None:
                return self._call_action(state, step, path, value, connection)
            return self.invoke(path, number, lambda: _bounded(_awaited(self._call_action(state, step, path, value, connection)), step))
        if kind == "set":
            if self.invoke is None:
                return step.value(scope)
            return self.invoke(path, number, lambda: _bounded(_immediate(step.value(scope)), step))
        if kind == "wait":
            sleep = lambda: asyncio.sleep(value["seconds"], {"waited": value["seconds"]})  # noqa: E731
            return sleep() if self.invoke is None else self.invoke(path, number, lambda: _bounded(sleep(), step))
        if kind == "map":
            return self._run_map(state, step, scope, path, value)
        if kind == "parallel":
            return self._run_parallel(state, step, scope, path)
        raise AssertionError(f"unexpected step type {kind}")

    def _call_action(
        self, state: _RunState, step: Step, path: str, value: Any, connection: dict[str, Any] | None
    ) -> Any:
        """Validate the input and call the action: its result, or its coroutine if it is async."""
        action = step.action
        parsed = action.parse_input(value)
        ctx = ActionContext(state.run.id, path, state.flow.id, connection, self.log, action, step.connection,
                            self.token_cache, self.rate_limiter, db=self.db)
        return action.run(ctx, parsed)

    def _wait_seconds(self, step: Step, scope: dict[str, Any]) -> float:
        if step.seconds is not None:
            seconds = step.seconds(scope)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                raise InvalidInput(f"wait seconds must be a non-negative number, got {seconds!r}")
            return float(seconds)
        until = step.until(scope)
        try:
            moment = _parse_instant(until)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"wait until must be an ISO-8601 time, got {until!r}: {exc}") from None
        return max(0.0, moment.timestamp() - time.time())

    # ------------------------------------------------------------------ map and parallel

    async def _run_map(self, state: _RunState, step: Step, scope: dict[str, Any], path: str, items: list[Any]) -> list[Any]:
        results: list[Any] = [None] * len(items)
        failures: list[tuple[int, StepError]] = []
        pending = iter(enumerate(items))

        async def worker() -> None:
            for index, item in pending:
                child = {**scope, "steps": dict(scope["steps"]), "item": item, "index": index}
                try:
                    last = await self._run_graph(state, step.graph, child, f"{path}[{index}].")
                    results[index] = step.item_output(child) if step.item_output is not None else last
                except StepError as err:
                    failures.append((index, err))
                    if len(failures) > step.tolerated_failures:
                        raise _item_error(step, index, err, len(failures)) from None

        workers = min(step.max_concurrency, len(items))
        if workers <= 1:
            await worker()
        else:
            await _gather_first_error([worker() for _ in range(workers)])
        return results

    async def _run_parallel(self, state: _RunState, step: Step, scope: dict[str, Any], path: str) -> dict[str, Any]:
        outputs: dict[str, Any] = {}

        async def branch_run(branch) -> None:
            child = {**scope, "steps": dict(scope["steps"])}
            last = await self._run_graph(state, branch.graph, child, f"{path}.{branch.id}.")
            outputs[branch.id] = branch.output(child) if branch.output is not None else last

        await _gather_first_error([branch_run(b) for b in step.branches])
        return {b.id: outputs.get(b.id) for b in step.branches}

    # ------------------------------------------------------------------ records

    def _record(
        self,
        state: _RunState,
        step: Step,
        path: str,
        status: str,
        started: float,
        input_json: bytes | None = None,
        output_json: bytes | None = None,
        error: dict[str, Any] | None = None,
        attempts: list[dict[str, Any]] | None = None,
    ) -> None:
        state.seq += 1
        keys = state.flow.execution.sensitive
        if step.action is not None and step.action.sensitive_keys:
            keys = keys | step.action.sensitive_keys
        if keys:
            input_json, output_json = mask_json(input_json, keys), mask_json(output_json, keys)
        self.recorder.step_finished(
            StepRecord(
                run_id=state.run.id,
                seq=state.seq,
                step_id=step.id,
                path=path,
                type=step.type,
                status=status,
                started_at=started,
                ended_at=time.time(),
                input_json=input_json,
                output_json=output_json,
                error=error,
                attempts=attempts or [],
            )
        )


_LEAVES = frozenset({"action", "set", "wait"})
#: leaf steps whose recorded output replaces running them again when an interrupted run resumes
_REPLAYABLE = _LEAVES


async def _bounded(awaitable: Awaitable[Any], step: Step) -> Any:
    """Await under the step's timeout (if any), raising StepTimeout when it runs out."""
    if step.timeout is None:
        return await awaitable
    try:
        async with asyncio.timeout(step.timeout):
            return await awaitable
    except TimeoutError:
        raise StepTimeout(f"step '{step.id}' timed out after {step.timeout:g}s") from None


async def _immediate(value: Any) -> Any:
    return value


async def _awaited(result: Any) -> Any:
    """Await `result` if it is awaitable (an async action), else return it."""
    return await result if isawaitable(result) else result


def _item_error(step: Step, index: int, err: StepError, failed: int) -> StepError:
    """The map step's error: the item's error kind, so retry/catch match what really failed."""
    new = StepError(
        f"item {index} of map '{step.id}' failed ({failed} failed, {step.tolerated_failures} tolerated): {err.message}",
        kind=err.kind,
        code=err.code,
        status=err.status,
        connector=err.connector,
        retry_after=err.retry_after,
        details={"index": index, "step": getattr(err, "step_path", None)},
    )
    return new


async def _gather_first_error(coros: list[Awaitable[Any]]) -> None:
    """Run concurrently; on the first StepError cancel the rest and raise it."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except* StepError as eg:
        raise eg.exceptions[0] from None
