#!/usr/bin/env python3
"""Engine overhead: the same trivial flow run by Flowlink, by a hand-written Prefect flow,
and by plain Python, side by side in one process; reported as ratios.

Each flow has N steps (1, 10, 100); step i evaluates one expression over the trigger and
the previous step's output. Variants:

- plain          plain Python functions doing the same work, nothing persisted;
- plain+insert   the same plus the same step rows written to SQLite in batches
                 (the baseline for "per-step overhead within 5x");
- event          Flowlink's event lane, full step history batched to SQLite;
- event-mem      the event lane with records dropped (the interpreter's cost alone);
- tracked        Flowlink's tracked lane: a Prefect flow run per run, a task run per step;
- prefect        a hand-written Prefect flow with one task per step.

The two Prefect variants run against a real `prefect server start` on PostgreSQL started
here (127.0.0.1:5432, as in production; a temporary SQLite server if PostgreSQL is not
there), so they pay the server's per-task tracking as they would in production.
Also measured: five-step runs per second, sequential and with 50 runs in flight.

    python bench/engine_overhead.py            # all variants (about 2 minutes)
    python bench/engine_overhead.py --quick    # fewer repetitions, for a smoke check
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from engine.interpreter import Interpreter  # noqa: E402
from engine.store.db import make_engine, migrate  # noqa: E402
from engine.store.recorder import SqlRecorder  # noqa: E402
from engine.validation import load_flow  # noqa: E402

TRIGGER = {"lead_id": "L1", "name": "Zhang San", "amount": 4200}


def flow_definition(steps: int, lane: str = "event") -> dict[str, Any]:
    """N action steps, each reading the trigger and the previous step's output."""
    body = [{"id": "s0", "type": "action", "action": "core.set", "args": {"value": {"n": 0, "name": {"$expr": "trigger.name"}}}}]
    for i in range(1, steps):
        body.append({"id": f"s{i}", "type": "action", "action": "core.set",
                     "args": {"value": {"n": i, "name": {"$expr": f"steps.s{i - 1}.output.name"}}}})
    return {"id": f"bench-{steps}", "name": f"bench {steps}", "trigger": {"type": "manual"},
            "execution": {"lane": lane}, "steps": body}


# ----------------------------------------------------------------------------- plain Python


class DiscardingRecorder:
    """Drops records: the interpreter's own cost, without a heap that grows during the benchmark
    (a growing heap makes the garbage collector slow down every later variant)."""

    def run_started(self, run: Any) -> None:
        pass

    def step_finished(self, step: Any) -> None:
        pass

    def run_finished(self, run: Any) -> None:
        pass


def plain_step(prev: dict[str, Any], n: int) -> dict[str, Any]:
    return {"n": n, "name": prev["name"]}


def plain_run(steps: int, trigger: dict[str, Any]) -> dict[str, Any]:
    out = {"n": 0, "name": trigger["name"]}
    for i in range(1, steps):
        out = plain_step(out, i)
    return out


class PlainInserter:
    """Plain Python plus the same rows the engine writes, inserted in batches."""

    def __init__(self, url: str) -> None:
        self.db = make_engine(url)
        migrate(self.db)
        self.pending: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self.counter = 0

    def run(self, steps: int, trigger: dict[str, Any]) -> None:
        self.counter += 1
        run_id = f"plain-{self.counter}"
        t0 = time.time()
        out = {"n": 0, "name": trigger["name"]}
        for i in range(steps):
            if i:
                out = plain_step(out, i)
            now = time.time()
            self.pending.append((run_id, i + 1, f"s{i}", f"s{i}", "action", "succeeded",
                                 orjson.dumps({"value": out}).decode(), None, orjson.dumps(out).decode(), None,
                                 None, '[{"attempt":1}]', now, now))
        self.runs.append((run_id, "plain", None, "plain", "succeeded", orjson.dumps(trigger).decode(), None,
                          orjson.dumps(out).decode(), None, None, t0, time.time(), None, None))
        if len(self.pending) >= 2000:
            self.flush()

    def flush(self) -> None:
        from engine.store.recorder import RUN_COLUMNS, STEP_COLUMNS

        if self.pending or self.runs:
            with self.db.begin() as conn:
                if self.runs:
                    conn.exec_driver_sql(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})", self.runs)
                if self.pending:
                    conn.exec_driver_sql(f"INSERT INTO step_runs ({', '.join(STEP_COLUMNS)}) VALUES ({', '.join('?' * len(STEP_COLUMNS))})", self.pending)
            self.pending, self.runs = [], []


