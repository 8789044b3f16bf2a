"""The yonyou connector in flows, through FlowEngine, against its sandbox on 127.0.0.1: the
signed token (cached, refreshed on 310036 mid-flow), paging to the end, saved customers that
can be read back, platform errors flows catch, the quota, the contract kit."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Iterator

import httpx
import pytest

from connectors.core import connector as core_connector
from connectors.sdk import ConnectorRegistry
from connectors.sdk.contract import check_connector
from connectors.sdk.sandbox import SandboxServer
from connectors.yonyou import connector as yonyou
from connectors.yonyou.actions import SANDBOX
from connectors.yonyou.auth import token_base
from connectors.yonyou.sandbox import FakeYonyou
from connectors.yonyou.signing import token_signature
from engine.runtime import FlowEngine


@pytest.fixture()
def fake() -> FakeYonyou:
    return FakeYonyou()


@pytest.fixture()
def server(fake: FakeYonyou) -> Iterator[SandboxServer]:
    with SandboxServer(fake.app) as running:
        yield running


@pytest.fixture()
def engine(server: SandboxServer, sqlite_url: str) -> Iterator[FlowEngine]:
    eng = FlowEngine(sqlite_url, registry=ConnectorRegistry([core_connector, yonyou]))
    eng.connection_store.put("yy", "yonyou", {**SANDBOX, "base_url": server.base_url})
    yield eng
    eng.close()


def step(step_id: str, action: str, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": f"yonyou.{action}", "connection": "yy", "args": args, **extra}


async def run(engine: FlowEngine, *steps: dict[str, Any]) -> Any:
    return await engine.run(engine.compile({"id": "t", "name": "t", "trigger": {"type": "manual"}, "steps": list(steps)}))


def test_token_signature_matches_the_reference_vector() -> None:
    params = {"appKey": "41832a3d2df94989b500da6a22268747", "timestamp": "1568098531823"}
    assert token_signature(params, "test_app_secret") == "MwjIQxh/KFuLcvDVG+VWTOITZGjSSWPAWKjG4TnW72g="
    assert token_signature({**params, "signature": "ignored"}, "test_app_secret") == token_signature(params, "test_app_secret")
    assert token_base("https://c2.yonyoucloud.com/iuap-api-gateway/") == "https://c2.yonyoucloud.com/iuap-api-auth"
    assert token_base("http://127.0.0.1:9000") == "http://127.0.0.1:9000"


async def test_customer_saved_then_read_back_and_updated(engine: FlowEngine, fake: FakeYonyou) -> None:
    result = await run(
        engine,
        step("save", "customer_save", {"code": "C0200", "name": "重庆长江机电有限公司", "create_org": "ORG001",
                                       "customer_class": "02", "extra": {"shortname": {"zh_CN": "长江机电"}}}, next="read"),
        step("read", "custom_api_call", {"method": "POST", "path": "/yonbip/digitalModel/merchant/detail",
                                         "json": {"id": {"$expr": "steps.save.output.id"}}}, next="rename"),
        step("rename", "customer_save", {"status": "Update", "id": {"$expr": "steps.save.output.id"}, "code": "C0200",
                                         "name": "重庆长江机电股份有限公司", "create_org": "ORG001", "customer_class": "02"},
             next="out"),
        {"id": "out", "type": "set", "value": {"read": {"$expr": "steps.read.output.body.data"},
                                               "renamed": {"$expr": "steps.rename.output"}}, "end": True},
    )
    assert result.status == "succeeded", result.error
    assert result.output["read"]["shortname"] == {"zh_CN": "长江机电"} and result.output["read"]["customerClass"] == "02"
    assert result.output["renamed"]["name"] == {"zh_CN": "重庆长江机电股份有限公司"}
    assert fake.customers["C0200"]["id"] == result.output["read"]["id"]
    assert fake.tokens_issued == 1  # one token for the whole flow


async def test_sales_orders_page_to_the_end(engine: FlowEngine, fake: FakeYonyou) -> None:
    fake.seed_sales_orders(8, lines=3)  # 3 seeded orders x 2 lines + 8 x 3 = 30 rows
    result = await run(engine, step("all", "sales_order_list", {"page_size": 7}))
    assert result.status == "succeeded", result.error
    assert result.output["count"] == 30 and result.output["pages"] == 5 and len(result.output["records"]) == 30
    assert len({r["orderDetailId"] for r in result.output["records"]}) == 30
    assert fake.calls["sd/voucherorder/list"] == 5
    result = await run(engine, step("sum", "sales_order_list", {"is_sum": True, "page_size": 4, "all_pages": False}))
    assert result.output == {**result.output, "count": 11, "pages": 1} and len(result.output["records"]) == 4
    code = result.output["records"][3]["code"]
    result = await run(engine, step("one", "sales_order_list", {"code": code, "is_sum": True}, next="detail"),
                       step("detail", "sales_order_detail", {"id": {"$expr": "steps.one.output.records[0].id"}}, end=True))
    assert result.status == "succeeded", result.error
    assert result.output["code"] == code and len(result.output["orderDetails"]) == 3
    result = await run(engine, step("capped", "sales_order_list", {"page_size": 10, "max_items": 25}, retry=[]))
    assert result.status == "failed" and "more than 25 items" in result.error["message"]


async def test_materials(engine: FlowEngine) -> None:
    result = await run(engine, step("m", "material_list", {"page_size": 2}))
    assert result.status == "succeeded", result.error
    assert [m["code"] for m in result.output["records"]] == ["M0001", "M0002", "M0003", "M0004", "M0005"]
    assert result.output["pages"] == 3
    result = await run(engine, step("m", "material_list", {"name": "钢"}))
    assert [m["code"] for m in result.output["records"]] == ["M0001"]


async def test_expired_token_is_refreshed_once_mid_flow(engine: FlowEngine, fake: FakeYonyou) -> None:
    compiled = engine.compile({"id": "t", "name": "t", "trigger": {"type": "manual"}, "steps": [
        step("first", "material_list", {"code": "M0001"}, next="pause"),
        {"id": "pause", "type": "action", "action": "core.delay", "args": {"seconds": 0.3}, "next": "second"},
        step("second", "material_list", {"code": "M0002"}, end=True)]})
    pending = asyncio.ensure_future(engine.run(compiled))
    while fake.calls["digitalModel/product/list"] < 1:
        await asyncio.sleep(0.01)
    fake.advance(7300)  # the platform's clock passes the token's 7200 s; the client still holds it
    result = await pending
    assert result.status == "succeeded", result.error
    assert result.output["records"][0]["code"] == "M0002"
    assert fake.tokens_issued == 2 and fake.calls["digitalModel/product/list"] == 3  # 310036 once, then retried
    fake.revoke_tokens()
    result = await run(engine, step("again", "material_list", {"code": "M0003"}))
    assert result.status == "succeeded" and fake.tokens_issued == 3


async def test_platform_errors_flows_can_catch(engine: FlowEngine, fake: FakeYonyou, server: SandboxServer) -> None:
    customer = {"code": "C0001", "name": "重复", "create_org": "ORG001", "customer_class": "01"}
    result = await run(engine, step("dup", "customer_save", customer, catch=[{"errors": ["yonyou.999"], "next": "bad"}]),
                       {"id": "bad", "type": "set", "value": {"$expr": "error"}, "end": True})
    assert result.status == "succeeded", result.error
    assert result.output["type"] == "InvalidInput" and "已存在" in result.output["message"]
    result = await run(engine, step("cls", "customer_save", {**customer, "code": "C0300", "customer_class": "99"}, retry=[]))
    assert result.error["code"] == "999" and "customerClass" in result.error["message"]
    result = await run(engine, step("nf", "custom_api_call", {"path": "/yonbip/nope"}, retry=[]))
    assert result.error["type"] == "NotFound" and result.error["code"] == "310404"
    engine.connection_store.put("bad", "yonyou", {**SANDBOX, "app_secret": "wrong", "base_url": server.base_url})
    result = await run(engine, {**step("m", "material_list", {}), "connection": "bad", "retry": []})
    assert result.error["type"] == "PermissionDenied" and result.error["code"] == "10019"
    assert "access_token" not in result.error["message"]


async def test_quota_surfaces_as_rate_limited(engine: FlowEngine, fake: FakeYonyou) -> None:
    fake.quota_per_minute = 1
    first = await run(engine, step("a", "material_list", {}))
    assert first.status == "succeeded", first.error
    second = await run(engine, step("b", "material_list", {}, retry=[]))
    assert second.error["type"] == "RateLimited" and second.error["code"] == "310046"
    fake.advance(61)
    third = await run(engine, step("c", "material_list", {}, retry=[]))
    assert third.status == "succeeded", third.error


async def test_the_fake_rejects_what_yonbip_rejects(server: SandboxServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, trust_env=False) as client:
        assert (await client.post("/yonbip/sd/voucherorder/list", json={"pageIndex": 1, "pageSize": 10})).json()["code"] == "310001"
        assert (await client.post("/yonbip/sd/voucherorder/list?access_token=forged", json={})).json()["code"] == "310036"
        unknown = await client.get("/open-auth/selfAppAuth/base/v1/getAccessToken", params={"appKey": "x", "timestamp": "1"})
        assert unknown.json()["code"] == "10018"
        stale = {"appKey": SANDBOX["app_key"], "timestamp": "1568098531823"}
        stale["signature"] = token_signature(stale, SANDBOX["app_secret"])
        assert (await client.get("/open-auth/selfAppAuth/base/v1/getAccessToken", params=stale)).json()["code"] == "10019"
        fresh = {"appKey": SANDBOX["app_key"], "timestamp": str(int(time.time() * 1000))}
        fresh["signature"] = token_signature(fresh, SANDBOX["app_secret"])
        answer = (await client.get("/open-auth/selfAppAuth/base/v1/getAccessToken", params=fresh)).json()
        assert answer["code"] == "00000" and answer["data"]["expire"] == 7200
        token = answer["data"]["access_token"]
        listing = "/yonbip/sd/voucherorder/list?access_token=" + token
        assert (await client.post(listing, json={"pageSize": 10})).json()["message"].startswith("pageIndex")
        assert (await client.post(listing, json={"pageIndex": 1, "pageSize": 501})).json()["code"] == "999"
        assert (await client.post(listing, json={"pageIndex": 1, "pageSize": 5, "isSum": "no"})).json()["code"] == "999"
        save = "/yonbip/sd/voucherorder/singleSave?access_token=" + token
        bad_line = {"data": {"salesOrgId": "ORG001", "transactionTypeId": "SO01", "agentId": "C0001",
                             "vouchdate": "2026-11-23 09:00:00", "orderDetails": [{"productId": "M0001", "qty": -1}]}}
        assert "qty" in (await client.post(save, json=bad_line)).json()["message"]
        bad_line["data"]["orderDetails"][0]["qty"] = 2
        created = (await client.post(save, json=bad_line)).json()["data"]
        found = (await client.post(listing, json={"pageIndex": 1, "pageSize": 5, "code": created["code"]})).json()
        assert found["data"]["recordCount"] == 1 and found["data"]["recordList"][0]["qty"] == 2


async def test_contract_kit_passes() -> None:
    report = await check_connector(yonyou)
    assert report.ok, [(c.name, c.message, c.details) for c in report.failed]
    assert {c.name for c in report.checks} >= {f"schemas: {a}" for a in yonyou.actions}
