"""`flowlink worker`: a process that executes runs and serves no HTTP.

In the scaled-out topology the API processes (`flowlink serve` with `FLOWLINK_DISPATCH=0`)
only accept: they authenticate, commit each event to the inbox and answer. Workers claim
accepted events from the shared PostgreSQL inbox (atomic conditional UPDATEs with leases, see
api/inbox.py), run them, fire schedules and polls (each fire claimed in the database, so
several workers never double-fire), prune history past its retention, and on SIGTERM/SIGINT stop claiming, let in-flight runs
finish within the grace period and hand the rest back to the inbox for another worker. A
worker killed outright (`kill -9`) stops renewing its leases; another worker claims those
events once the lease expires and resumes each run after its last completed step.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal

from api.inbox import Inbox
from api.maintenance import Maintenance
from api.scheduler import Scheduler
from engine.process import freeze_startup_heap
from engine.runtime import FlowEngine

log = logging.getLogger("flowlink.worker")


async def run_worker(database_url: str | None = None, grace: float | None = None, schedules: bool = True) -> None:
    """Run until SIGTERM/SIGINT: claim and execute inbox events, fire schedules and polls.

    Lower the process's CPU priority first (`FLOWLINK_WORKER_NICE`, or `flowlink worker --nice`)
    when it shares a machine with an API process that must acknowledge webhooks promptly."""
    grace = float(os.environ.get("FLOWLINK_SHUTDOWN_GRACE", "25")) if grace is None else grace
    engine = FlowEngine(database_url)
    inbox = Inbox(engine)
    scheduler = Scheduler(engine) if schedules else None
    maintenance = Maintenance(engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await inbox.start()
    if scheduler is not None:
        await scheduler.start()
    await maintenance.start()
    freeze_startup_heap()
    log.info("worker %s started (max %d runs at once)", inbox.worker_id, inbox.max_concurrent)
    print(f"Flowlink worker {inbox.worker_id} running (max {inbox.max_concurrent} runs at once)", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("worker %s stopping: finishing in-flight runs (up to %.0f s)", inbox.worker_id, grace)
        await maintenance.stop()
        if scheduler is not None:
            await scheduler.stop()
        await inbox.stop(grace=grace)
        engine.close()
        print(f"Flowlink worker {inbox.worker_id} stopped", flush=True)
