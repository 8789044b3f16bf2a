"""Webhook deliveries (`/hooks/...`) served ahead of FastAPI's routing and dependency resolution.

Why: a delivery is the service's hot path, and measured with `py-spy --gil` FastAPI's route
matching over every /api router, dependency solving and per-route wrappers took about two
thirds of the API's CPU per acknowledgement; the intake itself (authenticate, parse, commit)
about a quarter. The `/hooks/{path}` routes stay registered with FastAPI for the OpenAPI
document and behave the same; this middleware answers first, with the same handler and the
same JSON error bodies.
"""
from __future__ import annotations

import logging

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_body

log = logging.getLogger("flowlink.hooks")

PREFIX = "/hooks/"


class WebhookFastPath:
    """Pure ASGI middleware: `/hooks/<path>` goes straight to the inbox, everything else on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a webhook delivery, or pass the request on."""
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state.flowlink
        path = scope["path"][len(PREFIX):]
        request = Request(scope, receive)
        try:
            response = await state.inbox.intake(request, path)
        except HTTPException as exc:
            if state.metrics is not None:  # not found, wrong method, unauthenticated, too large, malformed
                hook = state.inbox._hooks.get(path)
                state.metrics.webhook(hook.flow_id if hook is not None else "", "rejected")
            detail = exc.detail if isinstance(exc.detail, dict) else error_body("HTTPError", str(exc.detail))
            response = JSONResponse(detail, status_code=exc.status_code, headers=exc.headers)
        except Exception:
            log.exception("webhook delivery to /hooks/%s failed", path)
            response = JSONResponse(error_body("InternalError", "the delivery could not be stored; send it again"),
                                    status_code=500)
        await response(scope, receive, send)
