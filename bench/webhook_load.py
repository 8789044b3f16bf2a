#!/usr/bin/env python3
"""Webhook intake under load: flows/lead-intake.json served by `flowlink serve`, against plain Python.

The flow (webhook -> set, choice, two http.request calls, set) is exactly flows/lead-intake.json,
its CRM and robot URLs pointed at ../shared/bench/peers/fake_endpoints.py (started here on a free
port). `python -m engine.cli serve` runs as a subprocess with a temporary FLOWLINK_HOME (SQLite),
the flow is imported and activated through the API, and ../shared/bench/peers/load.py posts leads
to /hooks/lead in a closed loop at concurrency 1, 8 and 32 (each phase `--duration` seconds), in
both respond modes:

- immediately: 202 once the event is committed to the inbox; the runs follow;
- last:        the answer is the flow's output (the run is done when the caller gets it).

Reported per phase: accepted events/s, p50/p99 acknowledgement latency, completed runs/s (leads
that reached the fake robot, the last HTTP step, counted by the fake's /stats, over the time from
the phase start to the last completion), the same two requests per event done by PLAIN PYTHON
(an asyncio httpx client at the same concurrency), and the ratio plain/Flowlink.

    python bench/webhook_load.py                 # ~2 minutes
    python bench/webhook_load.py --duration 3    # a smoke check
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import types
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "bench" / "peers"
PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def load_module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def completions(fake: str, run_id: str) -> dict:
    return httpx.get(f"{fake}/stats", timeout=5).json()["per_run"].get(run_id, {})


def drain(fake: str, run_id: str, expected: int, timeout: float) -> dict:
    """Wait until `expected` leads reached the robot (or `timeout`); the fake's counters for the run."""
    deadline = time.monotonic() + timeout
    entry = completions(fake, run_id)
    while entry.get("robot_unique", 0) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        entry = completions(fake, run_id)
    return entry


