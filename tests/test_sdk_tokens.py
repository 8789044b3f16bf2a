"""TokenCache: single-flight refresh in a process and across processes, expiry, invalidation.

Real HTTP against tests/fake_token_platform.py (WeCom style: errcode in 200 bodies).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import insert, select

from connectors.sdk.tokens import Token, TokenCache, token_key
from engine.errors import AuthExpired, PermissionDenied
from engine.store.db import make_engine, migrate
from engine.store.tables import connector_tokens
from tests.fake_token_platform import FakePlatform, platform, platform_server, wecom_client  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def token_db(database_url: str):
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


async def user_get(client, i: int = 0):
    return await client.request("GET", "/cgi-bin/user/get", params={"userid": f"u{i}"})


# --------------------------------------------------------------------------- single flight


async def test_50_concurrent_requests_fetch_one_token_in_memory(platform: FakePlatform) -> None:
    platform.token_delay = 0.1
    client = wecom_client(platform.base_url, TokenCache())
    results = await asyncio.gather(*(user_get(client, i) for i in range(50)))
    assert [r["userid"] for r in results] == [f"u{i}" for i in range(50)]
    assert platform.calls["gettoken"] == 1
    assert platform.rejected["user_get"] == 0


async def test_50_concurrent_requests_fetch_one_token_with_database(platform: FakePlatform, token_db) -> None:
    platform.token_delay = 0.1
    cache = TokenCache(token_db)
    client = wecom_client(platform.base_url, cache)
    results = await asyncio.gather(*(user_get(client, i) for i in range(50)))
    assert all(r["errcode"] == 0 for r in results)
    assert platform.calls["gettoken"] == 1
    # stored encrypted: the row does not contain the token in clear
    token = await cache.peek(client.auth.key)
    with token_db.connect() as conn:
        row = conn.execute(select(connector_tokens).where(connector_tokens.c.key == client.auth.key)).one()
    assert row.connector == "wecom" and len(row.key) == 64
    assert token.value.encode() not in row.token
    assert row.lease_owner is None and row.lease_until is None
    # a second cache on the same database (another worker) uses the stored token
    other = wecom_client(platform.base_url, TokenCache(token_db))
    assert (await user_get(other))["errcode"] == 0
    assert platform.calls["gettoken"] == 1


async def test_two_caches_on_one_database_share_one_fetch_through_the_lease(platform: FakePlatform, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate(engine)
    platform.token_delay = 0.2
    clients = [wecom_client(platform.base_url, TokenCache(engine, poll_interval=0.02)) for _ in range(3)]
    results = await asyncio.gather(*(user_get(c, i) for i in range(10) for c in clients))
    assert all(r["errcode"] == 0 for r in results)
    assert platform.calls["gettoken"] == 1
    assert sum(c.auth.cache.fetches for c in clients) == 1
    engine.dispose()


async def test_a_lease_left_by_a_dead_worker_expires_and_is_taken_over(platform: FakePlatform, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate(engine)
    cache = TokenCache(engine, lease_seconds=0.3, poll_interval=0.02)
    client = wecom_client(platform.base_url, cache)
    now = time.time()
    with engine.begin() as conn:
        conn.execute(insert(connector_tokens).values(key=client.auth.key, connector="wecom", token=None, expires_at=None,
                                                     lease_until=now + 0.3, lease_owner="ghost", updated_at=now))
    started = time.monotonic()
    assert (await user_get(client))["errcode"] == 0
    assert 0.25 <= time.monotonic() - started < 3
    assert platform.calls["gettoken"] == 1
    engine.dispose()


# --------------------------------------------------------------------------- revocation


async def _revoke_midway(platform: FakePlatform, cache: TokenCache) -> None:
    client = wecom_client(platform.base_url, cache)
    for i in range(5):
        await user_get(client, i)
    assert platform.calls["gettoken"] == 1
    platform.revoke_all()
    before = platform.calls["user_get"]
    platform.token_delay = 0.05
    results = await asyncio.gather(*(user_get(client, i) for i in range(50)))
    assert all(r["errcode"] == 0 for r in results)
    assert platform.calls["gettoken"] == 2
    rejected = platform.rejected["user_get"]
    assert rejected == 50  # all 50 were sent with the revoked token ...
    assert platform.calls["user_get"] - before == 50 + rejected  # ... and each retried exactly once


async def test_token_revoked_midway_is_refreshed_once_in_memory(platform: FakePlatform) -> None:
    await _revoke_midway(platform, TokenCache())


async def test_token_revoked_midway_is_refreshed_once_with_database(platform: FakePlatform, token_db) -> None:
    await _revoke_midway(platform, TokenCache(token_db))


async def test_a_call_is_retried_only_once_when_the_new_token_fails_too(platform: FakePlatform) -> None:
    client = wecom_client(platform.base_url, TokenCache())
    await user_get(client)
    platform.reject_all = True
    with pytest.raises(AuthExpired) as info:
        await user_get(client)
    assert platform.calls["user_get"] == 3  # 1 good, then 1 failure + exactly 1 retry
    assert platform.calls["gettoken"] == 2
    assert info.value.code == "40014" and "wecom.40014" in info.value.names()


async def test_invalidate_only_clears_the_current_token() -> None:
    cache = TokenCache()
    fetched = []

    async def fetch(previous):
        fetched.append(previous)
        return Token.issue(f"t{len(fetched)}", 3600, {"refresh_token": "r"})

    key = token_key("c", "", "app", "secret")
    t1 = await cache.get(key, fetch)
    assert await cache.invalidate(key, t1) is True
    assert await cache.invalidate(key, t1) is False  # already cleared
    t2 = await cache.get(key, fetch)
    assert t2.value == "t2" and fetched[1].value == "t1" and fetched[1].extra["refresh_token"] == "r"
    assert await cache.invalidate(key, t1) is False  # late report about the old token: t2 stays
    assert (await cache.get(key, fetch)).value == "t2"
    assert len(fetched) == 2


async def test_a_failed_refresh_is_reported_to_every_waiter_without_refetching(platform: FakePlatform) -> None:
    platform.token_delay = 0.05
    client = wecom_client(platform.base_url, TokenCache(), secret="wrong")
    results = await asyncio.gather(*(user_get(client, i) for i in range(20)), return_exceptions=True)
    assert all(isinstance(r, PermissionDenied) for r in results)
    assert platform.calls["gettoken"] == 1
    assert "40001" in results[0].message and "secret is wrong" in results[0].message


# --------------------------------------------------------------------------- expiry


async def test_a_token_close_to_expiry_is_refreshed_before_use(platform: FakePlatform) -> None:
    platform.expires_in = 1.0
    client = wecom_client(platform.base_url, TokenCache(skew=300, skew_ratio=0.5))  # refresh after half the lifetime
    await user_get(client)
    await asyncio.sleep(0.6)
    await user_get(client)
    assert platform.calls["gettoken"] == 2
    assert platform.rejected["user_get"] == 0  # refreshed before the platform would have said 42001


def test_freshness_uses_the_shorter_of_skew_and_ratio() -> None:
    now = [1000.0]
    cache = TokenCache(skew=300, skew_ratio=0.1, clock=lambda: now[0])
    long = Token("a", expires_at=1000 + 7200, issued_at=1000)
    short = Token("b", expires_at=1000 + 100, issued_at=1000)
    now[0] = 1000 + 7200 - 301
    assert cache.is_fresh(long)
    now[0] = 1000 + 7200 - 299
    assert not cache.is_fresh(long)
    now[0] = 1000 + 89
    assert cache.is_fresh(short)
    now[0] = 1000 + 91
    assert not cache.is_fresh(short)
    assert cache.is_fresh(Token("c", expires_at=None))


# --------------------------------------------------------------------------- across OS processes


def _run_workers(db_url: str, base_url: str, processes: int = 2, requests: int = 20) -> list[dict]:
    env = {**os.environ, "FLOWLINK_SECRET_KEY": Fernet.generate_key().decode(),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.token_worker", db_url, base_url, str(requests)],
                              cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(processes)]
    for proc in procs:  # wait until every worker has imported everything, then start them together
        line = proc.stdout.readline()
        assert line.strip() == b"ready", (line, proc.stderr.read().decode()[-3000:] if proc.poll() is not None else "")
    for proc in procs:
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-3000:]
        outputs.append(orjson.loads(out.decode().strip().splitlines()[-1]))
    return outputs


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_processes_share_one_token_fetch(platform: FakePlatform, backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    platform.token_delay = 0.3
    outputs = _run_workers(url, platform.base_url)
    assert [o["ok"] for o in outputs] == [20, 20]
    assert platform.calls["gettoken"] == 1
    assert sum(o["fetches"] for o in outputs) == 1
    assert outputs[0]["token"] == outputs[1]["token"] is not None
