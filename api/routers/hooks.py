"""Webhook intake: /hooks/{path}, authenticated per webhook (not by the /api auth)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.deps import get_state
from api.state import ServiceState

router = APIRouter(tags=["webhooks"])


async def receive(path: str, request: Request, state: ServiceState = Depends(get_state)) -> Response:
    """Deliver an event to the active flow whose webhook trigger has this path.

    The event is committed to the inbox before the answer: 202 `{event_id, run_id}`, or with
    `respond: last` 200 and the flow's output when the run ends within `response_timeout`.
    A connector callback (`/hooks/<connector>/<path>`) is verified, answered and parsed by
    the connector's trigger (handshakes, signatures, decryption, its acknowledgement).
    """
    return await state.inbox.deliver(request, path)


for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):  # one route per method: distinct OpenAPI operation ids
    router.add_api_route("/hooks/{path:path}", receive, methods=[_method], operation_id=f"receive_webhook_{_method.lower()}")
