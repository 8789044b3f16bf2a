"""FastAPI dependencies shared by the routers."""
from __future__ import annotations

from fastapi import Request

from api.state import ServiceState


def get_state(request: Request) -> ServiceState:
    """The service state created at start-up (engine, background runs)."""
    return request.app.state.flowlink