async def plain_python(fake: str, concurrency: int, duration: float, run_id: str) -> float:
    """The same work per event without Flowlink: map, tag, POST to the CRM, POST to the robot."""
    sources = ["douyin", "wechat", "baidu", "xiaohongshu"]
    counter = {"seq": 0, "done": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            while time.perf_counter() < deadline:
                counter["seq"] += 1
                seq = counter["seq"]
                lead = {"lead_id": f"{run_id}-{seq:07d}", "name": "Zhang San", "phone": f"138{seq:08d}",
                        "source": sources[seq % 4], "amount": 4200 if seq % 2 == 0 else 1800}
                tag = "high_value" if lead["amount"] > 3000 else "normal"
                record = {"external_id": lead["lead_id"], "contact_name": lead["name"], "mobile": lead["phone"],
                          "channel": lead["source"], "amount": lead["amount"], "tag": tag,
                          "priority": "P1" if tag == "high_value" else "P3"}
                crm = (await client.post(f"{fake}/crm/leads", json=record)).json()
                label = "[HIGH VALUE]" if tag == "high_value" else "[new lead]"
                text = f"{label} {lead['lead_id']} {lead['name']} ({lead['source']}) amount {lead['amount']}, CRM id {crm['id']}"
                await client.post(f"{fake}/robot/send", json={"msgtype": "text", "text": {"content": text}})
                counter["done"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return counter["done"] / (time.perf_counter() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per load phase")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--drain", type=float, default=30.0, help="max seconds to wait for queued runs after a phase")
    args = ap.parse_args()
    if not (PEERS / "load.py").exists() or not (PEERS / "fake_endpoints.py").exists():
        print(f"{PEERS} is not there (load.py, fake_endpoints.py): nothing to run against", file=sys.stderr)
        return 2
    load = load_module("peer_load", PEERS / "load.py")
    procs: list[subprocess.Popen] = []
    home = tempfile.TemporaryDirectory(prefix="flowlink-bench-")
    try:
        fake_port, port = free_port(), free_port()
        fake = f"http://127.0.0.1:{fake_port}"
        procs.append(subprocess.Popen([sys.executable, str(PEERS / "fake_endpoints.py"), "--port", str(fake_port)],
                                      stdout=subprocess.DEVNULL))
        env = {**os.environ, "FLOWLINK_HOME": home.name, "FLOWLINK_ADMIN_PASSWORD": PASSWORD}
        env.pop("FLOWLINK_DATABASE_URL", None)
        server = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--log-level", "warning"],
                                  cwd=ROOT, env=env)
        procs.append(server)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{fake}/healthz")
        wait_http(f"{base}/api/health")
        api = httpx.Client(base_url=base, timeout=30)
        token = api.post("/api/auth/login", json={"username": "admin", "password": PASSWORD}).raise_for_status().json()["token"]
        api.headers["Authorization"] = f"Bearer {token}"
        template = json.loads((ROOT / "flows" / "lead-intake.json").read_text())
        rows = []
        for mode in ("immediately", "last"):
            definition = copy.deepcopy(template)
            definition["id"] = f"lead-intake-{mode}"
            definition["trigger"]["respond"] = mode
            definition["vars"]["crm_url"] = f"{fake}/crm/leads"
            definition["vars"]["robot_url"] = f"{fake}/robot/send"
            api.post("/api/flows", json={"definition": definition}).raise_for_status()
            for other in ("immediately", "last"):
                if other != mode:
                    api.post(f"/api/flows/lead-intake-{other}/deactivate")
            api.post(f"/api/flows/{definition['id']}/activate").raise_for_status()
            warm = types.SimpleNamespace(url=f"{base}/hooks/lead", concurrency=8, requests=200, duration=None, timeout=30.0,
                                         run_id="w" + uuid.uuid4().hex[:8], expect=None, header=[], pid=[])
            asyncio.run(load.run(warm))
            drain(fake, warm.run_id, 200, args.drain)
            for concurrency in args.concurrency:
                run_id = f"{mode[:3]}{concurrency}x{uuid.uuid4().hex[:6]}"
                ns = types.SimpleNamespace(url=f"{base}/hooks/lead", concurrency=concurrency, requests=None,
                                           duration=args.duration, timeout=30.0, run_id=run_id,
                                           expect='"crm_id"' if mode == "last" else None, header=[],
                                           pid=[("flowlink", server.pid)])
                res = asyncio.run(load.run(ns))
                entry = drain(fake, run_id, res["ok"], args.drain)
                done = entry.get("robot_unique", 0)
                span = (entry["last"] - res["started_at"]) if entry.get("last") else None
                completed = done / span if span else 0.0
                plain = asyncio.run(plain_python(fake, concurrency, args.duration, "p" + run_id))
                rows.append({
                    "mode": mode, "c": concurrency, "accepted": res["ok_rps"], "errors": res["errors"],
                    "p50": res["lat_ms"]["p50"], "p99": res["lat_ms"]["p99"], "completed": round(completed, 1),
                    "done": done, "sent": res["sent"], "plain": round(plain, 1),
                    "ratio": round(plain / completed, 1) if completed else None,
                    "cpu": res["processes"].get("flowlink", {}).get("cpu_pct"),
                })
                r = rows[-1]
                print(f"[{mode} c{concurrency}] accepted {r['accepted']}/s p50 {r['p50']} ms p99 {r['p99']} ms, "
                      f"completed {r['completed']}/s ({r['done']}/{r['sent']}), plain Python {r['plain']}/s", file=sys.stderr)
        print("\n| respond | conc | accepted events/s | ack p50 ms | ack p99 ms | completed runs/s | done / sent | errors "
              "| flowlink CPU % | plain Python runs/s | plain / Flowlink |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['mode']} | {r['c']} | {r['accepted']} | {r['p50']} | {r['p99']} | {r['completed']} | {r['done']} / {r['sent']} "
                  f"| {r['errors']} | {r['cpu']} | {r['plain']} | {r['ratio']}x |")
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        home.cleanup()


if __name__ == "__main__":
    sys.exit(main())
