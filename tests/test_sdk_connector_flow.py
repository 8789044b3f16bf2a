"""A connector declared as data (base_url, app-token auth, error rules, budget) and used in
flows through FlowEngine: ctx.client shares one token across runs, refreshes a revoked one
once, raises platform codes flows can catch, gets a custom_api_call action, and waits for
its rate budget across concurrent runs."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from connectors.core import connector as core_connector
from connectors.sdk import Budget, Connector, ConnectorRegistry, token_endpoint
from connectors.sdk.manifest import validate_manifest
from engine.runtime import FlowEngine
from engine.store.tables import rate_buckets
from tests import fake_token_platform as fp
from tests.fake_token_platform import WECOM_RULES, WECOM_TOKEN_RULES, FakePlatform, platform, platform_server  # noqa: F401

CONNECTION = {"app_id": fp.APP_ID, "app_secret": fp.APP_SECRET}


class GetUser(BaseModel):
    userid: str


def wecom(base_url: str, budget: Budget | None = None) -> Connector:
    """A WeCom-like connector: a manifest and one small function, no HTTP plumbing."""
    connector = Connector(
        name="wecom",
        version="1.0.0",
        title={"en": "WeCom", "zh": "企业微信"},
        base_url=base_url,
        auth="app_token",
        auth_options={"fetch_token": token_endpoint(f"{base_url}/cgi-bin/gettoken", error_rules=WECOM_TOKEN_RULES,
                                                    params={"corpid": "{app_id}", "corpsecret": "{app_secret}"},
                                                    connector="wecom")},
        error_rules=WECOM_RULES,
        budget=budget,
    )

    @connector.action("get_user", input=GetUser, examples=[{"title": "Zhang San", "input": {"userid": "zs"},
                                                              "connection": CONNECTION, "expect": {"name": "Zhang San"}}])
    async def get_user(ctx, inp: GetUser) -> dict[str, Any]:
        return await ctx.client.get("/cgi-bin/user/get", params={"userid": inp.userid})

    return connector


@pytest.fixture()
def engine(platform: FakePlatform, postgres_url: str, request: pytest.FixtureRequest) -> Iterator[FlowEngine]:
    budget = getattr(request, "param", None)
    eng = FlowEngine(postgres_url, registry=ConnectorRegistry([core_connector, wecom(platform.base_url, budget)]))
    eng.connection_store.put("wecom-main", "wecom", CONNECTION)
    yield eng
    eng.close()


def flow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": "t", "name": "t", "trigger": {"type": "manual"}, "steps": list(steps)}


def get_user(step_id: str = "user", userid: str = "zs", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": "wecom.get_user", "connection": "wecom-main",
            "args": {"userid": userid}, **extra}


async def test_one_token_for_twenty_concurrent_runs(engine: FlowEngine, platform: FakePlatform) -> None:
    platform.token_delay = 0.05  # every run asks while the first fetch is under way
    compiled = engine.compile(flow(get_user(end=True)))
    runs = await asyncio.gather(*(engine.run(compiled) for _ in range(20)))
    assert [r.status for r in runs] == ["succeeded"] * 20, runs[0].error
    assert runs[0].output["name"] == "Zhang San"
    assert platform.calls["gettoken"] == 1 and platform.calls["user_get"] == 20


async def test_a_revoked_token_is_refreshed_once_mid_flow(engine: FlowEngine, platform: FakePlatform) -> None:
    compiled = engine.compile(flow(
        get_user("first", next="pause"),
        {"id": "pause", "type": "action", "action": "core.delay", "args": {"seconds": 0.5}, "next": "second"},
        get_user("second", userid="ls", end=True),
    ))
    pending = [asyncio.ensure_future(engine.run(compiled)) for _ in range(10)]
    while platform.calls["user_get"] < 10:  # every run is in its pause
        await asyncio.sleep(0.01)
    platform.revoke_all()
    runs = await asyncio.gather(*pending)
    assert [r.status for r in runs] == ["succeeded"] * 10, runs[0].error
    assert runs[0].output["userid"] == "ls"
    assert platform.calls["gettoken"] == 2  # the first token, and one refresh for all ten runs
    # each rejected call was retried once with the new token (calls that came later used it at once)
    assert 1 <= platform.rejected["user_get"] <= 10
    assert platform.calls["user_get"] == 20 + platform.rejected["user_get"]


async def test_a_flow_catches_a_platform_code(engine: FlowEngine, platform: FakePlatform) -> None:
    platform.rate_limited = True
    compiled = engine.compile(flow(
        get_user(retry=[], catch=[{"errors": ["wecom.45009"], "next": "throttled"}], end=True),
        {"id": "throttled", "type": "set", "value": {"$expr": "error"}, "end": True},
    ))
    run = await engine.run(compiled)
    assert run.status == "succeeded", run.error
    assert run.output["code"] == "45009" and run.output["type"] == "RateLimited" and run.output["connector"] == "wecom"
    assert "access_token" not in run.output["message"]


async def test_custom_api_call_reuses_the_connectors_auth(engine: FlowEngine, platform: FakePlatform) -> None:
    connector = engine.registry.connectors["wecom"]
    manifest = connector.manifest()
    assert set(manifest["actions"]) == {"get_user", "custom_api_call"} and validate_manifest(manifest) == []
    assert manifest["base_url"] == platform.base_url and manifest["connection"]["kinds"] == ["app_token"]
    assert manifest["actions"]["get_user"]["examples"] == [{"title": "Zhang San", "input": {"userid": "zs"},
                                                            "expect": {"name": "Zhang San"}}]
    assert "custom_api_call" not in engine.registry.connectors["core"].actions
    call = {"id": "raw", "type": "action", "action": "wecom.custom_api_call", "connection": "wecom-main",
            "args": {"path": "/cgi-bin/user/get", "query": {"userid": "ww"}}, "end": True}
    run = await engine.run(engine.compile(flow(call)))
    assert run.status == "succeeded", run.error
    assert run.output["status"] == 200 and run.output["body"]["userid"] == "ww"
    assert platform.calls["gettoken"] == 1
    # platform codes are classified by the connector's rules here too
    platform.rate_limited = True
    run = await engine.run(engine.compile(flow({**call, "retry": []})))
    assert run.error["type"] == "RateLimited" and run.error["code"] == "45009"
    # the connector's credentials go to its own host only
    other = {**call, "args": {"url": "http://example.com/steal"}}
    run = await engine.run(engine.compile(flow(other)))
    assert run.error["type"] == "InvalidInput" and "example.com" in run.error["message"]


@pytest.mark.parametrize("engine", [Budget(2, 0.4, "wecom")], indirect=True)
async def test_a_declared_budget_makes_concurrent_runs_wait(engine: FlowEngine, platform: FakePlatform) -> None:
    compiled = engine.compile(flow(get_user(end=True)))
    await engine.run(compiled)  # the token, outside the measured window
    platform.user_get_times.clear()
    started = time.monotonic()
    runs = await asyncio.gather(*(engine.run(compiled) for _ in range(6)))
    assert [r.status for r in runs] == ["succeeded"] * 6, runs[0].error
    times = sorted(platform.user_get_times)
    assert len(times) == 6
    # never more than 2 calls in any 0.4 s window, as the platform sees them (latency jitter allowed:
    # without the budget the six calls would arrive within milliseconds of each other)
    assert all(times[i + 2] - times[i] >= 0.4 - 0.15 for i in range(len(times) - 2)), times
    assert time.monotonic() - started >= 0.7  # 7 calls at 2 per 0.4 s: at least the third window
    # the budget is kept in the database per connector and connection
    with engine.db.connect() as conn:
        keys = set(conn.execute(sa.select(rate_buckets.c.key)).scalars())
    assert "wecom:wecom-main" in keys and {k.split("#")[0] for k in keys} == {"wecom:wecom-main"}
