"""PostgreSQL LISTEN/NOTIFY between processes: an API process that only accepts wakes a worker
at once (not at its next poll), and the worker's finished run wakes the API waiting to answer a
`respond: last` webhook. Both processes poll only every 30 s here, so only the notifications
can make the answer arrive within the webhook's 8 s response timeout."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, bearer, login
from tests.test_scale_out import start_worker
from tests.test_webhooks import free_port, start_server

pytestmark = pytest.mark.postgres


def test_worker_and_api_wake_each_other_through_notifications(postgres_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "FLOWLINK_HOME": str(tmp_path), "FLOWLINK_DATABASE_URL": postgres_url,
           "FLOWLINK_ADMIN_PASSWORD": ADMIN_PASSWORD, "FLOWLINK_INBOX_POLL": "30"}
    port = free_port()
    procs = [start_server(port, {**env, "FLOWLINK_DISPATCH": "0"}, tmp_path / "api.log")]
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20)
        api.headers.update(bearer(login(api)))
        flow = {"id": "echo", "name": "echo", "trigger": {"type": "webhook", "path": "echo", "respond": "last", "response_timeout": 8},
                "steps": [{"id": "double", "type": "set", "value": {"$expr": "[trigger.body.n, trigger.body.n]"}}]}
        assert api.post("/api/flows", json={"definition": flow}).status_code == 201
        assert api.post("/api/flows/echo/activate").status_code == 200
        procs.append(start_worker(env, tmp_path / "worker.log"))
        time.sleep(1)  # the worker's first claim (at start) is over: from now on it waits 30 s between polls
        for n in range(3):
            started = time.monotonic()
            answer = httpx.post(f"http://127.0.0.1:{port}/hooks/echo", json={"n": n}, timeout=20)
            assert answer.status_code == 200, answer.text
            assert answer.json() == [n, n]
            assert time.monotonic() - started < 8
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
