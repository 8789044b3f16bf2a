"""Flows: validate, create, list, get, update (new version), versions, run."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from pydantic import BaseModel

from api.deps import get_state
from api.errors import error_body
from api.state import ServiceState
from engine.validation import load_flow

router = APIRouter(prefix="/api/flows", tags=["flows"])
ACTOR = "api"  # replaced by the authenticated user once users and roles exist


class FlowSave(BaseModel):
    definition: dict[str, Any]
    message: str = ""
    expected_version: int | None = None


def _not_found(flow_id: str) -> HTTPException:
    return HTTPException(404, error_body("NotFound", f"no flow '{flow_id}'"))


@router.post("/validate")
def validate(definition: Any = Body(...), state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Validate a definition without saving; the same issues as `flowlink validate`."""
    result = load_flow(definition, state.engine.registry, state.engine.connection_store.kinds())
    return {"ok": result.ok, "issues": [i.to_dict() for i in result.issues]}


@router.get("")
def list_flows(state: ServiceState = Depends(get_state)) -> list[dict[str, Any]]:
    """Every flow's id, name, current version and status."""
    return state.engine.flows.list()


@router.post("", status_code=201)
def create_flow(body: FlowSave, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Create a flow (version 1); 409 if the id exists."""
    state.engine.compile(body.definition)
    saved = state.engine.flows.save(body.definition, ACTOR, body.message, expected_version=None)
    return {"id": saved.flow_id, "version": saved.version, "definition": saved.definition}


@router.get("/{flow_id}")
def get_flow(flow_id: str, version: int | None = None, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """The current (or a given) version of a flow."""
    found = state.engine.flows.get(flow_id, version)
    if found is None:
        raise _not_found(flow_id)
    return {"id": found.flow_id, "version": found.version, "definition": found.definition,
            "created_by": found.created_by, "message": found.message, "created_at": found.created_at}


@router.put("/{flow_id}")
def update_flow(flow_id: str, body: FlowSave, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Save a new version; `expected_version` must be the current one (else 409)."""
    if body.definition.get("id") != flow_id:
        raise HTTPException(422, error_body("InvalidRequest", f"definition id must be '{flow_id}'"))
    if state.engine.flows.get(flow_id) is None:
        raise _not_found(flow_id)
    if body.expected_version is None:
        raise HTTPException(428, error_body("PreconditionRequired", "expected_version is required to update a flow"))
    state.engine.compile(body.definition)
    saved = state.engine.flows.save(body.definition, ACTOR, body.message, expected_version=body.expected_version)
    return {"id": saved.flow_id, "version": saved.version, "definition": saved.definition}


@router.get("/{flow_id}/versions")
def versions(flow_id: str, state: ServiceState = Depends(get_state)) -> list[dict[str, Any]]:
    """Every version, newest first."""
    if state.engine.flows.get(flow_id) is None:
        raise _not_found(flow_id)
    return state.engine.flows.versions(flow_id)


@router.post("/{flow_id}/runs", status_code=202)
async def start_run(
    flow_id: str,
    payload: Any = Body(None),
    wait: float = Query(0, ge=0, le=300, description="Seconds to wait for the run to end before answering 202."),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    """Start a run manually with `payload` as its trigger data."""
    found = await asyncio.to_thread(state.engine.flows.get, flow_id)
    if found is None:
        raise _not_found(flow_id)
    flow = state.engine.compile(found.definition)
    run_id, task = state.start_run(flow, payload, ACTOR)
    if wait:
        done, _ = await asyncio.wait({task}, timeout=wait)
        if done:
            return task.result().to_dict(with_steps=False)
    return {"id": run_id, "flow_id": flow_id, "status": "running"}