# ----------------------------------------------------------------------------- Prefect


def make_prefect_flow(steps: int):
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    @task(cache_policy=NO_CACHE, persist_result=False)
    async def step(prev: dict[str, Any], n: int) -> dict[str, Any]:
        return {"n": n, "name": prev["name"]}

    @flow(name=f"hand-written-{steps}", persist_result=False, validate_parameters=False)
    async def hand_written(trigger: dict[str, Any]) -> dict[str, Any]:
        out = await step({"name": trigger["name"]}, 0)
        for i in range(1, steps):
            out = await step(out, i)
        return out

    return hand_written


# ----------------------------------------------------------------------------- timing


async def per_run(fn: Callable[[], Awaitable[Any] | Any], runs: int, warmup: int = 2, flush: Callable[[], None] | None = None) -> float:
    """Seconds per run over `runs` sequential runs after warm-up: the median, or, when the
    variant batches its writes (`flush`), the mean including the final flush, so the
    batched inserts are counted in full."""
    gc.collect()

    async def once() -> None:
        result = fn()
        if asyncio.iscoroutine(result):
            await result

    for _ in range(warmup):
        await once()
    if flush is not None:
        flush()
        t = time.perf_counter()
        for _ in range(runs):
            await once()
        flush()
        return (time.perf_counter() - t) / runs
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        await once()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def throughput(interpreter: Interpreter, flow: Any, total: int, in_flight: int, flush: Callable[[], None]) -> float:
    """Five-step runs per second with `in_flight` concurrent runs, history flushed at the end."""
    sem = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with sem:
            await interpreter.execute(flow, {**TRIGGER, "i": i})

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    flush()
    return total / (time.perf_counter() - t)


@contextlib.contextmanager
def prefect_backend(tmp: Path):
    """A real Prefect server on PostgreSQL if the local server answers, else Prefect's temporary one."""
    from engine.prefect_server import prefect_server, using_prefect_api

    admin_url = os.environ.get("FLOWLINK_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"flowlink_bench_prefect_{os.getpid()}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception:
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=90):
            yield "temporary server on SQLite (PostgreSQL not reachable)"
        return
    host = admin_url.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        with prefect_server(tmp / "prefect-home", f"postgresql+asyncpg://{host}/{name}") as api:
            with using_prefect_api(api):
                yield "prefect server start on PostgreSQL"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def coarse_grain(event: Interpreter, five: Any, recorder: SqlRecorder, quick: bool) -> dict[int, float]:
    """Seconds per five-step run when one Prefect flow run tracks a whole batch of event-lane runs."""
    from prefect import flow

    @flow(name="flowlink-event-batch", persist_result=False, validate_parameters=False)
    async def batch(size: int) -> None:
        for _ in range(size):
            await event.execute(five, TRIGGER)

    per_run_by_size = {}
    for size in (1, 10, 100, 1000):
        repeats = 3 if not quick else 1
        per_run_by_size[size] = await per_run(lambda: batch(size), repeats, warmup=1, flush=recorder.flush) / size
    return per_run_by_size


