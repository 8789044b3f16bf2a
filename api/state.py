"""What the service keeps while it runs: the engine, the user store and its in-flight runs."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson

from api.inbox import Inbox
from api.metrics import Metrics, MetricsRecorder
from api.maintenance import Maintenance
from api.scheduler import Scheduler
from engine.model import Flow
from engine.records import RunRecord
from engine.runtime import FlowEngine, FlowInvalid
from engine.users import UserStore

log = logging.getLogger("flowlink.api")


class ServiceState:
    """The engine plus the asyncio tasks of runs started through the API."""

    def __init__(self, engine: FlowEngine) -> None:
        self.engine = engine
        self.users = UserStore(engine.db)
        self.tasks: set[asyncio.Task[RunRecord]] = set()
        self.metrics = Metrics()
        engine.metrics_recorder = MetricsRecorder(self.metrics)
        self.inbox = Inbox(engine)
        self.inbox.metrics = self.metrics
        self.scheduler = Scheduler(engine)  # schedules and polls of active flows
        self.maintenance = Maintenance(engine)  # prunes run history past its retention

    def start_run(self, flow: Flow, trigger: Any, actor: str, **kwargs: Any) -> tuple[str, asyncio.Task[RunRecord]]:
        """Start a run in the background (`kwargs`: prior_steps, start_at, resumed_from); kept until it ends."""
        import uuid

        run_id = str(uuid.uuid4())
        task = asyncio.create_task(self.engine.run(flow, trigger, run_id=run_id, **kwargs), name=f"run-{run_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return run_id, task

    def running_task(self, run_id: str) -> asyncio.Task[RunRecord] | None:
        """The unfinished task of a run this service started, if any."""
        name = f"run-{run_id}"
        return next((t for t in self.tasks if t.get_name() == name and not t.done()), None)

    def load_examples(self, folder: Path, actor: str = "system") -> int:
        """Store every flow in `folder` that is not stored yet; returns how many were added."""
        added = 0
        for path in sorted(folder.glob("*.json")):
            definition = orjson.loads(path.read_bytes())
            if self.engine.flows.get(definition["id"]) is not None:
                continue
            try:
                self.engine.compile(definition, check_connections=False)
            except FlowInvalid as exc:
                log.error("example flow %s is invalid: %s", path.name, exc)
                continue
            self.engine.flows.save(definition, actor, f"loaded from {path.name}")
            added += 1
        return added

    async def close(self) -> None:
        """Let in-flight runs finish (bounded), hand unfinished webhook events back, flush history."""
        await self.maintenance.stop()
        await self.scheduler.stop()
        await self.inbox.stop()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=30)
        self.engine.close()
