"""Liveness and readiness."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import text

from api.deps import get_state
from api.state import ServiceState

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready")
def ready(state: ServiceState = Depends(get_state)) -> dict[str, object]:
    """The database answers."""
    with state.engine.db.connect() as conn:
        conn.execute(text("select 1"))
    return {"status": "ready", "database": state.engine.db.dialect.name}
