"""The connector catalog: manifests (actions, triggers, JSON Schemas, UI hints) and dynamic options."""
from __future__ import annotations

import uuid
from typing import Any

import jmespath
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from api.deps import get_state
from api.errors import error_body
from api.state import ServiceState
from connectors.sdk import Connector
from engine.expressions import compile_value
from engine.interpreter import Interpreter
from engine.records import MemoryRecorder
from engine.runtime import FlowInvalid

router = APIRouter(prefix="/api/connectors", tags=["connectors"])


class OptionsRequest(BaseModel):
    model_config = {"extra": "forbid"}

    action: str = Field(min_length=1, description="The action whose form needs the choices (e.g. create_contact).")
    field: str | None = Field(None, description="The field with the `x-options` hint; may be omitted when the action has one.")
    connection: str | None = Field(None, description="The connection to run the options action with.")
    args: dict[str, Any] = Field(default_factory=dict, description="The form's current values (the hint's args refer to them).")


def _fail(status: int, kind: str, message: str, **extra: Any) -> HTTPException:
    return HTTPException(status, error_body(kind, message, **extra))


def _connector(state: ServiceState, name: str) -> Connector:
    connector = state.engine.registry.connectors.get(name)
    if connector is None:
        raise _fail(404, "NotFound", f"no connector '{name}' (installed: {', '.join(sorted(state.engine.registry.connectors))})")
    return connector


@router.get("")
def list_connectors(state: ServiceState = Depends(get_state)) -> list[dict[str, Any]]:
    """Every installed connector's manifest, by name."""
    return [state.engine.registry.connectors[name].manifest() for name in sorted(state.engine.registry.connectors)]


@router.get("/{name}")
def get_connector(name: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """One connector's manifest."""
    return _connector(state, name).manifest()


def _option_hints(schema: Any, found: dict[str, dict[str, Any]], defs: dict[str, Any]) -> None:
    """Field name -> x-options hint, for the top-level properties (through Optional/$ref wrappers)."""
    for field, prop in (schema.get("properties") or {}).items():
        stack = [prop]
        while stack:
            node = stack.pop()
            if not isinstance(node, dict):
                continue
            if isinstance(node.get("x-options"), dict):
                found[field] = node["x-options"]
                break
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                stack.append(defs.get(ref.rsplit("/", 1)[1]))
            for key in ("anyOf", "oneOf", "allOf"):
                stack.extend(node.get(key) or [])


@router.post("/{name}/options")
async def options(name: str, body: OptionsRequest, state: ServiceState = Depends(get_state)) -> list[dict[str, Any]]:
    """Run the field's options action (its `x-options.action`) with the connection; `[{value, label}]`."""
    connector = _connector(state, name)
    action = connector.actions.get(body.action)
    if action is None:
        raise _fail(404, "NotFound", f"connector '{name}' has no action '{body.action}'")
    schema = action.input_schema()
    hints: dict[str, dict[str, Any]] = {}
    _option_hints(schema, hints, schema.get("$defs") or {})
    if body.field is not None:
        hint = hints.get(body.field)
        if hint is None:
            raise _fail(422, "InvalidInput", f"{name}.{body.action}: field '{body.field}' has no x-options hint "
                        f"(fields with options: {', '.join(sorted(hints)) or 'none'})")
    elif len(hints) == 1:
        hint = next(iter(hints.values()))
    else:
        raise _fail(422, "InvalidInput", f"{name}.{body.action}: give `field`, one of: {', '.join(sorted(hints)) or 'none'}")
    source = hint.get("action")
    if source not in connector.actions:
        raise _fail(422, "InvalidInput", f"x-options names unknown action '{source}'")
    try:
        args = compile_value(hint.get("args") or {})(body.args)
    except Exception as exc:  # noqa: BLE001 - a template error is the caller's input
        raise _fail(422, "InvalidInput", f"the options args cannot be rendered: {exc}") from None
    step: dict[str, Any] = {"id": "options", "type": "action", "action": f"{name}.{source}", "args": {"$literal": args}}
    if body.connection:
        step["connection"] = body.connection
    definition = {"id": f"options-{name}-{source}".replace("_", "-"), "name": "options", "trigger": {"type": "manual"},
                  "steps": [step]}
    try:
        flow = state.engine.compile(definition)
    except FlowInvalid as exc:
        raise _fail(422, "InvalidInput", "the options action cannot run with this connection and args",
                    issues=[i.to_dict() for i in exc.issues]) from None
    # through the engine's interpreter and connections, recorded in memory only (not run history)
    recorder = MemoryRecorder()
    engine = state.engine
    interpreter = Interpreter(recorder, engine.connections, token_cache=engine.token_cache, rate_limiter=engine.rate_limiter)
    record = await interpreter.execute(flow, None, run_id=str(uuid.uuid4()), lane="event")
    steps = [s for s in record.steps if s.step_id == "options"] or list(recorder.runs.get(record.id, record).steps)
    if record.status != "succeeded" or not steps or steps[-1].status != "succeeded":
        error = (steps[-1].error if steps and steps[-1].error else record.error) or {}
        raise _fail(502, "OptionsFailed", f"{name}.{source} failed: {error.get('type')}: {error.get('message')}")
    output = steps[-1].to_dict()["output"]
    try:
        items = jmespath.search(hint["items"], output) if hint.get("items") else output
        value_path, label_path = hint.get("value"), hint.get("label")
        result = []
        for item in items or []:
            value = jmespath.search(value_path, item) if value_path else item
            label = jmespath.search(label_path, item) if label_path else value
            result.append({"value": value, "label": label if label is not None else value})
    except (jmespath.exceptions.JMESPathError, TypeError) as exc:
        raise _fail(502, "OptionsFailed", f"the x-options paths do not fit {name}.{source}'s output: {exc}") from None
    return result
