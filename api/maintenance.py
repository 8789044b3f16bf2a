"""Periodic maintenance in every process that executes runs: prune old run history.

Every `FLOWLINK_PRUNE_INTERVAL` seconds (default 3600; 0 turns it off) the history older than
the retention (see engine/store/retention.py) is deleted in small batches in a worker thread.
Several processes may prune at once: the deletes are idempotent.
"""
from __future__ import annotations

import asyncio
import logging
import os

from engine.store.retention import prune
from engine.runtime import FlowEngine

log = logging.getLogger("flowlink.maintenance")


class Maintenance:
    """The pruning loop of one process."""

    def __init__(self, engine: FlowEngine) -> None:
        self.engine = engine
        try:
            self.interval = float(os.environ.get("FLOWLINK_PRUNE_INTERVAL", "3600"))
        except ValueError:
            self.interval = 3600.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the loop (the first prune runs one interval after start)."""
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name="maintenance")

    async def stop(self) -> None:
        """Stop the loop (a prune under way is abandoned between batches by the thread's end)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                result = await asyncio.to_thread(prune, self.engine.db)
                if result.runs or result.events or result.blobs:
                    log.info("pruned history: %s", result.to_dict())
            except Exception:
                log.exception("pruning run history failed")
