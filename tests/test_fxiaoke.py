"""The `fxiaoke` connector used in flows through FlowEngine against its fake (served by
SandboxServer), the fake's own contract, and the contract kit."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from connectors.core import connector as core_connector
from connectors.fxiaoke import connector as fxiaoke
from connectors.fxiaoke.sandbox import (
    SANDBOX_APP_ID,
    SANDBOX_APP_SECRET,
    SANDBOX_CORP_ID,
    SANDBOX_PERMANENT_CODE,
    SANDBOX_USER,
    TOKEN_TTL,
    FakeFxiaoke,
)
from connectors.sdk import AppTokenAuth, ConnectorRegistry
from connectors.sdk.auth import AUTH_KINDS, register_auth_kind
from connectors.sdk.contract import check_connector
from connectors.sdk.sandbox import SandboxServer
from engine.runtime import FlowEngine

SEED_ACCOUNT, SEED_LEAD = "5f0000000000000000000001", "5f0000000000000000000002"
TOKEN = "/cgi/corpAccessToken/get/V2"
CREATE, QUERY = "/cgi/crm/v2/data/create", "/cgi/crm/v2/data/query"


@pytest.fixture()
def fake() -> Iterator[FakeFxiaoke]:
    platform = FakeFxiaoke()
    with SandboxServer(platform.app) as server:
        platform.base_url = server.base_url  # type: ignore[attr-defined]
        yield platform


@pytest.fixture()
def engine(fake: FakeFxiaoke, sqlite_url: str) -> Iterator[FlowEngine]:
    eng = FlowEngine(sqlite_url, registry=ConnectorRegistry([core_connector, fxiaoke]))
    eng.connection_store.put("fx", "fxiaoke", {"app_id": SANDBOX_APP_ID, "app_secret": SANDBOX_APP_SECRET,
                                               "permanent_code": SANDBOX_PERMANENT_CODE, "open_user_id": SANDBOX_USER,
                                               "base_url": fake.base_url})  # type: ignore[attr-defined]
    yield eng
    eng.close()


def step(step_id: str, action: str, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": f"fxiaoke.{action}", "connection": "fx", "args": args, **extra}


def flow(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"id": "t", "name": "t", "trigger": {"type": "manual"}, "steps": list(steps), **top}


async def run(engine: FlowEngine, definition: dict[str, Any], payload: Any = None) -> Any:
    return await engine.run(engine.compile(definition), payload)


# ---------------------------------------------------------------------------- flows


async def test_lead_with_an_owner_then_follow_up_and_reassign(engine: FlowEngine, fake: FakeFxiaoke) -> None:
    definition = flow(
        step("owners", "list_owners", {}),
        step("lead", "create_lead", {"name": {"$expr": "trigger.name"}, "mobile": "13712345678",
                                     "owner_id": {"$expr": "trigger.owner_id"}, "fields": {"job_title": "采购经理"}}),
        step("note", "add_follow_up", {"object": "LeadsObj", "id": {"$expr": "steps.lead.output.id"},
                                       "content": "表单留资, 已电话联系"}),
        step("reassign", "change_owner", {"object": "LeadsObj", "ids": [{"$expr": "steps.lead.output.id"}],
                                          "owner_id": "FSUID_WANGWU"}),
        step("read", "get_record", {"object": "LeadsObj", "id": {"$expr": "steps.lead.output.id"}}),
        output={"lead": {"$expr": "steps.lead.output.id"}, "owners": {"$expr": "steps.owners.output.owners[*].id"},
                "record": {"$expr": "steps.read.output"}},
    )
    first = await run(engine, definition, {"name": "王一", "owner_id": "FSUID_LILEI"})
    second = await run(engine, definition, {"name": "王二", "owner_id": "FSUID_HANMEIMEI"})
    assert first.status == "succeeded" and second.status == "succeeded", (first.error, second.error)
    assert first.output["owners"] == ["FSUID_LILEI", "FSUID_HANMEIMEI", "FSUID_WANGWU"]  # not the stopped one
    assert fake.records["LeadsObj"][second.output["lead"]]["created_by"] == [SANDBOX_USER]
    lead = fake.records["LeadsObj"][first.output["lead"]]
    assert lead["name"] == "王一" and lead["job_title"] == "采购经理" and lead["owner"] == ["FSUID_WANGWU"]
    assert first.output["record"]["owner"] == ["FSUID_WANGWU"]
    notes = [r for r in fake.records["ActiveRecordObj"].values()
             if r["related_object_data"] == [{"describe_api_name": "LeadsObj", "id": first.output["lead"]}]]
    assert [n["active_record_content"] for n in notes] == ["表单留资, 已电话联系"]
    assert fake.calls[TOKEN] == 1  # one token for both runs


async def test_query_reads_every_page_to_the_end(engine: FlowEngine, fake: FakeFxiaoke) -> None:
    fake.add_records("LeadsObj", [{"name": f"线索{i:03d}", "owner": ["FSUID_HANMEIMEI"], "source": "2"} for i in range(250)])
    fake.add_records("LeadsObj", [{"name": "别的", "owner": ["FSUID_HANMEIMEI"], "source": "1"}])
    result = await run(engine, flow(step("q", "query_leads", {
        "filters": [{"field": "source", "operator": "EQ", "values": ["2"]}],
        "orders": [{"field": "name", "ascending": False}], "fields": ["name", "owner"]})))
    assert result.status == "succeeded", result.error
    names = [r["name"] for r in result.output["records"]]
    assert result.output["total"] == 250 and len(names) == 250 and len(set(names)) == 250
    assert names[0] == "线索249" and names[-1] == "线索000"
    assert set(result.output["records"][0]) == {"_id", "name", "owner"}
    assert fake.calls[QUERY] == 3  # 100 + 100 + 50

    too_many = await run(engine, flow(step("q", "query_leads", {"max_records": 100}, retry=[])))
    assert too_many.status == "failed" and too_many.error["type"] == "InvalidInput" and "max_records" in too_many.error["message"]


async def test_token_expiry_mid_flow_is_refreshed_once(engine: FlowEngine, fake: FakeFxiaoke) -> None:
    def expire_after_first_create(path: str) -> None:
        if path == CREATE and fake.calls[CREATE] == 1:
            fake.advance(TOKEN_TTL + 1)

    fake.on_call = expire_after_first_create
    result = await run(engine, flow(
        step("a", "create_account", {"name": "苏州样例", "owner_id": "FSUID_LILEI"}),
        step("b", "update_account", {"id": {"$expr": "steps.a.output.id"}, "account_level": "2"}),
        output={"$expr": "steps.a.output.id"}))
    assert result.status == "succeeded", result.error
    assert fake.records["AccountObj"][result.output]["account_level"] == "2"
    assert fake.calls[TOKEN] == 2  # the first token, then one refresh after errorCode 20016
    assert fake.calls["/cgi/crm/v2/data/update"] == 2  # rejected once, retried once


async def test_a_field_error_is_caught_with_the_field_name(engine: FlowEngine, fake: FakeFxiaoke) -> None:
    result = await run(engine, flow(
        step("lead", "create_lead", {"name": "坏电话", "owner_id": "FSUID_LILEI", "mobile": "call me"},
             catch=[{"errors": ["fxiaoke.10001"], "next": "bad", "as": "err"}], end=True),
        {"id": "bad", "type": "set", "value": {"field": {"$expr": "err.details.body.field"},
                                               "type": {"$expr": "err.type"}, "message": {"$expr": "err.message"}}}))
    assert result.status == "succeeded", result.error
    assert result.output["field"] == "mobile" and result.output["type"] == "InvalidInput"
    assert "corpAccessToken" not in result.output["message"]
    assert not fake.records["LeadsObj"].keys() - {SEED_LEAD}

    unknown = await run(engine, flow(step("g", "get_record", {"object": "AccountObj", "id": "5f404"}, retry=[])))
    assert unknown.error["type"] == "NotFound" and unknown.error["code"] == "10002"
    stopped = await run(engine, flow(step("o", "change_owner", {"object": "LeadsObj", "ids": [SEED_LEAD],
                                                                "owner_id": "FSUID_ZHAOLIU"})))
    assert stopped.error["type"] == "InvalidInput" and stopped.error["details"]["body"]["field"] == "ownerId"


async def test_upsert_creates_then_updates_and_reassigns(engine: FlowEngine, fake: FakeFxiaoke) -> None:
    def order(amount: str, owner: str) -> dict[str, Any]:
        return flow(step("deal", "upsert_record", {
            "object": "NewOpportunityObj", "match_field": "name", "owner_id": owner,
            "fields": {"name": "SO-9", "account_id": SEED_ACCOUNT, "amount": amount, "close_date": 1735660800000}}))

    created = await run(engine, order("100.00", "FSUID_LILEI"))
    updated = await run(engine, order("250.50", "FSUID_HANMEIMEI"))
    assert created.output["created"] is True and updated.output == {"id": created.output["id"], "created": False}
    deal = fake.records["NewOpportunityObj"][created.output["id"]]
    assert deal["amount"] == "250.50" and deal["owner"] == ["FSUID_HANMEIMEI"] and len(fake.records["NewOpportunityObj"]) == 1


async def test_platform_limits_surface_as_rate_limited(engine: FlowEngine, fake: FakeFxiaoke) -> None:
    fake.rate_limit = 1
    get = step("g", "get_record", {"object": "AccountObj", "id": SEED_ACCOUNT}, retry=[])
    assert (await run(engine, flow(get))).status == "succeeded"
    throttled = await run(engine, flow(get))
    assert throttled.error["type"] == "RateLimited" and throttled.error["code"] == "30001"
    assert throttled.error["retry_after"] == 20
    fake.advance(21)
    fake.daily_quota = 0
    exhausted = await run(engine, flow(get))
    assert exhausted.error["type"] == "RateLimited" and exhausted.error["code"] == "30002"


async def test_a_wrong_secret_is_permission_denied(engine: FlowEngine, fake: FakeFxiaoke) -> None:
    engine.connection_store.put("bad", "fxiaoke", {"app_id": SANDBOX_APP_ID, "app_secret": "wrong",
                                                   "permanent_code": SANDBOX_PERMANENT_CODE, "open_user_id": SANDBOX_USER,
                                                   "base_url": fake.base_url})  # type: ignore[attr-defined]
    result = await run(engine, flow({**step("o", "list_owners", {}), "connection": "bad", "retry": []}))
    assert result.error["type"] == "PermissionDenied" and result.error["code"] == "10006"
    assert "wrong" not in result.error["message"]


def test_the_corp_token_kind_is_registered_and_clashes_are_refused() -> None:
    assert AUTH_KINDS["fxiaoke_corp_token"].__module__ == "connectors.fxiaoke.auth"

    class Clash(AppTokenAuth):
        kind = "bearer"

    with pytest.raises(ValueError, match="already registered"):
        register_auth_kind(Clash)
    assert AUTH_KINDS["bearer"].__name__ == "BearerAuth"


async def test_the_contract_kit_passes() -> None:
    report = await check_connector(fxiaoke)
    assert report.ok, "\n".join(report.lines())
    assert {c.name.split(" — ")[0] for c in report.checks if c.name.startswith("example: ")} == {
        f"example: {name}" for name in fxiaoke.actions}


# ---------------------------------------------------------------------------- the fake's contract


@pytest.fixture()
def client() -> Iterator[tuple[FakeFxiaoke, TestClient]]:
    platform = FakeFxiaoke()
    with TestClient(platform.app) as test_client:
        yield platform, test_client


def token(client: TestClient) -> dict[str, Any]:
    answer = client.post(TOKEN, json={"appId": SANDBOX_APP_ID, "appSecret": SANDBOX_APP_SECRET,
                                      "permanentCode": SANDBOX_PERMANENT_CODE}).json()
    assert answer["errorCode"] == 0 and 0 < answer["expiresIn"] <= TOKEN_TTL
    return {"corpAccessToken": answer["corpAccessToken"], "corpId": answer["corpId"], "currentOpenUserId": SANDBOX_USER}


def test_fake_tokens_are_reused_then_expire(client: tuple[FakeFxiaoke, TestClient]) -> None:
    platform, http = client
    auth = token(http)
    assert auth["corpId"] == SANDBOX_CORP_ID and token(http)["corpAccessToken"] == auth["corpAccessToken"]
    get = {"data": {"dataObjectApiName": "AccountObj", "objectDataId": SEED_ACCOUNT}}
    assert http.post("/cgi/crm/v2/data/get", json={**auth, **get}).json()["data"]["_id"] == SEED_ACCOUNT
    assert http.post("/cgi/crm/v2/data/get", json=get).json()["errorCode"] == 20017
    assert http.post("/cgi/crm/v2/data/get", json={**auth, **get, "corpId": "other"}).json()["errorCode"] == 20016
    platform.advance(6700)  # past the reuse window: a new token, the old one still valid
    assert token(http)["corpAccessToken"] != auth["corpAccessToken"]
    assert http.post("/cgi/crm/v2/data/get", json={**auth, **get}).json()["errorCode"] == 0
    platform.advance(600)  # past the old token's 7200 s
    assert http.post("/cgi/crm/v2/data/get", json={**auth, **get}).json()["errorCode"] == 20016
    wrong = http.post(TOKEN, json={"appId": SANDBOX_APP_ID, "appSecret": "x", "permanentCode": SANDBOX_PERMANENT_CODE})
    assert wrong.status_code == 200 and wrong.json()["errorCode"] == 10006


@pytest.mark.parametrize(("object_data", "field"), [
    ({"dataObjectApiName": "LeadsObj", "owner": ["FSUID_LILEI"]}, "name"),
    ({"dataObjectApiName": "LeadsObj", "name": "x"}, "owner"),
    ({"dataObjectApiName": "LeadsObj", "name": "x", "owner": "FSUID_LILEI"}, "owner"),
    ({"dataObjectApiName": "LeadsObj", "name": "x", "owner": ["FSUID_NOBODY"]}, "owner"),
    ({"dataObjectApiName": "LeadsObj", "name": "x", "owner": ["FSUID_LILEI"], "nickname": "y"}, "nickname"),
    ({"dataObjectApiName": "LeadsObj", "name": "x", "owner": ["FSUID_LILEI"], "email": "nope"}, "email"),
    ({"dataObjectApiName": "LeadsObj", "name": 5, "owner": ["FSUID_LILEI"]}, "name"),
    ({"dataObjectApiName": "AccountObj", "name": "x", "owner": ["FSUID_LILEI"], "account_level": "9"}, "account_level"),
    ({"dataObjectApiName": "NewOpportunityObj", "name": "x", "owner": ["FSUID_LILEI"], "account_id": "5f404",
      "close_date": 1}, "account_id"),
    ({"dataObjectApiName": "NewOpportunityObj", "name": "x", "owner": ["FSUID_LILEI"], "account_id": SEED_ACCOUNT,
      "close_date": 1, "amount": 12.5}, "amount"),
    ({"dataObjectApiName": "NewOpportunityObj", "name": "x", "owner": ["FSUID_LILEI"], "account_id": SEED_ACCOUNT,
      "close_date": "2024-01-01"}, "close_date"),
    ({"dataObjectApiName": "ContactsObj", "name": "x"}, "dataObjectApiName"),
])
def test_fake_rejects_invalid_fields(client: tuple[FakeFxiaoke, TestClient], object_data: dict[str, Any], field: str) -> None:
    platform, http = client
    before = {name: len(rows) for name, rows in platform.records.items()}
    answer = http.post(CREATE, json={**token(http), "data": {"object_data": object_data}}).json()
    assert answer["errorCode"] == 10001 and f"字段[{field}]" in answer["errorMessage"], answer
    assert {name: len(rows) for name, rows in platform.records.items()} == before


def test_fake_update_owner_and_query_paging_rules(client: tuple[FakeFxiaoke, TestClient]) -> None:
    platform, http = client
    auth = token(http)
    update = {"data": {"object_data": {"dataObjectApiName": "AccountObj", "_id": SEED_ACCOUNT, "owner": ["FSUID_WANGWU"]}}}
    assert "字段[owner]" in http.post("/cgi/crm/v2/data/update", json={**auth, **update}).json()["errorMessage"]
    missing = {"data": {"object_data": {"dataObjectApiName": "AccountObj", "_id": "5f404", "remark": "x"}}}
    assert http.post("/cgi/crm/v2/data/update", json={**auth, **missing}).json()["errorCode"] == 10002

    def query(**info: Any) -> dict[str, Any]:
        return http.post(QUERY, json={**auth, "data": {"dataObjectApiName": "LeadsObj", "search_query_info": info}}).json()

    assert "字段[limit]" in query(limit=101, offset=0)["errorMessage"]
    assert "字段[offset]" in query(limit=10, offset=15)["errorMessage"]
    assert "字段[offset]" in query(limit=100, offset=10_100)["errorMessage"]
    assert "字段[filters]" in query(limit=10, offset=0, filters=[{"field_name": "nope", "operator": "EQ",
                                                                  "field_values": ["1"]}])["errorMessage"]
    page = query(limit=10, offset=0)["data"]
    assert page["total"] == 1 and page["dataList"][0]["_id"] == SEED_LEAD and page["limit"] == 10
    platform.advance(20)  # a fresh 20 s window
    platform.rate_limit = 1
    assert query(limit=10, offset=0)["errorCode"] == 0
    assert query(limit=10, offset=0)["errorCode"] == 30001
