"""Run history."""
from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.deps import get_state, user_of
from api.errors import error_body
from api.routers.flows import visible
from api.state import ServiceState
from engine.model import Flow
from engine.records import RunRecord
from engine.store import audit
from engine.store.tables import runs as runs_table
from engine.users import User

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.get("")
def list_runs(
    flow_id: str | None = None,
    status: str | None = Query(None, pattern="^(running|succeeded|failed|cancelled)$"),
    since: float | None = None,
    until: float | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
    state: ServiceState = Depends(get_state),
    user: User = Depends(user_of),
) -> list[dict[str, Any]]:
    """Runs newest first, filtered by flow, status and start time (epoch seconds); a user with a team sees its flows' runs only."""
    state.engine.flush()
    flow_ids = None if user.scoped_team is None else state.users.team_flow_ids(user.scoped_team)
    runs = state.engine.runs.list(flow_id=flow_id, status=status, since=since, until=until, limit=limit, offset=offset,
                                  flow_ids=flow_ids)
    return [r.to_dict(with_steps=False) for r in runs]


@router.get("/{run_id}")
def get_run(run_id: str, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """One run with every step's rendered input, output, attempts and errors."""
    state.engine.flush()
    run = state.engine.runs.get(run_id)
    if run is None or (user.scoped_team is not None and not visible(state, user, run.flow_id)):
        raise HTTPException(404, error_body("NotFound", f"no run '{run_id}'"))
    return run.to_dict()


class RetryBody(BaseModel):
    from_: Literal["failed_step", "start"] = Field("failed_step", alias="from",
                                                  description="Resume at the failed top-level step reusing earlier outputs, or run again from the start.")


class BulkRetryBody(BaseModel):
    flow_id: str
    status: Literal["failed"] = "failed"
    since: float | None = Field(None, description="Only runs started at or after this time (epoch seconds).")
    from_: Literal["failed_step", "start"] = Field("failed_step", alias="from")
    limit: int = Field(100, ge=1, le=500)


def _visible_run(state: ServiceState, user: User, run_id: str) -> RunRecord:
    state.engine.flush()
    run = state.engine.runs.get(run_id)
    if run is None or (user.scoped_team is not None and not visible(state, user, run.flow_id)):
        raise HTTPException(404, error_body("NotFound", f"no run '{run_id}'"))
    return run


@router.post("/{run_id}/cancel")
async def cancel_run(run_id: str, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """Cancel a running run this service started (its asyncio task): it ends `cancelled`; 409 if it is not running
    here (audited as run.cancel)."""
    await asyncio.to_thread(_visible_run, state, user, run_id)
    task = state.running_task(run_id)
    if task is None:
        raise HTTPException(409, error_body("Conflict", f"run '{run_id}' is not running in this service"))
    task.cancel()
    await asyncio.wait({task}, timeout=10)
    await asyncio.to_thread(_audit, state, user.username, "run.cancel", run_id, {})
    run = await asyncio.to_thread(_visible_run, state, user, run_id)
    return run.to_dict(with_steps=False)


def _top_level(path: str | None) -> str | None:
    """`m[2].x` -> `m`: the top-level step of a step path."""
    return re.split(r"[.\[]", path, maxsplit=1)[0] or None if path else None


def _resume_plan(run: RunRecord, flow: Flow, start: str) -> dict[str, Any]:
    """The engine arguments of a retry of `run`: from its failed top-level step with earlier outputs, or from the start."""
    if start == "start":
        return {"resumed_from": run.id}
    step = _top_level((run.error or {}).get("step"))
    if step is None or step not in flow.graph.steps:
        raise ValueError(f"run '{run.id}' has no failed top-level step to resume at; retry it from the start")
    prior: dict[str, dict[str, Any]] = {}
    for record in sorted(run.steps, key=lambda s: s.seq):  # latest succeeded (or skipped) record per top-level step
        if record.path == record.step_id and record.status in ("succeeded", "skipped") and record.step_id != step:
            if record.status == "skipped" and prior.get(record.step_id, {}).get("status") == "succeeded":
                continue
            output = orjson.loads(record.output_json) if record.output_json else None
            prior[record.step_id] = {"output": output, "status": record.status}
    return {"prior_steps": prior, "start_at": step, "resumed_from": run.id}


def _retry(state: ServiceState, user: User, run: RunRecord, start: str) -> tuple[Flow, Any, dict[str, Any]]:
    if run.status != "failed":
        raise HTTPException(409, error_body("Conflict", f"run '{run.id}' is {run.status}; only failed runs are retried"))
    found = state.engine.flows.get(run.flow_id, run.flow_version)
    if found is None:
        raise HTTPException(404, error_body("NotFound", f"flow '{run.flow_id}' version {run.flow_version} is gone"))
    flow = state.engine.compile(found.definition)
    try:
        plan = _resume_plan(run, flow, start)
    except ValueError as exc:
        raise HTTPException(409, error_body("Conflict", str(exc))) from None
    return flow, orjson.loads(run.trigger_json or b"null"), plan


def _audit(state: ServiceState, actor: str, action: str, run_id: str, details: dict[str, Any]) -> None:
    with state.engine.db.begin() as conn:
        audit.record(conn, actor, action, "run", run_id, details=details)


@router.post("/{run_id}/retry", status_code=202)
async def retry_run(run_id: str, body: RetryBody = Body(RetryBody()), state: ServiceState = Depends(get_state),
                    user: User = Depends(user_of)) -> dict[str, Any]:
    """Retry a failed run as a new run linked to it (`resumed_from`), on the same flow version and trigger: from the
    failed top-level step reusing the earlier steps' outputs (`from: failed_step`, the default) or from the start."""
    run = await asyncio.to_thread(_visible_run, state, user, run_id)
    flow, trigger, plan = await asyncio.to_thread(_retry, state, user, run, body.from_)
    new_id, _task = state.start_run(flow, trigger, user.username, **plan)
    details = {"retry_of": run.id, "from": body.from_, "start_at": plan.get("start_at"), "flow_id": run.flow_id,
               "flow_version": run.flow_version}
    await asyncio.to_thread(_audit, state, user.username, "run.retry", new_id, details)
    return {"id": new_id, "flow_id": run.flow_id, "status": "running", "resumed_from": run.id, "start_at": plan.get("start_at")}


@router.post("/retry", status_code=202)
async def bulk_retry(body: BulkRetryBody, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """Retry every failed run of a flow (started since `since`) that has not been retried yet, oldest first; answers
    the new runs and the runs that could not be retried with why."""
    if not await asyncio.to_thread(visible, state, user, body.flow_id):
        raise HTTPException(404, error_body("NotFound", f"no flow '{body.flow_id}'"))
    await asyncio.to_thread(state.engine.flush)
    failed = await asyncio.to_thread(state.engine.runs.list, flow_id=body.flow_id, status="failed", since=body.since,
                                     limit=body.limit)
    retried_before = await asyncio.to_thread(_already_retried, state, [r.id for r in failed])
    started, skipped = [], []
    for listed in reversed(failed):
        if listed.id in retried_before:
            skipped.append({"run_id": listed.id, "reason": "already retried"})
            continue
        run = await asyncio.to_thread(state.engine.runs.get, listed.id)
        try:
            flow, trigger, plan = await asyncio.to_thread(_retry, state, user, run, body.from_)
        except HTTPException as exc:
            skipped.append({"run_id": listed.id, "reason": exc.detail["error"]["message"]})
            continue
        new_id, _task = state.start_run(flow, trigger, user.username, **plan)
        await asyncio.to_thread(_audit, state, user.username, "run.retry", new_id,
                                {"retry_of": run.id, "from": body.from_, "start_at": plan.get("start_at"), "bulk": True,
                                 "flow_id": run.flow_id, "flow_version": run.flow_version})
        started.append({"run_id": new_id, "retry_of": run.id, "start_at": plan.get("start_at")})
    return {"flow_id": body.flow_id, "retried": started, "run_ids": [s["run_id"] for s in started], "skipped": skipped}


def _already_retried(state: ServiceState, run_ids: list[str]) -> set[str]:
    if not run_ids:
        return set()
    with state.engine.db.connect() as conn:
        rows = conn.execute(select(runs_table.c.resumed_from).where(runs_table.c.resumed_from.in_(run_ids))).all()
    return {r[0] for r in rows}
