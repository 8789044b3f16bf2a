"""The audit log (admin only): who did what to which object, with before/after (secrets redacted)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from api.deps import get_state
from api.state import ServiceState
from engine.store import audit

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("")
def list_entries(
    actor: str | None = None,
    target_type: str | None = Query(None, description="flow, run, connection, user, api_key, ..."),
    target_id: str | None = None,
    action: str | None = Query(None, description="e.g. flow.update, flow.activate, run.start, auth.login_failed, user.role_change"),
    since: float | None = Query(None, description="epoch seconds"),
    limit: int = Query(100, ge=1, le=1000),
    state: ServiceState = Depends(get_state),
) -> list[dict[str, Any]]:
    """Entries newest first: id, at, actor, action, target_type, target_id, before, after, details."""
    return audit.entries(state.engine.db, actor=actor, target_type=target_type, target_id=target_id,
                         action=action, since=since, limit=limit)
