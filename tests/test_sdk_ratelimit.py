"""Shared rate budgets: never exceeded across coroutines and worker processes; callers wait, not fail."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.sdk import Connector
from connectors.sdk.ratelimit import Budget, RateLimiter, budget_of
from engine.errors import RateLimited
from engine.store.db import make_engine, migrate
from tests.fake_http import ServerThread

ROOT = Path(__file__).resolve().parent.parent
EPS = 0.05  # clock granularity plus the jitter between the limiter granting a call and the server seeing it


def max_in_window(times: list[float], window: float) -> int:
    """The most events in any half-open window [t, t + window)."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


@pytest.fixture()
def db(database_url: str):
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture()
def counting_server():
    arrivals: list[float] = []

    async def hit(request: Request) -> JSONResponse:
        if "warm" not in request.query_params:
            arrivals.append(time.time())
        return JSONResponse({"n": len(arrivals)})

    server = ServerThread(Starlette(routes=[Route("/hit", hit)])).start()
    yield f"http://127.0.0.1:{server.port}/hit", arrivals
    server.stop()


def test_window_helper() -> None:
    assert max_in_window([0.0, 0.5, 0.99, 1.0], 1.0) == 3
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.2], 1.0) == 4
    assert max_in_window([], 1.0) == 0


def test_budget_of_n_per_second_across_two_worker_processes_is_never_exceeded(db, database_url, counting_server) -> None:
    url, arrivals = counting_server
    rate, seconds = 10, 3.0
    start_at = time.time() + 1.5  # both interpreters are up before either starts calling
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.ratelimit_worker", database_url, url, "dingtalk:app1:/v1/users", str(rate), str(start_at), str(seconds), "8"]
    workers = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for proc in workers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert all(r["failed"] == 0 for r in results), results  # waits, never failures
    assert all(r["ok"] > 0 for r in results), results  # both processes got their share
    assert all(r["waited"] > 0 for r in results), results  # ... by waiting
    assert sum(r["ok"] for r in results) == len(arrivals)
    # a burst of `rate`, then `rate` more per second: ~10 + 3 * 10 calls
    assert len(arrivals) >= rate * seconds, len(arrivals)
    assert max_in_window(arrivals, 1.0 - EPS) <= rate, sorted(a - arrivals[0] for a in arrivals)


async def test_fifty_concurrent_coroutines_share_one_budget(db) -> None:
    limiter = RateLimiter(db, Budget(20, 0.5, "wecom.robot"))
    granted: list[float] = []

    async def call() -> None:
        await limiter.acquire("wecom.robot:hook-1")
        granted.append(time.time())

    started = time.monotonic()
    await asyncio.gather(*(call() for _ in range(50)))
    elapsed = time.monotonic() - started

    assert len(granted) == 50  # every caller eventually got through
    assert max_in_window(granted, 0.5 - EPS) <= 20
    assert elapsed >= 1.0 - EPS  # 20 at once, 20 after 0.5 s, the last 10 after 1 s
    assert elapsed < 3.0


async def test_keys_are_independent_and_costs_count(db) -> None:
    limiter = RateLimiter(db)
    for _ in range(3):
        assert await limiter.acquire("a", rate=3, per=60) < 0.5
    assert await limiter.acquire("b", rate=3, per=60, cost=3) < 0.5  # another key: its own budget
    assert limiter.try_acquire("a", 3, 60) > 59  # spent for a minute
    assert limiter.try_acquire("b", 3, 60) > 59
    limiter.reset("a")
    assert limiter.try_acquire("a", 3, 60) == 0.0


async def test_max_wait_raises_rate_limited_with_retry_after(db) -> None:
    limiter = RateLimiter(db)
    await limiter.acquire("k", rate=1, per=30)
    with pytest.raises(RateLimited) as info:
        await limiter.acquire("k", rate=1, per=30, max_wait=0.1)
    assert 29 < info.value.retry_after <= 30
    assert info.value.kind == "RateLimited"


async def test_cost_is_all_or_nothing(db) -> None:
    limiter = RateLimiter(db)
    await limiter.acquire("c", rate=4, per=0.3, cost=3)
    waited = await limiter.acquire("c", rate=4, per=0.3, cost=2)  # only one left: waits for the first grants
    assert waited >= 0.3 - EPS
    with pytest.raises(ValueError, match="cost"):
        await limiter.acquire("c", rate=4, per=0.3, cost=5)


async def test_long_keys_fit_the_table(db) -> None:
    limiter = RateLimiter(db)
    key = "dingtalk:" + "x" * 400
    await limiter.acquire(key, rate=2, per=60)
    await limiter.acquire(key, rate=2, per=60)
    assert limiter.try_acquire(key, 2, 60) > 0
    assert limiter.try_acquire(key[:-1] + "y", 2, 60) == 0.0  # a different long key is a different budget


async def test_acquire_needs_a_budget(sqlite_url) -> None:
    engine = make_engine(sqlite_url)
    migrate(engine)
    limiter = RateLimiter(engine)
    with pytest.raises(ValueError, match="no default budget"):
        await limiter.acquire("k")
    bound = limiter.with_budget(Budget(5, 1.0))
    assert await bound.acquire("k") < 0.5
    engine.dispose()


def test_budget_declaration_and_lookup() -> None:
    with pytest.raises(ValueError):
        Budget(0)
    with pytest.raises(ValueError):
        Budget(5, per=0)
    per_app = Budget(20, 1.0, "dingtalk")
    assert per_app.key("app-1", "/v1.0/users", None) == "dingtalk:app-1:/v1.0/users"

    connector = Connector(name="demo", version="1.0.0", title={"en": "Demo"})
    per_app.attach(connector)

    @connector.action("send")
    @Budget(20, 60.0, "wecom.robot").attach
    async def send(ctx, args):  # noqa: ANN001
        return args

    @connector.action("list")
    async def list_(ctx, args):  # noqa: ANN001
        return args

    assert budget_of(connector.actions["send"]) == Budget(20, 60.0, "wecom.robot")
    assert budget_of(connector.actions["list"]) is per_app  # falls back to the connector's
    assert budget_of(connector) is per_app
    assert budget_of(object()) is None
