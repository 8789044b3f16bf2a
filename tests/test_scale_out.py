"""The scaled-out topology on one machine: two API processes that only accept
(`FLOWLINK_DISPATCH=0`), two `flowlink worker` processes, one PostgreSQL database and a Prefect
server on PostgreSQL (for the tracked lane). Events sent across both APIs are each run exactly
once, also when a worker is killed with `kill -9` in the middle; tracked runs end Completed in
Prefect exactly once (an interrupted attempt's flow run is marked Crashed); SIGTERM stops a
worker cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import ADMIN_PASSWORD, bearer, login
from tests.fake_http import ServerThread
from tests.test_webhooks import CountingFake, free_port, start_server, wait_until

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 1000
TRACKED = 12

pytestmark = pytest.mark.postgres


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "worker"], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: "running (max" in log.read_text() or proc.poll() is not None, timeout=30)
    assert proc.poll() is None, log.read_text()[-2000:]
    return proc


async def prefect_flow_runs(names: list[str]) -> dict[str, list[str]]:
    """Prefect flow-run state types by flow-run name (our run id)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    found: dict[str, list[str]] = {name: [] for name in names}
    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=names)), limit=200)
    for run in runs:
        found[run.name].append(run.state.type.value if run.state else "NONE")
    return found


async def test_two_apis_two_workers_one_killed_every_event_runs_once(postgres_url: str, prefect_server: str, tmp_path: Path) -> None:
    fake = CountingFake()
    fake_server = ServerThread(fake.app).start()
    env = {**os.environ, "FLOWLINK_HOME": str(tmp_path), "FLOWLINK_DATABASE_URL": postgres_url,
           "FLOWLINK_ADMIN_PASSWORD": ADMIN_PASSWORD, "FLOWLINK_INBOX_LEASE": "8", "FLOWLINK_INBOX_POLL": "0.1",
           "FLOWLINK_MAX_CONCURRENT_RUNS": "16"}
    api_env = {**env, "FLOWLINK_DISPATCH": "0"}
    ports = [free_port(), free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs += [start_server(port, api_env, tmp_path / f"api{i}.log") for i, port in enumerate(ports)]
        admin = httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", timeout=10)
        admin.headers.update(bearer(login(admin)))
        flow = {"id": "scale", "name": "scale", "trigger": {"type": "webhook", "path": "scale", "dedupe_key": "body.n"},
                "steps": [{"id": "prepare", "type": "set", "value": {"n": {"$expr": "trigger.body.n"}}},
                          {"id": "call", "type": "action", "action": "http.request",
                           "args": {"method": "POST", "url": f"http://127.0.0.1:{fake_server.port}/hit",
                                    "json": {"n": "{{ steps.prepare.output.n }}"}}},
                          {"id": "done", "type": "set", "value": {"$expr": "steps.call.output.status"}}]}
        tracked = {**flow, "id": "scale-tracked", "name": "scale-tracked", "execution": {"lane": "tracked"},
                   "trigger": {**flow["trigger"], "path": "scale-tracked"}}
        for definition in (flow, tracked):
            assert admin.post("/api/flows", json={"definition": definition}).status_code == 201
            assert admin.post(f"/api/flows/{definition['id']}/activate").status_code == 200
        victim = start_worker(env, tmp_path / "worker0.log")
        survivor = start_worker(env, tmp_path / "worker1.log")
        procs += [victim, survivor]

        accepted: dict[str, str] = {}
        accepted_tracked: dict[str, str] = {}

        def send(n: int) -> None:
            answer = httpx.post(f"http://127.0.0.1:{ports[n % 2]}/hooks/scale", json={"n": str(n)}, timeout=30)
            assert answer.status_code == 202, answer.text
            accepted[str(n)] = answer.json()["run_id"]

        def send_tracked(n: int) -> None:
            answer = httpx.post(f"http://127.0.0.1:{ports[n % 2]}/hooks/scale-tracked", json={"n": f"t{n}"}, timeout=30)
            assert answer.status_code == 202, answer.text
            accepted_tracked[f"t{n}"] = answer.json()["run_id"]

        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = [pool.submit(send_tracked, n) for n in range(TRACKED)]
            futures += [pool.submit(send, n) for n in range(EVENTS)]
            wait_until(lambda: sum(fake.seen.values()) >= EVENTS // 4, timeout=300)
            os.killpg(victim.pid, signal.SIGKILL)  # mid-way, with runs in flight
            victim.wait()
            for future in futures:
                future.result()
        engine = sa.create_engine(postgres_url)

        def drained() -> bool:
            with engine.connect() as conn:
                return conn.execute(sa.text("select count(*) from webhook_events where status <> 'done'")).scalar() == 0

        wait_until(drained, timeout=300)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0
        assert "stopped" in (tmp_path / "worker1.log").read_text()
        with engine.connect() as conn:
            succeeded = Counter(r for (r,) in conn.execute(sa.text("select id from runs where flow_id='scale' and status='succeeded'")))
            tracked_ok = Counter(r for (r,) in conn.execute(sa.text("select id from runs where flow_id='scale-tracked' and status='succeeded'")))
            running = conn.execute(sa.text("select count(*) from runs where status='running'")).scalar()
            claimed_by = Counter(w.split(":")[1] for (w,) in conn.execute(sa.text("select claimed_by from webhook_events")))
        engine.dispose()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        fake_server.stop()
    assert len(accepted) == EVENTS and len(accepted_tracked) == TRACKED
    assert sorted(tracked_ok) == sorted(accepted_tracked.values()) and set(tracked_ok.values()) == {1}
    in_prefect = await prefect_flow_runs(list(accepted_tracked.values()))
    for run_id, states in in_prefect.items():  # one Completed flow run per tracked run; an interrupted one Crashed
        assert states.count("COMPLETED") == 1 and set(states) <= {"COMPLETED", "CRASHED"}, (run_id, states)
    assert sorted(succeeded) == sorted(accepted.values())  # one succeeded run per event, under the id given at intake
    assert set(succeeded.values()) == {1}
    assert running == 0
    assert set(fake.seen) == set(accepted) | set(accepted_tracked)  # every event's call was made
    assert len(claimed_by) == 2, claimed_by  # both workers took a share
    repeated = sum(c - 1 for c in fake.seen.values())
    crashed = sum(states.count("CRASHED") for states in in_prefect.values())
    print(f"\nscale-out: {EVENTS} + {TRACKED} tracked events over 2 APIs, worker killed after ~{EVENTS // 4} calls; "
          f"claims per worker pid {dict(claimed_by)}; {repeated} calls repeated (cut off in flight); "
          f"{crashed} Prefect flow runs marked Crashed")
    assert repeated <= 16  # at most the runs the killed worker had in flight
