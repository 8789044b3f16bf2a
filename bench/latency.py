"""Where the time goes between an accepted webhook event and its run's end, step by step.

The issue asks to measure (and remove) the overhead between an accepted event and the first
step running, and between steps. This sends the lead-intake events (webhook -> set, choice,
set, two HTTP calls to the peers' fake CRM/robot, set) one at a time, spaced so that nothing
queues, to each topology of `webhook_pipeline.py` (`respond: immediately`), then reads the
run records and reports, per event, p50/p90/p99 of:

- `event -> run start`: from the event's arrival (`webhook_events.received_at`, before its
  commit) to the run's start: intake commit, wake-up (NOTIFY on PostgreSQL), claim, flow look-up;
- `run start -> 1st step`: the interpreter's start-up before the first step;
- `between steps`: from one step's end to the next one's start (recording, checkpoints, scheduling);
- `set/choice step`: a step that only evaluates expressions (the engine's own cost of a step);
- `http step`: an `http.request` to the local fake (the network client plus the fake);
- `last step -> run end`, `run end -> event done` (the durable commit and the done mark).

Everything is measured on the same clock by the processes themselves. The figures are latencies
of an idle system; `webhook_pipeline.py` measures throughput under load.

    python bench/latency.py                          # sqlite and pg-w1, 300 events each
    python bench/latency.py --topologies sqlite --events 100
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webhook_pipeline import TOPOLOGIES, PrivatePostgres, fake_endpoints, flowlink  # noqa: E402

EXPR_STEPS = ("set", "choice")


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99 in ms of values in seconds."""
    if not values:
        return {"n": 0, "p50": float("nan"), "p90": float("nan"), "p99": float("nan")}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"n": len(values), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


def send(base: str, events: int, gap: float) -> list[str]:
    """POST `events` leads one at a time, `gap` s apart; the run ids the service answered."""
    run_ids = []
    stamp = int(time.time())
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(events):
            lead = {"lead_id": f"latency-{stamp}-{n:05d}", "name": "Zhang San", "phone": f"1380000{n:04d}",
                    "source": "douyin", "amount": 4200 if n % 2 == 0 else 1800}  # as the peers' load.py
            answer = client.post("/hooks/lead-async", json=lead).raise_for_status().json()
            run_ids.append(answer["run_id"])
            time.sleep(gap)
    return run_ids


def wait_done(database_url: str, run_ids: list[str], timeout: float = 120) -> None:
    """Until every run has ended and its event is done."""
    db = create_engine(database_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with db.connect() as conn:
                done = conn.execute(text("SELECT count(*) FROM webhook_events WHERE status IN ('done', 'dead')")).scalar()
            if done >= len(run_ids):
                return
            time.sleep(0.5)
        raise RuntimeError(f"only {done} of {len(run_ids)} events finished within {timeout} s")
    finally:
        db.dispose()


def breakdown(database_url: str, run_ids: list[str], skip: int) -> dict[str, dict[str, float]]:
    """The intervals of the docstring, over the runs after the first `skip` (warm-up)."""
    db = create_engine(database_url)
    parts: dict[str, list[float]] = {k: [] for k in ("event -> run start", "run start -> 1st step", "between steps",
                                                     "set/choice step", "http step", "last step -> run end",
                                                     "run end -> event done", "event -> event done")}
    try:
        with db.connect() as conn:
            for run_id in run_ids[skip:]:
                event = conn.execute(text("SELECT received_at, updated_at, status FROM webhook_events WHERE run_id = :r"),
                                     {"r": run_id}).one()
                run = conn.execute(text("SELECT started_at, ended_at, status FROM runs WHERE id = :r"), {"r": run_id}).one()
                steps = conn.execute(text("SELECT type, started_at, ended_at, step_id FROM step_runs WHERE run_id = :r "
                                          "ORDER BY seq"), {"r": run_id}).all()
                if event.status != "done" or run.status != "succeeded" or not steps:
                    raise RuntimeError(f"run {run_id}: event {event.status}, run {run.status}")
                parts["event -> run start"].append(run.started_at - event.received_at)
                parts["run start -> 1st step"].append(steps[0].started_at - run.started_at)
                for before, after in zip(steps, steps[1:]):
                    parts["between steps"].append(max(0.0, after.started_at - before.ended_at))
                for step in steps:
                    if step.type in EXPR_STEPS:
                        parts["set/choice step"].append(step.ended_at - step.started_at)
                    elif step.type == "action":
                        parts["http step"].append(step.ended_at - step.started_at)
                parts["last step -> run end"].append(run.ended_at - max(s.ended_at for s in steps))
                parts["run end -> event done"].append(event.updated_at - run.ended_at)
                parts["event -> event done"].append(event.updated_at - event.received_at)
    finally:
        db.dispose()
    return {name: percentiles(values) for name, values in parts.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topologies", nargs="+", default=["sqlite", "pg-w1"], choices=list(TOPOLOGIES))
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30, help="first events left out of the figures")
    ap.add_argument("--gap", type=float, default=0.05, help="seconds between two events (nothing queues)")
    ap.add_argument("--worker-nice", type=int, default=10)
    args = ap.parse_args()

    pg = PrivatePostgres() if any(TOPOLOGIES[t] for t in args.topologies) else None
    results: dict[str, dict[str, dict[str, float]]] = {}
    with fake_endpoints() as fake:
        try:
            if pg is not None:
                pg.start()
            for topology in args.topologies:
                print(f"[latency] {time.strftime('%H:%M:%S')} {topology}", file=sys.stderr, flush=True)
                with flowlink(topology, fake, pg, {}, worker_nice=args.worker_nice) as system:
                    run_ids = send(system["base"], args.events, args.gap)
                    wait_done(system["database_url"], run_ids)
                    results[topology] = breakdown(system["database_url"], run_ids, args.warmup)
        finally:
            if pg is not None:
                pg.stop()

    names = list(next(iter(results.values())))
    print(f"Latency of one event at a time ({args.events - args.warmup} events per topology, "
          f"{args.gap * 1000:.0f} ms apart; ms, p50 / p90 / p99)\n")
    print("| interval | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        cells = [f"{r[name]['p50']} / {r[name]['p90']} / {r[name]['p99']}" for r in results.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
