"""The webhook inbox: events, queue depth, replay."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from api.deps import get_state, user_of
from api.errors import error_body
from api.routers.flows import visible
from api.state import ServiceState
from engine.users import User

router = APIRouter(prefix="/api/events", tags=["events"])


@router.get("")
async def list_events(
    status: str | None = Query(None, pattern="^(accepted|running|done|failed|dead)$"),
    flow_id: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
    state: ServiceState = Depends(get_state),
    user: User = Depends(user_of),
) -> dict[str, Any]:
    """Webhook events newest first (without payloads) and the queue depth (`accepted` events).

    A user with a team sees only its flows' events (the page is filtered after paging)."""
    found = await asyncio.to_thread(state.inbox.list_events, status, flow_id, limit, offset)
    if user.scoped_team is not None:
        mine = set(await asyncio.to_thread(state.users.team_flow_ids, user.scoped_team))
        found["events"] = [e for e in found["events"] if e["flow_id"] in mine]
    return found


@router.get("/{event_id}")
async def get_event(event_id: str, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """One event with its payload."""
    found = await asyncio.to_thread(state.inbox.get_event, event_id)
    if found is None or not await asyncio.to_thread(_visible, state, user, found["flow_id"]):
        raise HTTPException(404, error_body("NotFound", f"no event '{event_id}'"))
    return found


@router.post("/{event_id}/replay", status_code=202)
async def replay(event_id: str, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """Run a finished (`done` or `dead`) event again, under a new run id."""
    if user.scoped_team is not None:
        event = await asyncio.to_thread(state.inbox.get_event, event_id)
        if event is None or not await asyncio.to_thread(_visible, state, user, event["flow_id"]):
            raise HTTPException(404, error_body("NotFound", f"no event '{event_id}'"))
    result = await asyncio.to_thread(state.inbox.replay, event_id, user.username)
    if result is None:
        raise HTTPException(404, error_body("NotFound", f"no event '{event_id}'"))
    if not result:
        raise HTTPException(409, error_body("Conflict", f"event '{event_id}' is still queued or running"))
    return result


def _visible(state: ServiceState, user: User, flow_id: str) -> bool:
    return user.scoped_team is None or visible(state, user, flow_id)
