#!/usr/bin/env python3
"""How the cost of a run grows with steps per flow, payload size and map fan-out; what checkpoints cost.

All in one process, through FlowEngine.run as the webhook dispatcher calls it (event lane, full
history batched to SQLite, `checkpoint=True`). The flow: one `map` step over `trigger.items`
(each item through a `set`), then `steps - 1` `set` steps chained on the previous output; the
trigger is `items` plus a padding string up to the payload size. One dimension varies at a time
from the baseline (1 step, 1 KB, 10 items):

- steps per flow: 1, 10, 100;
- payload: 1 KB, 1 MB (the trigger and every step that carries it are stored: blobs over 64 KB);
- map fan-out: 10, 1,000 items.

Each configuration runs for --seconds (at least --min-runs runs) with --inflight runs at once;
reported: runs/s, CPU ms per run (this process: the figure that survives a shared machine),
wall ms per run, and both as a multiple of the baseline.

Checkpoints: the lead-intake flow (set, choice, set, two http.request calls to the peers' fake
CRM/robot, set) with `checkpoint=True` (commit after each action step, as the service runs it)
and `checkpoint=False`, same load.

    python bench/scaling.py              # ~1 minute
    python bench/scaling.py --seconds 1  # smoke
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PEERS = Path(os.environ.get("FLOWLINK_PEERS", ROOT.parent / "shared" / "bench" / "peers"))

from engine.runtime import FlowEngine  # noqa: E402

BASELINE = {"steps": 1, "payload": 1024, "items": 10}
CASES = [("baseline", {}), ("10 steps", {"steps": 10}), ("100 steps", {"steps": 100}),
         ("1 MB payload", {"payload": 1024 * 1024}), ("1,000 map items", {"items": 1000})]


def flow_definition(steps: int) -> dict[str, Any]:
    """A map over trigger.items, then `steps - 1` chained set steps."""
    body: list[dict[str, Any]] = [{
        "id": "s0", "type": "map", "items": "trigger.items",
        "steps": [{"id": "tag", "type": "set", "value": {"id": {"$expr": "item.id"}, "big": {"$expr": "item.n > `5`"}}}],
    }]
    for i in range(1, steps):
        body.append({"id": f"s{i}", "type": "set",
                     "value": {"n": i, "count": {"$expr": f"length(steps.s{i - 1}.output) || `0`" if i == 1 else f"steps.s{i - 1}.output.count"}}})
    return {"id": f"scale-{steps}", "name": f"scaling {steps}", "trigger": {"type": "manual"},
            "execution": {"lane": "event"}, "steps": body}


def trigger(payload: int, items: int) -> dict[str, Any]:
    """`items` small items, padded with a string so the JSON is about `payload` bytes."""
    data = {"items": [{"id": f"i{n}", "n": n % 10} for n in range(items)], "pad": ""}
    size = len(json.dumps(data))
    data["pad"] = "x" * max(0, payload - size)
    return data


async def measure(engine: FlowEngine, flow: Any, payloads: list[Any], seconds: float, min_runs: int,
                  inflight: int, checkpoint: bool = True) -> dict[str, float]:
    """Run the flow with `inflight` runs at once for `seconds` (and at least `min_runs` runs)."""
    done = 0
    failed = 0
    started, cpu0 = time.perf_counter(), time.process_time()
    deadline = started + seconds

    async def lane(k: int) -> None:
        nonlocal done, failed
        n = k
        while time.perf_counter() < deadline or done < min_runs:
            record = await engine.run(flow, payloads[n % len(payloads)], checkpoint=checkpoint)
            n += inflight
            done += 1
            failed += record.status != "succeeded"

    await asyncio.gather(*(lane(k) for k in range(inflight)))
    await asyncio.to_thread(engine.flush)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    return {"runs": done, "failed": failed, "runs_s": done / wall, "cpu_ms": 1000 * cpu / done, "wall_ms": 1000 * wall / done}


def free_port() -> int:
    """A TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def scaling(args: argparse.Namespace, engine: FlowEngine) -> list[dict[str, Any]]:
    """Every case of CASES, baseline first."""
    rows = []
    for name, change in CASES:
        conf = {**BASELINE, **change}
        flow = engine.compile(flow_definition(conf["steps"]))
        # distinct payloads (not one object reused): each run serialises its own trigger
        payloads = [trigger(conf["payload"], conf["items"]) for _ in range(4)]
        await measure(engine, flow, payloads, 0.2, 3, args.inflight)  # warm-up
        result = await measure(engine, flow, payloads, args.seconds, args.min_runs, args.inflight)
        rows.append({"case": name, **conf, **result})
        print(f"[scaling] {name}: {result['runs_s']:.1f} runs/s, {result['cpu_ms']:.2f} CPU ms/run", file=sys.stderr, flush=True)
    return rows


