"""The web editor: the built single-page app at `/` and the editor's small helper endpoints.

`static` serves `ui/dist` (or `FLOWLINK_UI_DIST`): a file when one exists, else `index.html`, so
client-side routes such as `/flows/lead-intake` survive a reload. `/api`, `/hooks` and `/metrics`
are never answered with the page. `router` holds the /api helpers (behind the usual login).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field
from starlette.convertors import Convertor, register_url_convertor

from engine.errors import StepError
from engine.expressions import ExpressionSyntaxError, compile_expression, compile_value

#: path prefixes that belong to the service, never to the single-page app
RESERVED = ("api", "hooks", "metrics")


class PagePath(Convertor[str]):
    """Any path outside RESERVED: the page route never even matches those, so their 404s and 405s stay as they were."""

    regex = r"(?!(?:" + "|".join(RESERVED) + r")(?:/|$)).*"

    def convert(self, value: str) -> str:
        """The path as matched."""
        return value

    def to_string(self, value: str) -> str:
        """The path as given."""
        return value


register_url_convertor("page", PagePath())

router = APIRouter(prefix="/api/ui", tags=["ui"])
static = APIRouter(include_in_schema=False)
DEFAULT_DIST = Path(__file__).resolve().parents[2] / "ui" / "dist"

NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Flowlink</title>
<p>The web editor is not built yet: run <code>make ui</code> (or <code>make run</code>).
The HTTP API is at <a href="/api/docs">/api/docs</a>.</p>"""


def dist_dir() -> Path:
    """Where the built UI lives: `FLOWLINK_UI_DIST`, else `ui/dist` next to the source tree, else `ui/dist` in the
    working directory (an installed, non-editable package, e.g. the Docker image's /app/ui/dist)."""
    if os.environ.get("FLOWLINK_UI_DIST"):
        return Path(os.environ["FLOWLINK_UI_DIST"])
    for candidate in (DEFAULT_DIST, Path.cwd() / "ui" / "dist"):
        if (candidate / "index.html").is_file():
            return candidate
    return DEFAULT_DIST


class PreviewRequest(BaseModel):
    expression: str = Field(max_length=10_000, description="JMESPath (mode expr) or a `{{ }}` string template (mode template).")
    mode: Literal["expr", "template"] = "expr"
    context: dict[str, Any] = Field(default_factory=dict, description="Sample context: trigger, vars, steps.<id>.output, ...")


@router.post("/preview")
def preview(body: PreviewRequest) -> dict[str, Any]:
    """Evaluate an expression against sample context with the engine's own functions: `{ok, value}` or
    `{ok: false, error}` naming the syntax or evaluation problem (never a 4xx: the editor shows it as you type)."""
    try:
        if body.mode == "expr":
            value = compile_expression(body.expression).search(body.context)
        else:
            value = compile_value(body.expression)(body.context)
    except ExpressionSyntaxError as exc:
        return {"ok": False, "error": {"type": "ExpressionSyntax", "message": str(exc)}}
    except StepError as exc:
        return {"ok": False, "error": {"type": exc.to_dict().get("type", "ExpressionError"), "message": str(exc)}}
    except (ValueError, TypeError) as exc:
        return {"ok": False, "error": {"type": "ExpressionError", "message": str(exc)}}
    return {"ok": True, "value": value}


def _file(root: Path, path: str) -> Path | None:
    """`path` inside `root` when it is an existing file (no escaping the directory)."""
    if not path:
        return None
    candidate = (root / path).resolve()
    if candidate.is_file() and candidate.is_relative_to(root.resolve()):
        return candidate
    return None


@static.get("/{path:page}")
def spa(path: str) -> Response:
    """A built file, or the app's index.html for any other page route."""
    root = dist_dir()
    found = _file(root, path)
    if found is not None:
        # Vite puts a content hash in every asset name: those can be cached for good
        cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
        return FileResponse(found, headers={"Cache-Control": cache})
    index = root / "index.html"
    if not index.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503)
    return FileResponse(index, headers={"Cache-Control": "no-cache"})
