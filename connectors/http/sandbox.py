"""The `http` connector's sandbox: a small echo server, so flows and the contract kit can
try HTTP steps on 127.0.0.1 without touching a real system.

- ``/echo`` (any method): answers 200 with the method, query, headers and JSON body it got;
- ``/status/{code}``: answers that status (``?retry_after=S`` adds Retry-After);
- ``/bearer``: 401 unless ``Authorization: Bearer sandbox-token``.
"""
from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SANDBOX_TOKEN = "sandbox-token"


async def _echo(request: Request) -> Response:
    raw = await request.body()
    body: Any
    try:
        body = await request.json() if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return JSONResponse({"method": request.method, "query": dict(request.query_params),
                         "headers": {k.lower(): v for k, v in request.headers.items()}, "body": body})


async def _status(request: Request) -> Response:
    code = request.path_params["code"]
    headers = {"Retry-After": request.query_params["retry_after"]} if "retry_after" in request.query_params else {}
    return JSONResponse({"error": f"status {code}"}, status_code=code, headers=headers)


async def _bearer(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {SANDBOX_TOKEN}":
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    return JSONResponse({"ok": True})


def app() -> Starlette:
    """A fresh echo server application."""
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[
        Route("/echo", _echo, methods=methods),
        Route("/status/{code:int}", _status, methods=methods),
        Route("/bearer", _bearer, methods=methods),
    ])
