"""Logging set-up: plain text or structured JSON lines, with the run and step in context.

`configure()` reads `FLOWLINK_LOG_FORMAT` (`text`, default, or `json`) and `FLOWLINK_LOG_LEVEL`
(default `INFO`). The interpreter puts the run id, flow id and step path of the work under way
in context variables; every log record made meanwhile (by the engine, a connector, the HTTP
client) carries them: as fields of the JSON line, or as a `[run=... step=...]` prefix in text.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

RUN_ID: ContextVar[str | None] = ContextVar("flowlink_run_id", default=None)
FLOW_ID: ContextVar[str | None] = ContextVar("flowlink_flow_id", default=None)
STEP: ContextVar[str | None] = ContextVar("flowlink_step", default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "run_id", "flow_id", "step"}
run_log = logging.getLogger("flowlink.run")


class ContextFilter(logging.Filter):
    """Adds `run_id`, `flow_id` and `step` from the context to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = getattr(record, "run_id", None) or RUN_ID.get()
        record.flow_id = getattr(record, "flow_id", None) or FLOW_ID.get()
        record.step = getattr(record, "step", None) or STEP.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, run_id, flow_id, step, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("run_id", "flow_id", "step"):
            value = getattr(record, key, None)
            if value:
                line[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time level logger [run=... step=...] message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(context)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"run={record.run_id}" if getattr(record, "run_id", None) else "",
                 f"step={record.step}" if getattr(record, "step", None) else ""]
        context = " ".join(p for p in parts if p)
        record.context = f"[{context}] " if context else ""
        return super().format(record)


def configure(fmt: str | None = None, level: str | None = None, stream: Any = None) -> None:
    """Install one handler on the root logger (replacing earlier ones) in the chosen format."""
    fmt = (fmt or os.environ.get("FLOWLINK_LOG_FORMAT", "text")).lower()
    level = (level or os.environ.get("FLOWLINK_LOG_LEVEL", "INFO")).upper()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # let uvicorn's records reach the root handler
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def log_to_run_logger(message: str) -> None:
    """The default `ctx.log` of a step in the service: an INFO record of `flowlink.run`."""
    run_log.info(message)
