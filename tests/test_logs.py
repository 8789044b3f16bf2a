"""Structured logs: JSON lines carrying the run, flow and step of the work under way."""
from __future__ import annotations

import io
import logging

import orjson
import pytest

from engine.logs import configure
from engine.runtime import FlowEngine


@pytest.fixture(autouse=True)
def _restore_logging():
    """configure() replaces the root handlers (pytest's capture ones too): put them back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    uvicorn = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
               for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (saved, propagate) in uvicorn.items():
        logging.getLogger(name).handlers[:] = saved
        logging.getLogger(name).propagate = propagate


@pytest.fixture()
def json_log():
    stream = io.StringIO()
    configure("json", "INFO", stream=stream)
    return stream


async def test_step_logs_are_json_lines_with_run_and_step(json_log: io.StringIO, sqlite_url: str) -> None:
    engine = FlowEngine(sqlite_url)
    flow = engine.compile({"id": "logged", "name": "logged", "trigger": {"type": "manual"},
                           "steps": [{"id": "say", "type": "action", "action": "core.log",
                                      "args": {"message": "lead {{ trigger.id }} received"}}]})
    record = await engine.run(flow, {"id": "L-7"})
    logging.getLogger("flowlink.test").warning("outside a run", extra={"event_id": "e1"})
    engine.close()
    lines = [orjson.loads(line) for line in json_log.getvalue().splitlines()]
    said = next(line for line in lines if line["message"] == "[info] lead L-7 received")
    assert said["run_id"] == record.id and said["flow_id"] == "logged" and said["step"] == "say"
    assert said["logger"] == "flowlink.run" and said["level"] == "info" and said["ts"].endswith("Z")
    outside = next(line for line in lines if line["message"] == "outside a run")
    assert "run_id" not in outside and outside["event_id"] == "e1"


def test_text_format_prefixes_the_context() -> None:
    from engine.logs import RUN_ID, STEP

    stream = io.StringIO()
    configure("text", "INFO", stream=stream)
    tokens = RUN_ID.set("r-1"), STEP.set("m[2].call")
    logging.getLogger("flowlink.test").info("hello")
    RUN_ID.reset(tokens[0]), STEP.reset(tokens[1])
    assert "[run=r-1 step=m[2].call] hello" in stream.getvalue()
