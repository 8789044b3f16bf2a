"""Every error answer is JSON: {"error": {"type", "message", "issues"?}}."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.runtime import FlowInvalid
from engine.store.flows import VersionConflict


def error_body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON error envelope."""
    return {"error": {"type": kind, "message": message, **extra}}


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    """An HTTPException as the JSON error envelope (a dict detail is the envelope already)."""
    detail = exc.detail if isinstance(exc.detail, dict) else error_body("HTTPError", str(exc.detail))
    return JSONResponse(detail, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def install(app: FastAPI) -> None:
    """Register the JSON error handlers."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [{"pointer": "/" + "/".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        return JSONResponse(error_body("InvalidRequest", "the request is not valid", issues=issues), status_code=422)

    @app.exception_handler(FlowInvalid)
    async def flow_invalid(_req: Request, exc: FlowInvalid) -> JSONResponse:
        return JSONResponse(error_body("FlowInvalid", "the flow definition is not valid",
                                       issues=[i.to_dict() for i in exc.issues]), status_code=422)

    @app.exception_handler(VersionConflict)
    async def conflict(_req: Request, exc: VersionConflict) -> JSONResponse:
        return JSONResponse(error_body("VersionConflict", str(exc), current_version=exc.current), status_code=409)
