"""Run history."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from api.deps import get_state, user_of
from api.errors import error_body
from api.routers.flows import visible
from api.state import ServiceState
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