async def main(quick: bool) -> None:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    tmp = Path(tempfile.mkdtemp(prefix="flowlink-bench-"))
    db = make_engine(f"sqlite:///{tmp / 'bench.db'}")
    migrate(db)
    sql_recorder = SqlRecorder(db)
    event = Interpreter(sql_recorder)
    memory = Interpreter(DiscardingRecorder())
    inserter = PlainInserter(f"sqlite:///{tmp / 'plain.db'}")
    reps = {1: 200, 10: 100, 100: 20} if not quick else {1: 50, 10: 20, 100: 5}
    prefect_reps = {1: 10, 10: 5, 100: 2} if not quick else {1: 3, 10: 2, 100: 1}

    from engine.tracked import run_tracked

    rows = []
    t_server = time.perf_counter()
    with prefect_backend(tmp) as backend:
        server_start = time.perf_counter() - t_server
        for steps in (1, 10, 100):
            flow = load_flow(flow_definition(steps)).flow
            assert flow is not None
            r: dict[str, float] = {"steps": steps}
            r["plain"] = await per_run(lambda: plain_run(steps, TRIGGER), reps[steps] * 10)
            r["plain+insert"] = await per_run(lambda: inserter.run(steps, TRIGGER), reps[steps] * 5, flush=inserter.flush)
            r["event-mem"] = await per_run(lambda: memory.execute(flow, TRIGGER), reps[steps])

            async def event_run() -> None:
                await event.execute(flow, TRIGGER)

            r["event"] = await per_run(event_run, reps[steps] * 5, flush=sql_recorder.flush)
            hand = make_prefect_flow(steps)
            r["prefect"] = await per_run(lambda: hand(TRIGGER), prefect_reps[steps], warmup=1)
            counter = iter(range(10**9))
            r["tracked"] = await per_run(
                lambda: run_tracked(flow, TRIGGER, run_id=f"bench-{steps}-{next(counter)}", recorder=sql_recorder),
                prefect_reps[steps], warmup=1)
            rows.append(r)
            print(f"  measured {steps} step(s)", file=sys.stderr, flush=True)
        batches = await coarse_grain(event, load_flow(flow_definition(5)).flow, sql_recorder, quick)

    five = load_flow(flow_definition(5)).flow
    seq = await throughput(event, five, 1000 if not quick else 200, 1, sql_recorder.flush)
    conc = await throughput(event, five, 3000 if not quick else 500, 50, sql_recorder.flush)
    sql_recorder.close()

    print("\n## Engine overhead (time per run; ratios against plain Python, same process, same run)\n")
    print(f"Prefect server: {backend}, ready in {server_start:.1f} s (paid once, by the Prefect variants only)\n")
    print("| steps | plain µs | plain+insert | event-mem | event (SQLite history) | tracked (Prefect) | hand-written Prefect |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        p = r["plain"]
        cells = [f"{r[k] / p:,.0f}×" for k in ("plain+insert", "event-mem", "event", "tracked", "prefect")]
        print(f"| {r['steps']} | {p * 1e6:.1f} | " + " | ".join(cells) + " |")
    print("\n| steps | event / plain+insert | event / hand-written Prefect | tracked / hand-written Prefect | per-step: event µs, plain+insert µs |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        n = r["steps"]
        print(f"| {n} | {r['event'] / r['plain+insert']:.2f} | {r['event'] / r['prefect']:.4f} | {r['tracked'] / r['prefect']:.2f} | "
              f"{r['event'] / n * 1e6:.1f}, {r['plain+insert'] / n * 1e6:.1f} |")
    print("\n## Coarse-grain tracking: one Prefect flow run per batch of five-step event-lane runs\n")
    print("| runs per Prefect flow run | time per run, × event lane alone | runs/s |")
    print("|---:|---:|---:|")
    for size, t in batches.items():
        print(f"| {size} | {t * seq:,.1f}× | {1 / t:,.0f} |")
    print(f"\nfive-step runs/s, history to SQLite: sequential {seq:,.0f}, 50 in flight {conc:,.0f} "
          f"(hand-written Prefect: {1 / next(r for r in rows if r['steps'] == 10)['prefect'] * 2:,.1f}/s extrapolated from 10 steps)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    asyncio.run(main(parser.parse_args().quick))
