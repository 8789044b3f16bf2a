"""A run cut off by `kill -9` resumes from where it was: the steps it had completed are not run
again (their recorded outputs are reused), the step that was under way runs again."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.runtime import FlowEngine
from tests.conftest import ADMIN_PASSWORD, bearer, login
from tests.fake_http import ServerThread
from tests.test_webhooks import free_port, start_server, wait_until


class StallingFake:
    """`/first` answers at once; `/second` hangs on its first call (the process gets killed
    meanwhile) and answers later calls at once."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.release = threading.Event()
        self.app = Starlette(routes=[Route("/{name}", self.hit, methods=["POST"])])

    async def hit(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        got = await request.json()
        self.calls[name] += 1
        if name == "second" and self.calls[name] == 1:
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return JSONResponse({"step": name, "call": self.calls[name], "got": got})


def flow(port: int) -> dict:
    call = lambda name: {"id": name, "type": "action", "action": "http.request",  # noqa: E731
                         "args": {"method": "POST", "url": f"http://127.0.0.1:{port}/{name}", "json": {"lead": "{{ trigger.body.lead }}"}}}
    return {"id": "resume", "name": "resume", "trigger": {"type": "webhook", "path": "resume"},
            "steps": [{"id": "stamp", "type": "set", "value": {"$expr": "uuid()"}},
                      call("first"),
                      {"id": "route", "type": "choice", "choices": [{"when": "steps.first.output.body.call == `1`", "next": "second"}],
                       "default": "wrong"},
                      {"id": "wrong", "type": "fail", "message": "the first call ran again"},
                      call("second"),
                      {"id": "done", "type": "set", "value": {"stamp": {"$expr": "steps.stamp.output"},
                                                              "second": {"$expr": "steps.second.output.body.call"}}}],
            "output": {"$expr": "steps.done.output"}}


def test_kill_9_mid_run_resumes_after_the_last_completed_step(tmp_path: Path) -> None:
    fake = StallingFake()
    fake_server = ServerThread(fake.app).start()
    db_path = tmp_path / "resume.db"
    env = {**os.environ, "FLOWLINK_HOME": str(tmp_path), "FLOWLINK_DATABASE_URL": f"sqlite:///{db_path}",
           "FLOWLINK_INBOX_LEASE": "1", "FLOWLINK_ADMIN_PASSWORD": ADMIN_PASSWORD, "FLOWLINK_INBOX_POLL": "0.1"}
    log = tmp_path / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(port, env, log)
    try:
        api = httpx.Client(base_url=base, timeout=10)
        api.headers.update(bearer(login(api)))
        assert api.post("/api/flows", json={"definition": flow(fake_server.port)}).status_code == 201
        assert api.post("/api/flows/resume/activate").status_code == 200
        run_id = httpx.post(f"{base}/hooks/resume", json={"lead": "L-1"}).json()["run_id"]
        wait_until(lambda: fake.calls["second"] == 1, timeout=20)  # `first` done and checkpointed, `second` under way
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        fake.release.set()
        proc = start_server(port, env, log)
        api.headers.update(bearer(login(api)))
        wait_until(lambda: api.get(f"/api/runs/{run_id}").status_code == 200
                   and api.get(f"/api/runs/{run_id}").json()["status"] == "succeeded", timeout=30)
        run = api.get(f"/api/runs/{run_id}").json()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        fake_server.stop()
    assert fake.calls == {"first": 1, "second": 2}  # the completed call was not repeated
    assert run["output"]["second"] == 2
    db = sqlite3.connect(db_path)
    (interrupted_id, error), = db.execute("select id, error from runs where flow_id='resume' and status='cancelled'").fetchall()
    assert orjson.loads(error)["type"] == "Interrupted"
    before = dict(db.execute("select path, output_json from step_runs where run_id=? and status='succeeded'", (interrupted_id,)).fetchall())
    assert {"stamp", "first"} <= set(before)  # committed at the checkpoint after `first`
    steps = {s["path"]: s for s in run["steps"]}
    for reused in ("stamp", "first"):
        assert steps[reused]["attempts"] == [{"attempt": 0, "reused_from": interrupted_id}]
    assert run["output"]["stamp"] == orjson.loads(before["stamp"])  # the same value, not a new uuid
    assert steps["second"]["attempts"][0]["attempt"] == 1


async def test_checkpoints_commit_each_action_before_the_next_step(tmp_path: Path) -> None:
    """With `checkpoint`, an action's record is in the database before the next step starts."""
    engine = FlowEngine(f"sqlite:///{tmp_path / 'cp.db'}")
    seen_by_second: list[int] = []

    def count_committed(_request: Request) -> None:
        with sqlite3.connect(tmp_path / "cp.db") as db:
            seen_by_second.append(db.execute("select count(*) from step_runs where path='first'").fetchone()[0])

    fake = Starlette(routes=[Route("/first", lambda r: JSONResponse({}), methods=["POST"]),
                             Route("/second", lambda r: (count_committed(r), JSONResponse({}))[1], methods=["POST"])])
    server = ServerThread(fake).start()
    try:
        definition = flow(server.port)
        definition["steps"] = [s for s in definition["steps"] if s["id"] in ("first", "second")]
        del definition["output"]
        compiled = engine.compile(definition)
        record = await engine.run(compiled, {"body": {"lead": "x"}}, checkpoint=True)
        assert record.status == "succeeded"
        assert seen_by_second == [1]
    finally:
        server.stop()
        engine.close()