async def checkpoints(args: argparse.Namespace, engine: FlowEngine, fake: str) -> list[dict[str, Any]]:
    """The lead-intake flow with and without a commit after each action step."""
    definition = json.loads((ROOT / "flows" / "lead-intake.json").read_text())
    definition["vars"].update(crm_url=f"{fake}/crm/leads", robot_url=f"{fake}/robot/send")
    flow = engine.compile(definition)
    rows = []
    for checkpoint in (False, True, False, True):  # interleaved: drift on a shared machine hits both
        payloads = [{"body": {"lead_id": f"ck{checkpoint:d}-{n}", "name": "Zhang San", "phone": "13800000000",
                              "source": "douyin", "amount": 4200 if n % 2 else 1800}} for n in range(64)]
        await measure(engine, flow, payloads, 0.2, 3, args.inflight, checkpoint)
        result = await measure(engine, flow, payloads, args.seconds, args.min_runs, args.inflight, checkpoint)
        rows.append({"checkpoint": checkpoint, **result})
        print(f"[checkpoints] {checkpoint}: {result['runs_s']:.1f} runs/s, {result['cpu_ms']:.2f} CPU ms/run",
              file=sys.stderr, flush=True)
    return rows


def report(scale: list[dict[str, Any]], ckpt: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """Markdown tables."""
    base = scale[0]
    lines = [f"Cost growth ({args.inflight} runs in flight, SQLite history, checkpoint=True; ratio = this / baseline)", "",
             "| case | steps | payload bytes | map items | runs | runs/s | CPU ms/run | x baseline CPU | wall ms/run | x baseline wall |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in scale:
        lines.append(f"| {r['case']} | {r['steps']} | {r['payload']} | {r['items']} | {r['runs']} | {r['runs_s']:.1f} "
                     f"| {r['cpu_ms']:.2f} | {r['cpu_ms'] / base['cpu_ms']:.1f}x | {r['wall_ms']:.2f} | {r['wall_ms'] / base['wall_ms']:.1f}x |")
    if ckpt:
        lines += ["", "Checkpoints: lead-intake flow (2 http.request steps to the local fake), "
                  f"{args.inflight} runs in flight", "", "| checkpoint | runs | runs/s | CPU ms/run | wall ms/run |", "|---|---|---|---|---|"]
        for r in ckpt:
            lines.append(f"| {'on' if r['checkpoint'] else 'off'} | {r['runs']} | {r['runs_s']:.1f} | {r['cpu_ms']:.2f} | {r['wall_ms']:.2f} |")
        on = [r for r in ckpt if r["checkpoint"]]
        off = [r for r in ckpt if not r["checkpoint"]]
        cpu_on, cpu_off = sum(r["cpu_ms"] for r in on) / len(on), sum(r["cpu_ms"] for r in off) / len(off)
        lines += ["", f"Checkpoints cost {cpu_on - cpu_off:+.2f} CPU ms per run ({100 * (cpu_on / cpu_off - 1):+.0f} %), "
                  f"runs/s {sum(r['runs_s'] for r in on) / len(on):.0f} with vs {sum(r['runs_s'] for r in off) / len(off):.0f} without."]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="flowlink-scaling-") as home:
        engine = FlowEngine(f"sqlite:///{home}/scaling.db")
        fake_proc = None
        try:
            scale = await scaling(args, engine)
            ckpt: list[dict[str, Any]] = []
            if (PEERS / "fake_endpoints.py").exists():
                port = free_port()
                fake_proc = subprocess.Popen([sys.executable, str(PEERS / "fake_endpoints.py"), "--port", str(port)],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await asyncio.sleep(1.0)
                ckpt = await checkpoints(args, engine, f"http://127.0.0.1:{port}")
            return report(scale, ckpt, args)
        finally:
            if fake_proc is not None:
                fake_proc.terminate()
                fake_proc.wait(timeout=10)
            engine.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds per configuration")
    ap.add_argument("--min-runs", type=int, default=10)
    ap.add_argument("--inflight", type=int, default=8, help="runs at once")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = ap.parse_args()
    text = asyncio.run(main_async(args))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# scaling {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n`{' '.join(sys.argv)}`\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
