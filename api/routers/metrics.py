"""GET /metrics: Prometheus text exposition (public, outside /api)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from api.deps import get_state
from api.metrics import CONTENT_TYPE_LATEST
from api.state import ServiceState

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(state: ServiceState = Depends(get_state)) -> Response:
    """Runs, step latency, retries, webhook intake and queue depth in Prometheus format."""
    await asyncio.to_thread(state.metrics.refresh_queue, state.engine.db)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
