"""Runs/s against worker processes: how fast 1, 2, ... workers drain the same backlog.

In `webhook_pipeline.py` the workers share the 2 cores with the API process, PostgreSQL, the
load generator and the fake endpoints, so a second worker has little CPU left to use. This
isolates the workers: for each worker count, a fresh database; the API (`FLOWLINK_DISPATCH=0`)
accepts `--events` lead-intake events (`respond: immediately`) with no worker running; then
the workers start (at normal priority: nothing else needs the CPU now) and the time until every
event is done gives runs/s. Same flow and fake endpoints as `webhook_pipeline.py`. Reported as
runs/s and as a ratio to one worker, measured side by side in one invocation.

    python bench/drain.py                      # 1 and 2 workers, 4,000 events each
    python bench/drain.py --workers 1 2 3 --events 2000
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webhook_pipeline import PrivatePostgres, fake_endpoints, flowlink  # noqa: E402


async def fill(base: str, events: int, concurrency: int = 32) -> None:
    """Deliver `events` leads to /hooks/lead-async (each answered 202 once committed)."""
    stamp = int(time.time() * 1000)
    numbers = iter(range(events))
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        async def sender() -> None:
            for n in numbers:
                lead = {"lead_id": f"drain-{stamp}-{n:06d}", "name": "Zhang San", "phone": f"138{n:08d}",
                        "source": "douyin", "amount": 4200 if n % 2 == 0 else 1800}
                (await client.post("/hooks/lead-async", json=lead)).raise_for_status()

        await asyncio.gather(*(sender() for _ in range(concurrency)))


def counts(database_url: str) -> dict[str, int]:
    db = create_engine(database_url)
    try:
        with db.connect() as conn:
            return dict(conn.execute(text("SELECT status, count(*) FROM webhook_events GROUP BY status")).all())
    finally:
        db.dispose()


def drain(workers: int, events: int, fake: str, pg: PrivatePostgres, timeout: float) -> dict[str, float]:
    """One measurement: fill with no worker, then time `workers` workers emptying the inbox."""
    with flowlink("pg-w1", fake, pg, {}, worker_nice=0, defer_workers=True) as system:
        asyncio.run(fill(system["base"], events))
        waiting = counts(system["database_url"]).get("accepted", 0)
        started = time.monotonic()
        system["start_workers"](workers)
        deadline = started + timeout
        while time.monotonic() < deadline:
            status = counts(system["database_url"])
            if status.get("done", 0) + status.get("dead", 0) >= events:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        status = counts(system["database_url"])
    return {"workers": workers, "waiting": waiting, "done": status.get("done", 0), "dead": status.get("dead", 0),
            "seconds": round(elapsed, 2), "runs_s": round(status.get("done", 0) / elapsed, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--events", type=int, default=4000)
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    pg = PrivatePostgres()
    rows = []
    with fake_endpoints() as fake:
        try:
            pg.start()
            for workers in args.workers:
                print(f"[drain] {time.strftime('%H:%M:%S')} {workers} worker(s)", file=sys.stderr, flush=True)
                rows.append(drain(workers, args.events, fake, pg, args.timeout))
        finally:
            pg.stop()

    base = rows[0]["runs_s"] or 1
    print(f"Draining {args.events} waiting lead-intake events (PostgreSQL, API idle, workers at normal priority)\n")
    print("| workers | done | dead | seconds | runs/s | x first row |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['workers']} | {row['done']} | {row['dead']} | {row['seconds']} | {row['runs_s']} | {row['runs_s'] / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
