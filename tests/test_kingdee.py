"""The kingdee connector in flows, through FlowEngine, against its sandbox on 127.0.0.1: both
auth modes, every action, paging to the end, session loss mid-flow, field-level validation
errors a flow catches, the changed-bills poll trigger through the scheduler, the contract kit."""
from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timezone
from typing import Any, Iterator

import httpx
import pytest

from api.scheduler import Scheduler
from connectors.core import connector as core_connector
from connectors.kingdee import connector as kingdee
from connectors.kingdee.actions import SANDBOX
from connectors.kingdee.api import service_path
from connectors.kingdee.sandbox import FakeKingdee
from connectors.kingdee.signing import app_data, gateway_secret, hmac_hex_b64
from connectors.sdk import ConnectorRegistry
from connectors.sdk.contract import check_connector
from connectors.sdk.sandbox import SandboxServer
from engine.runtime import FlowEngine

ORDER = {"FDate": "2026-11-23", "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": "CUST0001"},
         "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "CH0002"}, "FQty": 3, "FPrice": 99.5}]}


@pytest.fixture()
def fake() -> FakeKingdee:
    return FakeKingdee()


@pytest.fixture()
def server(fake: FakeKingdee) -> Iterator[SandboxServer]:
    with SandboxServer(fake.app) as running:
        yield running


@pytest.fixture()
def engine(server: SandboxServer, sqlite_url: str) -> Iterator[FlowEngine]:
    eng = FlowEngine(sqlite_url, registry=ConnectorRegistry([core_connector, kingdee]))
    eng.connection_store.put("k3", "kingdee", {**SANDBOX, "base_url": server.base_url + "/K3Cloud"})
    eng.connection_store.put("k3-signed", "kingdee", {**SANDBOX, "auth": "kingdee_signed", "base_url": server.base_url + "/K3Cloud"})
    yield eng
    eng.close()


def flow(*steps: dict[str, Any], trigger: dict[str, Any] | None = None, flow_id: str = "t") -> dict[str, Any]:
    return {"id": flow_id, "name": flow_id, "trigger": trigger or {"type": "manual"}, "steps": list(steps)}


