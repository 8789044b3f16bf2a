"""The tracked lane: one Prefect flow run per Flowlink run, one Prefect task run per step attempt.

For scheduled, long or heavy flows where seeing every run in Prefect's UI is worth
Prefect's per-task cost (~50 ms of server CPU per tracked task, docs/architecture.md).
Flowlink's interpreter still drives the graph, retries and timeouts, so semantics are
the same as in the event lane; Prefect records each attempt as a task run named
``<step path>#<attempt>``. The flow run is named after the Flowlink run id and tagged
``flowlink.run:<id>`` and ``flowlink.flow:<flow id>``, so it can be found by our id.
"""
from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import httpx
from prefect import flow, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.states import Completed, Failed

from engine.interpreter import ConnectionResolver, Interpreter
from engine.model import Flow
from engine.records import Recorder, RunRecord

PREFECT_FLOW_NAME = "flowlink-run"
_START_ATTEMPTS = 5
log_ = logging.getLogger("flowlink.tracked")

# Self-hosted installs often have no internet: Prefect's telemetry would only log DNS errors.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@dataclass
class _Job:
    flow: Flow
    trigger: Any
    recorder: Recorder
    connections: ConnectionResolver | None
    log: Callable[[str], None] | None
    kwargs: dict[str, Any]
    result: RunRecord | None = None
    token_cache: Any = None
    rate_limiter: Any = None
    started: bool = False  # the flow run exists and the interpreter began


# Prefect parameters must be serialisable, so the live objects of a run wait here,
# keyed by run id, while the flow run receives only ids.
_jobs: dict[str, _Job] = {}
_calls: dict[tuple[str, str, int], Callable[[], Awaitable[Any]]] = {}


@task(name="flowlink-step", cache_policy=NO_CACHE, persist_result=False, retries=0, log_prints=False)
async def _step_attempt(run_id: str, step: str, attempt: int) -> Any:
    call = _calls.pop((run_id, step, attempt))
    return await call()


def _invoker(run_id: str):
    async def invoke(step: str, attempt: int, call: Callable[[], Awaitable[Any]]) -> Any:
        _calls[(run_id, step, attempt)] = call
        try:
            return await _step_attempt.with_options(task_run_name=f"{step}#{attempt}")(run_id, step, attempt)
        finally:
            _calls.pop((run_id, step, attempt), None)

    return invoke


@flow(name=PREFECT_FLOW_NAME, persist_result=False, validate_parameters=False, log_prints=False)
async def _tracked_run(run_id: str, flow_id: str, flow_version: int | None, job_key: str | None = None):
    job = _jobs[job_key or run_id]
    job.started = True
    prefect_id = str(get_run_context().flow_run.id)
    interpreter = Interpreter(job.recorder, job.connections, invoke=_invoker(run_id), log=job.log,
                              token_cache=job.token_cache, rate_limiter=job.rate_limiter)
    job.result = await interpreter.execute(
        job.flow, job.trigger, run_id=run_id, lane="tracked", prefect_flow_run_id=prefect_id, **job.kwargs
    )
    if job.result.status == "failed":
        error = job.result.error or {}
        return Failed(message=f"{error.get('type')}: {error.get('message')}")
    return Completed(message=job.result.status)


async def run_tracked(
    flow_def: Flow,
    trigger: Any,
    *,
    run_id: str,
    recorder: Recorder,
    connections: ConnectionResolver | None = None,
    log: Callable[[str], None] | None = None,
    token_cache: Any = None,
    rate_limiter: Any = None,
    **kwargs: Any,
) -> RunRecord:
    """Execute one run as a Prefect flow run and return Flowlink's record of it."""
    job_key = f"{run_id}:{uuid.uuid4().hex}"  # unique: a run id may be executing twice (a stalled lease taken over)
    job = _jobs[job_key] = _Job(flow_def, trigger, recorder, connections, log, kwargs, token_cache=token_cache,
                                rate_limiter=rate_limiter)
    try:
        for attempt in range(_START_ATTEMPTS):
            try:
                with tags("flowlink", f"flowlink.run:{run_id}", f"flowlink.flow:{flow_def.id}"):
                    await _tracked_run.with_options(flow_run_name=run_id)(run_id, flow_def.id, flow_def.version, job_key, return_state=True)
                break
            except Exception as exc:
                # Prefect's server can answer 5xx while creating the flow run under load (concurrent
                # upserts of the same flow on PostgreSQL): nothing has run yet, so starting again is safe
                if job.started or attempt == _START_ATTEMPTS - 1 or not _is_server_error(exc):
                    raise
                log_.warning("Prefect refused to start run %s (%s); trying again", run_id, exc)
                await asyncio.sleep(0.2 * 2 ** attempt)
        if job.result is None:
            raise RuntimeError(f"Prefect flow run for {run_id} ended without running the flow")
        return job.result
    finally:
        _jobs.pop(job_key, None)


def _is_server_error(exc: BaseException) -> bool:
    from prefect.exceptions import PrefectHTTPStatusError

    response = getattr(exc, "response", None)
    if isinstance(exc, PrefectHTTPStatusError) and response is not None:
        return response.status_code >= 500
    return isinstance(exc, (httpx.TransportError,))


async def mark_interrupted(run_id: str, message: str) -> int:
    """Set the unfinished Prefect flow runs of `run_id` (named by it) to Crashed: their process
    died mid-run, so Prefect would show them Running forever. Returns how many; 0 when Prefect
    cannot be reached (the Flowlink run is resumed regardless)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    unfinished = FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED])
    try:
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[run_id]), state=FlowRunFilterState(type=unfinished)))
            for run in runs:
                await client.set_flow_run_state(run.id, Crashed(message=message), force=True)
    except Exception:
        log_.warning("could not mark the interrupted Prefect flow runs of %s as crashed", run_id, exc_info=True)
        return 0
    return len(runs)
