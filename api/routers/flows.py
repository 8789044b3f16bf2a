"""Flows: validate, create, list, get, update (new version), versions, run."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import get_state, user_of
from api.errors import error_body
from api.state import ServiceState
from engine.store import audit
from engine.store.flows import PathConflict
from engine.users import User
from engine.validation import load_flow

router = APIRouter(prefix="/api/flows", tags=["flows"])


class FlowOwner(BaseModel):
    owner: str | None = Field(None, max_length=100, description="A team name; null: no owner (only unscoped users see it).")


class FlowSave(BaseModel):
    definition: dict[str, Any]
    message: str = ""
    expected_version: int | None = None


def _not_found(flow_id: str) -> HTTPException:
    return HTTPException(404, error_body("NotFound", f"no flow '{flow_id}'"))


def visible(state: ServiceState, user: User, flow_id: str) -> bool:
    """A user with a team (not an admin) sees only the flows that team owns."""
    exists, owner = state.users.flow_owner(flow_id)
    return exists and (user.scoped_team is None or owner == user.scoped_team)


def check_visible(state: ServiceState, user: User, flow_id: str) -> None:
    """404 (not 403: other teams' flow ids stay private) unless `user` may see the flow."""
    if not visible(state, user, flow_id):
        raise _not_found(flow_id)


@router.post("/validate")
def validate(definition: Any = Body(...), state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Validate a definition without saving; the same issues as `flowlink validate`."""
    result = load_flow(definition, state.engine.registry, state.engine.connection_store.kinds())
    return {"ok": result.ok, "issues": [i.to_dict() for i in result.issues]}


@router.get("")
def list_flows(state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> list[dict[str, Any]]:
    """Every flow's id, name, current version and status (only the user's team's flows if it has one)."""
    team = user.scoped_team
    return [f for f in state.engine.flows.list() if team is None or f.get("owner") == team]


@router.post("", status_code=201)
def create_flow(body: FlowSave, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """Create a flow (version 1); 409 if the id exists. A user with a team makes it that team's flow."""
    state.engine.compile(body.definition)
    saved = state.engine.flows.save(body.definition, user.username, body.message, expected_version=None)
    if user.scoped_team:
        state.users.set_flow_owner(saved.flow_id, user.scoped_team, user.username)
    return {"id": saved.flow_id, "version": saved.version, "definition": saved.definition}


@router.get("/{flow_id}")
def get_flow(flow_id: str, version: int | None = None, state: ServiceState = Depends(get_state),
             user: User = Depends(user_of)) -> dict[str, Any]:
    """The current (or a given) version of a flow."""
    check_visible(state, user, flow_id)
    found = state.engine.flows.get(flow_id, version)
    if found is None:
        raise _not_found(flow_id)
    return {"id": found.flow_id, "version": found.version, "definition": found.definition,
            "created_by": found.created_by, "message": found.message, "created_at": found.created_at}


@router.put("/{flow_id}")
def update_flow(flow_id: str, body: FlowSave, state: ServiceState = Depends(get_state),
                user: User = Depends(user_of)) -> dict[str, Any]:
    """Save a new version; `expected_version` must be the current one (else 409)."""
    check_visible(state, user, flow_id)
    if body.definition.get("id") != flow_id:
        raise HTTPException(422, error_body("InvalidRequest", f"definition id must be '{flow_id}'"))
    if state.engine.flows.get(flow_id) is None:
        raise _not_found(flow_id)
    if body.expected_version is None:
        raise HTTPException(428, error_body("PreconditionRequired", "expected_version is required to update a flow"))
    state.engine.compile(body.definition)
    saved = state.engine.flows.save(body.definition, user.username, body.message, expected_version=body.expected_version)
    return {"id": saved.flow_id, "version": saved.version, "definition": saved.definition}


@router.get("/{flow_id}/versions")
def versions(flow_id: str, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> list[dict[str, Any]]:
    """Every version, newest first."""
    check_visible(state, user, flow_id)
    if state.engine.flows.get(flow_id) is None:
        raise _not_found(flow_id)
    return state.engine.flows.versions(flow_id)


@router.post("/{flow_id}/runs", status_code=202)
async def start_run(
    flow_id: str,
    payload: Any = Body(None),
    wait: float = Query(0, ge=0, le=300, description="Seconds to wait for the run to end before answering 202."),
    state: ServiceState = Depends(get_state),
    user: User = Depends(user_of),
) -> dict[str, Any]:
    """Start a run manually with `payload` as its trigger data (audited as run.start)."""
    found = await asyncio.to_thread(state.engine.flows.get, flow_id)
    if found is None or not await asyncio.to_thread(visible, state, user, flow_id):
        raise _not_found(flow_id)
    flow = state.engine.compile(found.definition)
    run_id, task = state.start_run(flow, payload, user.username)
    await asyncio.to_thread(_audit_run, state, user.username, run_id, flow_id, found.version)
    if wait:
        done, _ = await asyncio.wait({task}, timeout=wait)
        if done:
            return task.result().to_dict(with_steps=False)
    return {"id": run_id, "flow_id": flow_id, "status": "running"}


def _audit_run(state: ServiceState, actor: str, run_id: str, flow_id: str, version: int) -> None:
    with state.engine.db.begin() as conn:
        audit.record(conn, actor, "run.start", "run", run_id, details={"flow_id": flow_id, "flow_version": version})


def _set_active(flow_id: str, active: bool, state: ServiceState, user: User) -> dict[str, Any]:
    check_visible(state, user, flow_id)
    try:
        result = state.engine.flows.set_active(flow_id, active, user.username)
    except PathConflict as exc:
        raise HTTPException(409, error_body("Conflict", str(exc))) from None
    if result is None:
        raise _not_found(flow_id)
    return {"id": flow_id, "active": result}


@router.post("/{flow_id}/activate")
def activate(flow_id: str, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """Activate a flow: its webhook (if any) starts accepting events (409 if its path is taken)."""
    return _set_active(flow_id, True, state, user)


@router.post("/{flow_id}/deactivate")
def deactivate(flow_id: str, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """Deactivate a flow: its webhook answers 404 from now on."""
    return _set_active(flow_id, False, state, user)


@router.put("/{flow_id}/owner")
def set_owner(flow_id: str, body: FlowOwner, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """Give a flow to a team (admin): users of that team then see it and its runs (audited as flow.owner_change)."""
    if state.engine.flows.get(flow_id) is None:
        raise _not_found(flow_id)
    state.users.set_flow_owner(flow_id, body.owner or None, user.username)
    return {"id": flow_id, "owner": body.owner or None}