def step(step_id: str, action: str, args: dict[str, Any], connection: str = "k3", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": f"kingdee.{action}", "connection": connection, "args": args, **extra}


async def run(engine: FlowEngine, *steps: dict[str, Any]) -> Any:
    return await engine.run(engine.compile(flow(*steps)))


# ------------------------------------------------------------------------------------------ signing

def test_signature_headers_match_the_reference_vectors() -> None:
    plain = app_data("acct1", "user1", 2052, 100)
    assert base64.b64encode(plain.encode()).decode() == "YWNjdDEsdXNlcjEsMjA1MiwxMDA="
    assert hmac_hex_b64("123456_abcdefghijklmnopqrstuvwxyz012345" + plain, "secret") == \
        "MDdlZmZmYjhlZjMwY2JhZDIwYTNkNWQ3ZGIxZmZlMjhlMjdlMTI0MDY4ZWNkYTA1NDA0ZjI3MzgzZTZjMmVlMw=="
    # the gateway secret XORs the decoded secret part with the SDKs' fixed key; XOR twice is the identity
    secret = gateway_secret("1_" + base64.b64encode(b"0123456789abcdefghijklmn").decode())
    key = b"0054f397c6234378b09ca7d3e5debce7"
    assert bytes(b ^ key[i] for i, b in enumerate(base64.b64decode(secret))) == b"0123456789abcdefghijklmn"
    assert gateway_secret("1_short") == ""


# ------------------------------------------------------------------------------------------ actions in flows

@pytest.mark.parametrize("connection", ["k3", "k3-signed"])
async def test_order_lifecycle_in_one_flow(engine: FlowEngine, fake: FakeKingdee, connection: str) -> None:
    result = await run(
        engine,
        step("customer", "save", {"form_id": "BD_Customer", "model": {"FName": "苏州新元机械有限公司"}}, connection, next="order"),
        step("order", "save", {"form_id": "SAL_SaleOrder", "need_return_fields": ["FBillNo"], "model": {
            **ORDER, "FCustId": {"FNumber": {"$expr": "steps.customer.output.number"}}}}, connection, next="view"),
        step("view", "view", {"form_id": "SAL_SaleOrder", "number": {"$expr": "steps.order.output.number"}}, connection, next="query"),
        step("query", "query", {"form_id": "SAL_SaleOrder", "field_keys": ["FBillNo", "FCustId.FNumber", "FMaterialId.FNumber", "FQty"],
                                "filter": "FCustId.FNumber = 'CUST0003'"}, connection, next="submit"),
        step("submit", "submit", {"form_id": "SAL_SaleOrder", "numbers": [{"$expr": "steps.order.output.number"}]}, connection, next="audit"),
        step("audit", "audit", {"form_id": "SAL_SaleOrder", "ids": [{"$expr": "steps.order.output.id"}]}, connection, next="all"),
        {"id": "all", "type": "set", "value": {name: {"$expr": f"steps.{name}.output"}
                                               for name in ("customer", "order", "view", "query", "audit")}, "end": True},
    )
    assert result.status == "succeeded", result.error
    outputs = result.output
    assert outputs["customer"]["number"] == "CUST0003"
    assert outputs["order"]["number"] == "XSDD000003" and outputs["order"]["returned"] == {"FBillNo": "XSDD000003"}
    assert outputs["view"]["FCustId"] == {"FNumber": "CUST0003"} and outputs["view"]["FSaleOrderEntry"][0]["FQty"] == 3
    assert outputs["query"]["rows"] == [{"FBillNo": "XSDD000003", "FCustId.FNumber": "CUST0003", "FMaterialId.FNumber": "CH0002", "FQty": 3}]
    assert outputs["query"]["raw_rows"] == [["XSDD000003", "CUST0003", "CH0002", 3]]
    assert outputs["audit"]["entities"] == [{"id": outputs["order"]["id"], "number": "XSDD000003", "index": 0}]
    stored = fake.store.find("SAL_SaleOrder", number="XSDD000003")
    assert stored["FDocumentStatus"] == "C"
    assert fake.logins == (1 if connection == "k3" else 0)


async def test_update_and_delete(engine: FlowEngine, fake: FakeKingdee) -> None:
    order_id = fake.store.find("SAL_SaleOrder", number="XSDD000001")["FID"]
    update = {"form_id": "SAL_SaleOrder", "need_update_fields": ["FCustId"],
              "model": {"FID": order_id, "FCustId": {"FNumber": "CUST0002"}, "FDate": "1999-01-01"}}
    result = await run(engine, step("update", "save", update))
    assert result.status == "succeeded", result.error
    stored = fake.store.find("SAL_SaleOrder", number="XSDD000001")
    assert result.output["id"] == order_id and stored["FCustId"] == {"FNumber": "CUST0002"}
    assert stored["FDate"] == "2026-11-01"  # not in NeedUpDateFields: unchanged
    result = await run(engine, step("delete", "delete", {"form_id": "SAL_SaleOrder", "numbers": ["XSDD000001"]}))
    assert result.status == "succeeded", result.error
    assert "XSDD000001" not in {b["FBillNo"] for b in fake.store.bills["SAL_SaleOrder"].values()}
    fid = fake.store.find("BD_Customer", number="CUST0002")["FID"]
    # audited bills cannot be changed: the platform's MsgCode 12 is InvalidInput
    result = await run(engine, step("again", "save", {"form_id": "BD_Customer", "model": {"FID": fid, "FName": "x"}}, retry=[]))
    assert result.error["type"] == "InvalidInput" and result.error["code"] == "12"


async def test_query_pages_to_the_end(engine: FlowEngine, fake: FakeKingdee) -> None:
    fake.seed_sales_orders(25)
    query = {"form_id": "SAL_SaleOrder", "field_keys": ["FBillNo", "FQty"], "order": "FBillNo", "page_size": 10}
    result = await run(engine, step("all", "query", query))
    assert result.status == "succeeded", result.error
    rows = result.output["rows"]
    assert result.output["count"] == 27 and len(rows) == 27
    assert [r["FBillNo"] for r in rows] == [f"XSDD{n:06d}" for n in range(1, 28)]
    assert fake.calls["ExecuteBillQuery"] == 3  # 10 + 10 + 7
    # rows with identical values on consecutive pages are not mistaken for a server repeating itself
    fake.calls.clear()
    result = await run(engine, step("same", "query", {"form_id": "SAL_SaleOrder", "field_keys": ["FDocumentStatus"], "page_size": 5,
                                                      "filter": "FDocumentStatus = 'A'"}))
    assert result.status == "succeeded", result.error
    assert result.output["count"] == 26 and fake.calls["ExecuteBillQuery"] == 6
    # more rows than allowed fail rather than truncate
    result = await run(engine, step("capped", "query", {**query, "max_rows": 15}, retry=[]))
    assert result.status == "failed" and "more than 15 rows" in result.error["message"]


async def test_session_lost_mid_flow_logs_in_again_once(engine: FlowEngine, fake: FakeKingdee) -> None:
    compiled = engine.compile(flow(
        step("first", "view", {"form_id": "BD_Customer", "number": "CUST0001"}, next="pause"),
        {"id": "pause", "type": "action", "action": "core.delay", "args": {"seconds": 0.3}, "next": "second"},
        step("second", "query", {"form_id": "BD_MATERIAL", "field_keys": ["FNumber"]}, end=True),
    ))
    pending = asyncio.ensure_future(engine.run(compiled))
    while fake.calls["View"] < 1:
        await asyncio.sleep(0.01)
    fake.drop_sessions()  # the server restarted, or the user logged in elsewhere
    result = await pending
    assert result.status == "succeeded", result.error
    assert result.output["count"] == 2
    assert fake.logins == 2 and fake.calls["ExecuteBillQuery"] == 2  # rejected once, retried once after the new login
    # an idle session expires on the server while the client still holds it: same recovery
    fake.advance(1300)
    result = await run(engine, step("later", "view", {"form_id": "BD_Customer", "number": "CUST0002"}))
    assert result.status == "succeeded", result.error
    assert fake.logins == 3


async def test_one_login_for_concurrent_runs(engine: FlowEngine, fake: FakeKingdee) -> None:
    compiled = engine.compile(flow(step("v", "view", {"form_id": "BD_MATERIAL", "number": "CH0001"})))
    runs = await asyncio.gather(*(engine.run(compiled) for _ in range(8)))
    assert [r.status for r in runs] == ["succeeded"] * 8, runs[0].error
    assert runs[0].output["FName"] == "工业传感器 S1"
    assert fake.logins == 1 and fake.calls["View"] == 8


async def test_rejected_credentials(engine: FlowEngine, fake: FakeKingdee, server: SandboxServer) -> None:
    engine.connection_store.put("bad", "kingdee", {**SANDBOX, "app_secret": "wrong", "base_url": server.base_url})
    engine.connection_store.put("bad-signed", "kingdee", {**SANDBOX, "auth": "kingdee_signed", "app_secret": "wrong",
                                                          "base_url": server.base_url})
    args = {"form_id": "BD_Customer", "number": "CUST0001"}
    result = await run(engine, step("v", "view", args, "bad", retry=[]))
    assert result.error["type"] == "PermissionDenied" and result.error["code"] == "-1"
    assert "应用ID或应用密钥错误" in result.error["message"] and fake.logins == 0
    # a bad signature gives the server no user context: "session lost", and signing again cannot help
    result = await run(engine, step("v", "view", args, "bad-signed", retry=[]))
    assert result.error["type"] == "AuthExpired" and result.error["code"] == "1"
    assert fake.calls["View"] == 1


async def test_field_errors_are_caught_with_the_field_name(engine: FlowEngine) -> None:
    catch = [{"errors": ["kingdee.11"], "next": "invalid", "as": "problem"}]
    handler = {"id": "invalid", "type": "set", "value": {
        "field": {"$expr": "problem.details.field"}, "type": {"$expr": "problem.type"},
        "errors": {"$expr": "problem.details.errors"}}, "end": True}
    unknown_customer = {**ORDER, "FCustId": {"FNumber": "NOPE"}}
    result = await run(engine, step("save", "save", {"form_id": "SAL_SaleOrder", "model": unknown_customer}, catch=catch, end=True), handler)
    assert result.status == "succeeded", result.error
    assert result.output["field"] == "FCustId" and result.output["type"] == "InvalidInput"
    assert "NOPE" in result.output["errors"][0]["message"]
    bad_line = {**ORDER, "FSaleOrderEntry": [ORDER["FSaleOrderEntry"][0], {"FMaterialId": {"FNumber": "CH0001"}, "FQty": 0}]}
    result = await run(engine, step("save", "save", {"form_id": "SAL_SaleOrder", "model": bad_line}, catch=catch, end=True), handler)
    assert result.output["field"] == "FQty" and result.output["errors"][0]["index"] == 1
    missing = {k: v for k, v in ORDER.items() if k != "FDate"}
    result = await run(engine, step("save", "save", {"form_id": "SAL_SaleOrder", "model": missing}, retry=[]))
    assert result.error["details"]["field"] == "FDate" and "日期" in result.error["message"]


async def test_unknown_bill_and_wrong_state(engine: FlowEngine) -> None:
    result = await run(engine, step("v", "view", {"form_id": "SAL_SaleOrder", "number": "XSDD999999"}, retry=[],
                                    catch=[{"errors": ["NotFound"], "next": "none"}]),
                       {"id": "none", "type": "set", "value": {"$expr": "error.code"}, "end": True})
    assert result.status == "succeeded" and result.output == "10"
    result = await run(engine, step("a", "audit", {"form_id": "SAL_SaleOrder", "numbers": ["XSDD000001"]}, retry=[]))
    assert result.error["type"] == "InvalidInput" and result.error["code"] == "12"
    result = await run(engine, step("q", "query", {"form_id": "SAL_SaleOrder", "field_keys": ["FNoSuchField"]}, retry=[]))
    assert result.error["type"] == "InvalidInput" and result.error["details"]["field"] == "FNoSuchField"


# ------------------------------------------------------------------------------------------ poll trigger

async def test_bills_changed_polls_new_and_changed_bills(engine: FlowEngine, fake: FakeKingdee) -> None:
    engine.flows.save(flow(
        {"id": "out", "type": "set", "value": {"$expr": "trigger"}},
        trigger={"type": "poll", "source": "kingdee.bills_changed", "connection": "k3", "interval": 60,
                 "args": {"form_id": "SAL_SaleOrder", "field_keys": ["FCustId.FNumber"], "filter": "FSaleOrgId.FNumber = '100'"}},
        flow_id="orders"), "test")
    engine.flows.set_active("orders", True, "test")
    clock = type("Clock", (), {"now": datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp(), "__call__": lambda self: self.now})()
    scheduler = Scheduler(engine, clock=clock)

    async def poll() -> list[dict[str, Any]]:
        before = {r.id for r in engine.runs.list(flow_id="orders", limit=500)}
        clock.now += 60
        await scheduler.run_once()
        await asyncio.gather(*(e.task for e in scheduler.polls.values() if e.task is not None))
        while scheduler.runs:
            await asyncio.gather(*list(scheduler.runs))
        engine.flush()
        runs = [engine.runs.get(r.id) for r in engine.runs.list(flow_id="orders", limit=500) if r.id not in before]
        assert all(r.status == "succeeded" for r in runs), [r.error for r in runs]
        return sorted((r.output for r in runs), key=lambda o: o["number"])

    try:
        assert await poll() == []  # the first poll seeds the cursor: history is not replayed
        fake.advance(2)
        fake.seed_sales_orders(2, customer="CUST0002")
        new = await poll()
        assert [o["number"] for o in new] == ["XSDD000003", "XSDD000004"]
        assert new[0]["fields"] == {"FCustId.FNumber": "CUST0002"} and new[0]["status"] == "A"
        assert set(new[0]) == set(kingdee.triggers["bills_changed"].sample)
        assert await poll() == []  # nothing changed: nothing again, though the cursor second matches
        fake.advance(2)
        fake.store.set_status("SAL_SaleOrder", "Submit", ["XSDD000001"], [])
        changed = await poll()
        assert [(o["number"], o["status"]) for o in changed] == [("XSDD000001", "B")]
    finally:
        await scheduler.stop()


# ------------------------------------------------------------------------------------------ the fake and the kit

async def test_the_fake_rejects_what_k3cloud_rejects(server: SandboxServer, fake: FakeKingdee) -> None:
    query = service_path("ExecuteBillQuery")
    async with httpx.AsyncClient(base_url=server.base_url, trust_env=False) as client:
        lost = (await client.post(query, json={"parameters": ['{"FormId": "BD_Customer", "FieldKeys": "FNumber"}']})).json()
        assert lost[0][0]["Result"]["ResponseStatus"]["MsgCode"] == 1
        login = "Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret.common.kdsvc"
        body = {"acctID": SANDBOX["acct_id"], "username": "demo", "appId": SANDBOX["app_id"], "appSecret": "x", "lcid": 2052}
        assert (await client.post(login, json=body)).json()["LoginResultType"] == -1
        ok = await client.post(login, json={**body, "appSecret": SANDBOX["app_secret"]})
        assert ok.json()["LoginResultType"] == 1 and {"kdservice-sessionid", "ASP.NET_SessionId"} <= set(ok.cookies)
        # the client's cookie jar now holds the session, as an SDK's does
        not_a_string = (await client.post(query, json={"parameters": [{"FormId": "BD_Customer"}]})).json()
        assert "JSON 字符串" in not_a_string[0][0]["Result"]["ResponseStatus"]["Errors"][0]["Message"]
        too_many = '{"FormId": "BD_Customer", "FieldKeys": "FNumber", "Limit": 20000}'
        answer = (await client.post(query, json={"parameters": [too_many]})).json()
        assert answer[0][0]["Result"]["ResponseStatus"]["Errors"][0]["FieldName"] == "Limit"
        unknown_form = (await client.post(service_path("View"), json={"parameters": ["NOPE", '{"Number": "1"}']})).json()
        assert unknown_form["Result"]["ResponseStatus"]["IsSuccess"] is False
        newer_shape = await client.post(query, json={"data": {"FormId": "BD_MATERIAL", "FieldKeys": "FNumber"}})
        assert newer_shape.json() == [["CH0001"], ["CH0002"]]


async def test_contract_kit_passes() -> None:
    report = await check_connector(kingdee)
    assert report.ok, [(c.name, c.message, c.details) for c in report.failed]
    assert {c.name for c in report.checks} >= {f"schemas: {a}" for a in kingdee.actions}
    manifest = kingdee.manifest()
    assert manifest["connection"]["kinds"] == ["kingdee_session", "kingdee_signed"]
    assert manifest["triggers"]["bills_changed"]["strategy"] == "time_based"


def test_connection_test_through_the_api(api_client, server: SandboxServer, fake: FakeKingdee) -> None:
    base = {**SANDBOX, "base_url": server.base_url + "/K3Cloud"}
    for name, fields in (("session", base), ("signed", {**base, "auth": "kingdee_signed"}),
                         ("wrong", {**base, "app_secret": "wrong-secret-5e6f"}),
                         ("wrong-signed", {**base, "auth": "kingdee_signed", "app_secret": "wrong-secret-5e6f"})):
        created = api_client.post("/api/connections", json={"name": name, "connector": "kingdee", "fields": fields})
        assert created.status_code == 201, created.text
    assert api_client.post("/api/connections/session/test").json()["ok"] is True and fake.logins == 1
    assert api_client.post("/api/connections/signed/test").json()["ok"] is True and fake.logins == 1
    wrong = api_client.post("/api/connections/wrong/test")
    assert wrong.json()["ok"] is False and wrong.json()["kind"] == "PermissionDenied"
    assert "wrong-secret-5e6f" not in wrong.text
    assert api_client.post("/api/connections/wrong-signed/test").json()["ok"] is False
    assert api_client.post("/api/connections", json={"name": "x", "connector": "kingdee", "fields": {"auth": "kingdee_signed"}}).status_code == 422
