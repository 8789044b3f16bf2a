"""Flow templates: the ready-made flows shipped in flows/, to start a new flow from in the editor."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException

from api.errors import error_body

router = APIRouter(prefix="/api/templates", tags=["templates"])
FLOWS = Path(__file__).resolve().parent.parent.parent / "flows"


def _connectors(steps: list[dict[str, Any]], found: set[str]) -> set[str]:
    for step in steps:
        if step.get("type") == "action" and isinstance(step.get("action"), str):
            found.add(step["action"].split(".", 1)[0].split("@", 1)[0])
        _connectors(step.get("steps") or [], found)
        for branch in step.get("branches") or []:
            _connectors(branch.get("steps") or [], found)
    return found


@functools.lru_cache(maxsize=1)
def _templates() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(FLOWS.glob("*.json")):
        definition = orjson.loads(path.read_bytes())
        definition.pop("version", None)
        found[definition["id"]] = definition
    return found


@router.get("")
def list_templates() -> list[dict[str, Any]]:
    """Every shipped flow: id, name, description, trigger type and the connectors it uses."""
    out = []
    for template_id, definition in _templates().items():
        trigger = definition.get("trigger") or {}
        trigger_connector = trigger.get("type", "").split(".", 1)[0] if "." in trigger.get("type", "") else None
        connectors = _connectors(definition.get("steps") or [], {trigger_connector} if trigger_connector else set())
        out.append({"id": template_id, "name": definition.get("name", template_id), "description": definition.get("description", ""),
                    "trigger": trigger.get("type"), "connectors": sorted(connectors), "tags": definition.get("tags", [])})
    return out


@router.get("/{template_id}")
def get_template(template_id: str) -> dict[str, Any]:
    """A template's flow definition (copy it under a new id to start a flow from it)."""
    definition = _templates().get(template_id)
    if definition is None:
        raise HTTPException(404, error_body("NotFound", f"no template '{template_id}'"))
    return definition
