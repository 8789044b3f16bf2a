"""Flows: validate, create, list, get, update (new version), versions, run."""
from __future__ import annotations

import asyncio
from typing import Any

import difflib

import jsonpatch
import orjson
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response
from fastapi.responses import JSONResponse
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


class FlowRollback(BaseModel):
    to_version: int = Field(..., ge=1)
    expected_version: int = Field(..., ge=1, description="The current version the caller saw (409 if the flow moved on).")
    message: str = ""


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
def list_flows(
    response: Response,
    q: str | None = Query(None, max_length=200, description="Case-insensitive text in the flow's id or name."),
    active: bool | None = None,
    tag: str | None = Query(None, max_length=100, description="Only flows whose current definition has this tag."),
    limit: int | None = Query(None, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    state: ServiceState = Depends(get_state),
    user: User = Depends(user_of),
) -> list[dict[str, Any]]:
    """Flows by id (id, name, current version, status), filtered and paged; the X-Total-Count header has the filtered
    total. A user with a team sees only that team's flows; deleted flows are hidden."""
    team = user.scoped_team
    found = [f for f in state.engine.flows.list() if team is None or f.get("owner") == team]
    if q:
        needle = q.lower()
        found = [f for f in found if needle in f["id"].lower() or needle in (f.get("name") or "").lower()]
    if active is not None:
        found = [f for f in found if bool(f["active"]) == active]
    if tag is not None:
        definitions = state.engine.flows.current_definitions()
        found = [f for f in found if tag in (definitions.get(f["id"], {}).get("tags") or [])]
    response.headers["X-Total-Count"] = str(len(found))
    return found[offset:None if limit is None else offset + limit]


@router.post("/import")
def import_flow(
    body: Any = Body(..., description="A flow definition, or {definition, expected_version?, message?}."),
    expected_version: int | None = Query(None, ge=1, description="Update this version of an existing flow (else: create)."),
    message: str = Query("", max_length=500),
    state: ServiceState = Depends(get_state),
    user: User = Depends(user_of),
) -> Response:
    """Import an exported definition: validated, then created (201) or, with `expected_version`, saved as the flow's
    next version (200); 409 if the id exists without `expected_version` or the flow moved on."""
    if isinstance(body, dict) and isinstance(body.get("definition"), dict):
        expected_version = body.get("expected_version", expected_version)
        message = body.get("message") or message
        body = body["definition"]
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise HTTPException(422, error_body("InvalidRequest", "send a flow definition (an object with an id)"))
    definition = {k: v for k, v in body.items() if k != "version"}
    state.engine.compile(definition)
    flow_id = definition["id"]
    exists, _owner = state.users.flow_owner(flow_id)
    if expected_version is not None:
        if not exists:
            raise _not_found(flow_id)
        check_visible(state, user, flow_id)
    saved = state.engine.flows.save(definition, user.username, message or "imported", expected_version=expected_version)
    if not exists and user.scoped_team:
        state.users.set_flow_owner(flow_id, user.scoped_team, user.username)
    with state.engine.db.begin() as conn:
        audit.record(conn, user.username, "flow.import", "flow", flow_id,
                     details={"version": saved.version, "created": not exists})
    return JSONResponse({"id": saved.flow_id, "version": saved.version, "created": not exists, "definition": saved.definition},
                        status_code=201 if not exists else 200)


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
        if done and not task.cancelled():
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


def _content(definition: dict[str, Any]) -> dict[str, Any]:
    """A stored definition without the `version` the store stamps on it."""
    return {k: v for k, v in definition.items() if k != "version"}


@router.get("/{flow_id}/diff")
def diff(
    flow_id: str,
    from_version: int = Query(..., alias="from", ge=1),
    to_version: int | None = Query(None, alias="to", ge=1, description="Default: the current version."),
    state: ServiceState = Depends(get_state),
    user: User = Depends(user_of),
) -> dict[str, Any]:
    """What changed between two versions: RFC 6902 operations (`patch`, from -> to) and a unified diff of the
    pretty-printed JSON (`text`). The store's `version` field is left out of both."""
    check_visible(state, user, flow_id)
    old = state.engine.flows.get(flow_id, from_version)
    new = state.engine.flows.get(flow_id, to_version)
    if old is None or new is None:
        raise HTTPException(404, error_body("NotFound", f"flow '{flow_id}' has no version {from_version if old is None else to_version}"))
    before, after = _content(old.definition), _content(new.definition)
    pretty = lambda d: orjson.dumps(d, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode().splitlines(keepends=True)  # noqa: E731
    text = "".join(difflib.unified_diff(pretty(before), pretty(after), f"{flow_id}@{old.version}", f"{flow_id}@{new.version}"))
    return {"id": flow_id, "from": old.version, "to": new.version, "patch": jsonpatch.make_patch(before, after).patch, "text": text}


@router.post("/{flow_id}/rollback")
def rollback(flow_id: str, body: FlowRollback, state: ServiceState = Depends(get_state),
             user: User = Depends(user_of)) -> dict[str, Any]:
    """Save version `to_version`'s definition as the flow's NEW current version (history is never rewritten);
    `expected_version` must be the current one (else 409). Audited as flow.update and flow.rollback."""
    check_visible(state, user, flow_id)
    old = state.engine.flows.get(flow_id, body.to_version)
    if old is None:
        raise HTTPException(404, error_body("NotFound", f"flow '{flow_id}' has no version {body.to_version}"))
    definition = _content(old.definition)
    state.engine.compile(definition)
    saved = state.engine.flows.save(definition, user.username, body.message or f"rollback to version {body.to_version}",
                                    expected_version=body.expected_version)
    with state.engine.db.begin() as conn:
        audit.record(conn, user.username, "flow.rollback", "flow", flow_id,
                     details={"to_version": body.to_version, "from_version": body.expected_version, "version": saved.version})
    return {"id": saved.flow_id, "version": saved.version, "rolled_back_to": body.to_version, "definition": saved.definition}


@router.delete("/{flow_id}")
def delete_flow(flow_id: str, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """Soft-delete: the flow is deactivated and hidden from list and get; its versions and runs are kept (audited as
    flow.delete)."""
    check_visible(state, user, flow_id)
    deleted_at = state.engine.flows.delete(flow_id, user.username)
    if deleted_at is None:
        raise _not_found(flow_id)
    return {"id": flow_id, "deleted_at": deleted_at, "active": False}


@router.get("/{flow_id}/export")
def export(flow_id: str, version: int | None = Query(None, ge=1), state: ServiceState = Depends(get_state),
           user: User = Depends(user_of)) -> Response:
    """The current (or a given) version's definition as a JSON download, ready for POST /api/flows/import."""
    check_visible(state, user, flow_id)
    found = state.engine.flows.get(flow_id, version)
    if found is None:
        raise _not_found(flow_id)
    data = orjson.dumps(_content(found.definition), option=orjson.OPT_INDENT_2) + b"\n"
    return Response(data, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="{flow_id}.v{found.version}.json"', "X-Flow-Version": str(found.version)})
