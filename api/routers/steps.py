"""The editor's "test step": run one step of a flow with sample input, nothing persisted."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from api.deps import get_state, user_of
from api.errors import error_body
from api.routers.flows import check_visible
from api.state import ServiceState
from engine.errors import StepError, error_from_exception
from engine.interpreter import Interpreter
from engine.model import Graph, Step
from engine.records import MemoryRecorder, RunRecord
from engine.store import audit
from engine.users import User

router = APIRouter(prefix="/api/steps", tags=["steps"])

#: step types the test button runs on their own (maps, parallels and waits need the whole flow)
TESTABLE = ("action", "set", "choice")
#: upper bound of one test (the step's own timeout and retry still apply inside it)
TEST_TIMEOUT = 120.0


class StepContext(BaseModel):
    trigger: Any = None
    steps: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Earlier steps: {id: {output, status?}}.")
    vars: dict[str, Any] | None = Field(None, description="Overrides of the flow's vars.")
    item: Any = None
    index: int | None = None


class StepTest(BaseModel):
    definition: dict[str, Any] | None = Field(None, description="A flow definition (the editor's unsaved state).")
    flow_id: str | None = Field(None, description="Or a stored flow (its current version).")
    step_id: str
    context: StepContext = Field(default_factory=StepContext)


def _find(graph: Graph, step_id: str) -> Step | None:
    """A step anywhere in the flow (maps' inner graphs and parallel branches included)."""
    for step in graph.steps.values():
        if step.id == step_id:
            return step
        inner = [step.graph] if step.graph is not None else []
        inner += [b.graph for b in step.branches]
        for sub in inner:
            found = _find(sub, step_id)
            if found is not None:
                return found
    return None


@router.post("/test")
async def test_step(body: StepTest, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """Run one action, set or choice step with sample context through the interpreter (connections resolved,
    retries applied) and answer its rendered input, output or error, attempts and duration. Nothing is stored."""
    if (body.definition is None) == (body.flow_id is None):
        raise HTTPException(422, error_body("InvalidRequest", "send either definition or flow_id"))
    definition = body.definition
    if definition is None:
        await asyncio.to_thread(check_visible, state, user, body.flow_id)
        found = await asyncio.to_thread(state.engine.flows.get, body.flow_id)
        if found is None:
            raise HTTPException(404, error_body("NotFound", f"no flow '{body.flow_id}'"))
        definition = found.definition
    flow = await asyncio.to_thread(state.engine.compile, definition)
    step = _find(flow.graph, body.step_id)
    if step is None:
        raise HTTPException(404, error_body("NotFound", f"flow '{flow.id}' has no step '{body.step_id}'"))
    if step.type not in TESTABLE:
        raise HTTPException(422, error_body("InvalidRequest", f"step '{step.id}' is a {step.type} step; only "
                                            f"{', '.join(TESTABLE)} steps can be tested on their own"))
    recorder = MemoryRecorder()
    interpreter = Interpreter(recorder, state.engine.connections, token_cache=state.engine.token_cache,
                              rate_limiter=state.engine.rate_limiter)
    run = RunRecord(id=f"test-{uuid.uuid4()}", flow_id=flow.id, flow_version=flow.version, lane="test", status="running",
                    started_at=time.time())
    recorder.run_started(run)
    scope: dict[str, Any] = {
        "trigger": body.context.trigger,
        "vars": {**(flow.vars or {}), **(body.context.vars or {})},
        "steps": {k: {"output": v.get("output"), "status": v.get("status", "succeeded"), **({"error": v["error"]} if "error" in v else {})}
                  for k, v in body.context.steps.items()},
        "run": {"id": run.id, "flow_id": flow.id, "flow_version": flow.version},
    }
    if body.context.index is not None or body.context.item is not None:
        scope.update(item=body.context.item, index=body.context.index)
    began = time.time()
    error: dict[str, Any] | None = None
    next_step: str | None = None
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            next_step = await interpreter.run_step(flow, step, scope, run)
    except StepError as err:
        error = err.to_dict()
    except TimeoutError:
        error = {"type": "StepTimeout", "message": f"the test took longer than {TEST_TIMEOUT:g}s"}
    except Exception as exc:  # an untyped failure (a bug, the keyring): shown like a step error
        error = error_from_exception(exc).to_dict()
    duration = round((time.time() - began) * 1000, 3)
    record = next((r for r in reversed(run.steps) if r.step_id == step.id), None)
    shown = record.to_dict() if record is not None else {}
    status = shown.get("status") or ("failed" if error else "succeeded")
    if error is None and record is not None and record.error:
        error = record.error  # failed, then caught by the step's catch
        status = "failed"
    await asyncio.to_thread(_audit, state, user.username, flow.id, step.id, status)
    return {
        "flow_id": flow.id,
        "step_id": step.id,
        "type": step.type,
        "status": status,
        "input": shown.get("input"),
        "output": shown.get("output") if error is None else None,
        "error": error,
        "attempts": shown.get("attempts", []),
        "duration_ms": shown.get("duration_ms", duration),
        "next": next_step if error is None else None,
    }


def _audit(state: ServiceState, actor: str, flow_id: str, step_id: str, status: str) -> None:
    with state.engine.db.begin() as conn:
        audit.record(conn, actor, "step.test", "flow", flow_id, details={"step_id": step_id, "status": status})
