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

from api.errors import error_body, http_error_response

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
        inbox = scope["app"].state.flowlink.inbox
        path = scope["path"][len(PREFIX):]
        try:
            response = await inbox.deliver(Request(scope, receive), path)
        except HTTPException as exc:
            response = http_error_response(exc)
        except Exception:
            log.exception("webhook delivery to /hooks/%s failed", path)
            response = JSONResponse(error_body("InternalError", "the delivery could not be stored; send it again"),
                                    status_code=500)
        await response(scope, receive, send)
