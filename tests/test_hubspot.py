"""The `hubspot` connector used in flows through FlowEngine against its fake (served by
SandboxServer), owner choices through the real API, the fake's own contract, and the contract kit."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from connectors.core import connector as core_connector
from connectors.hubspot import connector as hubspot
from connectors.hubspot.sandbox import (
    ACCESS_TOKEN_TTL,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PRIVATE_APP_TOKEN,
    SANDBOX_REFRESH_TOKEN,
    FakeHubSpot,
)
from connectors.sdk import ConnectorRegistry
from connectors.sdk.contract import check_connector
from connectors.sdk.sandbox import SandboxServer
from engine.runtime import FlowEngine

SEED_CONTACT, SEED_COMPANY = "1001", "1002"
PRIVATE_APP = {"auth": "bearer", "token": SANDBOX_PRIVATE_APP_TOKEN}
OAUTH = {"auth": "oauth2_authorization_code", "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
         "refresh_token": SANDBOX_REFRESH_TOKEN}


@pytest.fixture()
def fake() -> Iterator[FakeHubSpot]:
    platform = FakeHubSpot()
    with SandboxServer(platform.app) as server:
        platform.base_url = server.base_url  # type: ignore[attr-defined]
        yield platform


@pytest.fixture()
def engine(fake: FakeHubSpot, sqlite_url: str) -> Iterator[FlowEngine]:
    eng = FlowEngine(sqlite_url, registry=ConnectorRegistry([core_connector, hubspot]))
    base_url = fake.base_url  # type: ignore[attr-defined]
    eng.connection_store.put("hs", "hubspot", {**PRIVATE_APP, "base_url": base_url})
    eng.connection_store.put("hs-oauth", "hubspot", {**OAUTH, "base_url": base_url})
    yield eng
    eng.close()


def step(step_id: str, action: str, args: dict[str, Any], connection: str = "hs", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": f"hubspot.{action}", "connection": connection, "args": args, **extra}


def flow(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"id": "t", "name": "t", "trigger": {"type": "manual"}, "steps": list(steps), **top}


async def run(engine: FlowEngine, definition: dict[str, Any], payload: Any = None) -> Any:
    return await engine.run(engine.compile(definition), payload)


# ---------------------------------------------------------------------------- flows

ORDER_FLOW = flow(
    step("customer", "upsert_record", {"object": "companies", "id_property": "erp_customer_id",
                                       "id_value": {"$expr": "trigger.customer.id"},
                                       "properties": {"name": {"$expr": "trigger.customer.name"},
                                                      "customer_tier": {"$expr": "trigger.tier"}}}),
    step("deal", "upsert_record", {"object": "deals", "id_property": "erp_order_id", "id_value": {"$expr": "trigger.order.no"},
                                   "owner_id": {"$expr": "trigger.owner"},
                                   "properties": {"dealname": {"$expr": "trigger.order.no"},
                                                  "amount": {"$expr": "trigger.order.amount"},
                                                  "dealstage": "closedwon", "closedate": 1735660800000}}),
    step("link", "associate", {"from_object": "deals", "from_id": {"$expr": "steps.deal.output.id"},
                               "to_object": "companies", "to_id": {"$expr": "steps.customer.output.id"}}),
    output={"company": {"$expr": "steps.customer.output"}, "deal": {"$expr": "steps.deal.output"},
            "link": {"$expr": "steps.link.output"}},
)


async def test_erp_orders_upserted_as_deals_of_their_customer(engine: FlowEngine, fake: FakeHubSpot) -> None:
    order = {"customer": {"id": "C-001", "name": "Example Tech"}, "tier": "silver", "owner": "102",
             "order": {"no": "SO-1", "amount": 1200.5}}
    first = await run(engine, ORDER_FLOW, order)
    assert first.status == "succeeded", first.error
    assert first.output["company"]["id"] == SEED_COMPANY and first.output["company"]["created"] is False
    assert first.output["deal"]["created"] is True and first.output["link"]["association_type_ids"] == [341]
    deal_id = first.output["deal"]["id"]
    deal = fake.records["deals"][deal_id]["properties"]
    assert deal["amount"] == "1200.5" and deal["hubspot_owner_id"] == "102" and deal["pipeline"] == "default"
    assert deal["closedate"] == "2024-12-31T16:00:00.000Z"  # epoch ms stored as ISO 8601 UTC
    assert fake.records["companies"][SEED_COMPANY]["properties"]["customer_tier"] == "silver"
    assert ("deals", deal_id, "companies", SEED_COMPANY) in fake.associations
    assert ("companies", SEED_COMPANY, "deals", deal_id) in fake.associations

    again = await run(engine, ORDER_FLOW, {**order, "tier": "gold", "order": {"no": "SO-1", "amount": 1500}})
    assert again.status == "succeeded", again.error
    assert again.output["deal"] == {**again.output["deal"], "id": deal_id, "created": False}
    assert len(fake.records["deals"]) == 1 and fake.records["deals"][deal_id]["properties"]["amount"] == "1500"

    new_customer = await run(engine, ORDER_FLOW, {**order, "customer": {"id": "C-002", "name": "Beta"},
                                                  "order": {"no": "SO-2", "amount": 10}})
    assert new_customer.output["company"]["created"] is True and len(fake.records["companies"]) == 2


async def test_search_reads_every_page_to_the_end(engine: FlowEngine, fake: FakeHubSpot) -> None:
    for i in range(450):
        fake.add_record("contacts", {"email": f"c{i:03d}@example.com", "lifecyclestage": "customer", "total_spend": i})
    fake.add_record("contacts", {"email": "lead@example.com", "lifecyclestage": "lead"})
    result = await run(engine, flow(step("s", "search_records", {
        "object": "contacts", "filters": [{"property": "lifecyclestage", "value": "customer"},
                                          {"property": "total_spend", "operator": "GTE", "value": 0}],
        "sort_by": "total_spend", "descending": True, "properties": ["email", "total_spend"]})))
    assert result.status == "succeeded", result.error
    emails = [r["properties"]["email"] for r in result.output["results"]]
    assert result.output["total"] == 450 and len(emails) == 450 == len(set(emails))
    assert emails[0] == "c449@example.com" and emails[-1] == "c000@example.com"
    assert fake.calls["search"] == 3  # 200 + 200 + 50

    either = await run(engine, flow(step("s", "search_records", {
        "object": "contacts", "any_of": [[{"property": "email", "value": "lead@example.com"}],
                                         [{"property": "email", "operator": "IN", "values": ["c001@example.com"]}]]})))
    assert sorted(r["properties"]["email"] for r in either.output["results"]) == ["c001@example.com", "lead@example.com"]

    too_many = await run(engine, flow(step("s", "search_records", {"object": "contacts", "max_records": 100}, retry=[])))
    assert too_many.error["type"] == "InvalidInput" and "max_records" in too_many.error["message"]


async def test_oauth_token_expiry_mid_flow_is_refreshed_once(engine: FlowEngine, fake: FakeHubSpot) -> None:
    def expire_after_first_create(endpoint: str) -> None:
        if endpoint == "create" and fake.calls["create"] == 1:
            fake.advance(ACCESS_TOKEN_TTL + 1)

    fake.on_call = expire_after_first_create
    result = await run(engine, flow(
        step("c", "create_record", {"object": "contacts", "properties": {"email": "oauth@example.com"}}, "hs-oauth"),
        step("u", "update_record", {"object": "contacts", "id": {"$expr": "steps.c.output.id"},
                                    "properties": {"lifecyclestage": "lead"}}, "hs-oauth"),
        output={"$expr": "steps.u.output"}))
    assert result.status == "succeeded", result.error
    assert result.output["properties"]["lifecyclestage"] == "lead"
    assert fake.calls["oauth_token"] == 2  # the first token, then one refresh after EXPIRED_AUTHENTICATION
    assert fake.calls["update"] == 2  # rejected once, retried once with the new token

    fake.private_tokens.clear()  # a revoked private-app token cannot be refreshed: no retry
    revoked = await run(engine, flow(step("g", "get_record", {"object": "contacts", "id": SEED_CONTACT}, retry=[])))
    assert revoked.error["type"] == "AuthExpired" and revoked.error["code"] == "INVALID_AUTHENTICATION"
    assert fake.calls["get"] == 1


async def test_validation_errors_surface_the_property_name(engine: FlowEngine, fake: FakeHubSpot) -> None:
    caught = await run(engine, flow(
        step("c", "create_record", {"object": "contacts", "properties": {"email": "x@example.com", "lifecyclestage": "vip"}},
             catch=[{"errors": ["hubspot.VALIDATION_ERROR"], "next": "bad", "as": "err"}], end=True),
        {"id": "bad", "type": "set", "value": {
            "field": {"$expr": "err.details.body.errors[0].context.propertyName[0]"},
            "code": {"$expr": "err.details.body.errors[0].code"}, "type": {"$expr": "err.type"},
            "message": {"$expr": "err.message"}}}))
    assert caught.status == "succeeded", caught.error
    assert caught.output["field"] == "lifecyclestage" and caught.output["code"] == "INVALID_OPTION"
    assert caught.output["type"] == "InvalidInput" and "lifecyclestage" in caught.output["message"]
    assert len(fake.records["contacts"]) == 1

    duplicate = await run(engine, flow(step("c", "create_record", {"object": "contacts",
                                                                   "properties": {"email": "zhang.san@example.com"}})))
    assert duplicate.error["code"] == "CONFLICT" and f"Existing ID: {SEED_CONTACT}" in duplicate.error["message"]
    not_unique = await run(engine, flow(step("u", "upsert_record", {"object": "companies", "id_property": "domain",
                                                                    "id_value": "example.com"})))
    assert not_unique.error["details"]["body"]["errors"][0]["context"]["propertyName"] == ["domain"]
    missing = await run(engine, flow(step("g", "get_record", {"object": "deals", "id": "999"}, retry=[])))
    assert missing.error["type"] == "NotFound" and missing.error["code"] == "OBJECT_NOT_FOUND"


async def test_rate_limits_map_to_rate_limited_with_retry_after(engine: FlowEngine, fake: FakeHubSpot) -> None:
    get = step("g", "get_record", {"object": "contacts", "id": SEED_CONTACT}, retry=[])
    fake.burst_limit = 1
    assert (await run(engine, flow(get))).status == "succeeded"
    burst = await run(engine, flow(get))
    assert burst.error["type"] == "RateLimited" and burst.error["code"] == "TEN_SECONDLY_ROLLING"
    assert 1 <= burst.error["retry_after"] <= 10
    fake.advance(10)
    fake.burst_limit, fake.daily_remaining = 100, 0
    daily = await run(engine, flow(get))
    assert daily.error["code"] == "DAILY" and daily.error["retry_after"] > 0

    # search's own per-second limit: a retry waits for Retry-After and then succeeds
    fake.daily_remaining, fake.search_limit = 1000, 1
    search = {"object": "contacts", "filters": [{"property": "email", "operator": "HAS_PROPERTY"}]}
    result = await run(engine, flow(
        step("a", "search_records", search),
        step("b", "search_records", search,
             retry=[{"errors": ["hubspot.SECONDLY"], "max_attempts": 3, "interval": 0.1}]),
        output={"$expr": "steps.b.output.total"}))
    assert result.status == "succeeded", result.error
    assert result.output == 1 and fake.calls["search"] >= 3  # a, b throttled, b again


async def test_a_wrong_oauth_secret_is_permission_denied(engine: FlowEngine, fake: FakeHubSpot) -> None:
    engine.connection_store.put("bad", "hubspot", {**OAUTH, "client_secret": "nope",
                                                   "base_url": fake.base_url})  # type: ignore[attr-defined]
    result = await run(engine, flow(step("o", "list_owners", {}, "bad", retry=[])))
    assert result.error["type"] == "PermissionDenied" and "nope" not in result.error["message"]


def test_owner_choices_and_connection_test_through_the_api(api_client: Any, fake: FakeHubSpot) -> None:
    created = api_client.post("/api/connections", json={"name": "hs", "connector": "hubspot",
                                                        "fields": {**PRIVATE_APP, "base_url": fake.base_url}})  # type: ignore[attr-defined]
    assert created.status_code in (200, 201), created.text
    choices = api_client.post("/api/connectors/hubspot/options", json={
        "action": "create_record", "field": "owner_id", "connection": "hs", "args": {"object": "contacts"}})
    assert choices.status_code == 200, choices.text
    assert choices.json() == [{"value": "101", "label": "Lei Li"}, {"value": "102", "label": "Meimei Han"},
                              {"value": "103", "label": "Wu Wang"}]
    assert api_client.post("/api/connections/hs/test").json()["ok"] is True
    fake.private_tokens.clear()
    rejected = api_client.post("/api/connections/hs/test").json()
    assert rejected["ok"] is False and rejected["code"] == "INVALID_AUTHENTICATION"
    assert SANDBOX_PRIVATE_APP_TOKEN not in rejected["message"]


async def test_the_contract_kit_passes() -> None:
    report = await check_connector(hubspot)
    assert report.ok, "\n".join(report.lines())
    assert {c.name.split(" — ")[0] for c in report.checks if c.name.startswith("example: ")} == {
        f"example: {name}" for name in hubspot.actions}


# ---------------------------------------------------------------------------- the fake's contract


@pytest.fixture()
def client() -> Iterator[tuple[FakeHubSpot, TestClient]]:
    platform = FakeHubSpot()
    with TestClient(platform.app, headers={"Authorization": f"Bearer {SANDBOX_PRIVATE_APP_TOKEN}"}) as test_client:
        yield platform, test_client


def test_fake_auth_and_oauth_tokens(client: tuple[FakeHubSpot, TestClient]) -> None:
    platform, http = client
    anonymous = http.get(f"/crm/v3/objects/contacts/{SEED_CONTACT}", headers={"Authorization": ""})
    body = anonymous.json()
    assert anonymous.status_code == 401 and body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
    assert body["correlationId"]
    form = {"grant_type": "refresh_token", "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
            "refresh_token": SANDBOX_REFRESH_TOKEN}
    assert http.post("/oauth/v1/token", data={**form, "client_secret": "x"}).json()["status"] == "BAD_CLIENT_ID"
    assert http.post("/oauth/v1/token", data={**form, "refresh_token": "x"}).json()["status"] == "BAD_REFRESH_TOKEN"
    issued = http.post("/oauth/v1/token", data=form).json()
    assert issued["expires_in"] == ACCESS_TOKEN_TTL and issued["refresh_token"] == SANDBOX_REFRESH_TOKEN
    oauth = {"Authorization": f"Bearer {issued['access_token']}"}
    assert http.get(f"/crm/v3/objects/contacts/{SEED_CONTACT}", headers=oauth).status_code == 200
    platform.advance(ACCESS_TOKEN_TTL)
    expired = http.get(f"/crm/v3/objects/contacts/{SEED_CONTACT}", headers=oauth)
    assert expired.status_code == 401 and expired.json()["category"] == "EXPIRED_AUTHENTICATION"


@pytest.mark.parametrize(("object_type", "properties", "field", "code"), [
    ("contacts", {"nickname": "x"}, "nickname", "PROPERTY_DOESNT_EXIST"),
    ("contacts", {"hs_object_id": "5"}, "hs_object_id", "READ_ONLY_VALUE"),
    ("contacts", {"email": "not-an-email"}, "email", "INVALID_EMAIL"),
    ("contacts", {"lifecyclestage": "vip"}, "lifecyclestage", "INVALID_OPTION"),
    ("contacts", {"hubspot_owner_id": "999"}, "hubspot_owner_id", "INVALID_OWNER_ID"),
    ("companies", {"total_spend": "lots"}, "total_spend", "INVALID_FLOAT"),
    ("deals", {"dealstage": "closedwon"}, "dealname", "REQUIRED_FIELD"),
    ("deals", {"dealname": "x", "dealstage": "won"}, "dealstage", "INVALID_OPTION"),
    ("deals", {"dealname": "x", "dealstage": "closedwon", "closedate": "tomorrow"}, "closedate", "INVALID_DATETIME"),
])
def test_fake_rejects_invalid_properties(client: tuple[FakeHubSpot, TestClient], object_type: str,
                                         properties: dict[str, Any], field: str, code: str) -> None:
    platform, http = client
    before = len(platform.records[object_type])
    answer = http.post(f"/crm/v3/objects/{object_type}", json={"properties": properties})
    body = answer.json()
    assert answer.status_code == 400 and body["category"] == "VALIDATION_ERROR" and body["status"] == "error"
    assert body["errors"][0]["code"] == code and body["errors"][0]["context"]["propertyName"] == [field]
    assert field in body["message"] and len(platform.records[object_type]) == before


def test_fake_records_upsert_and_search_rules(client: tuple[FakeHubSpot, TestClient]) -> None:
    platform, http = client
    platform.search_limit = 100  # this test checks search's rules, not its rate
    created = http.post("/crm/v3/objects/contacts", json={"properties": {"email": "a@example.com", "total_spend": 5}})
    assert created.status_code == 201 and created.json()["properties"]["total_spend"] == "5"
    contact_id = created.json()["id"]
    by_email = http.get("/crm/v3/objects/contacts/a@example.com", params={"idProperty": "email", "properties": "total_spend"})
    assert by_email.json()["id"] == contact_id and by_email.json()["properties"]["total_spend"] == "5"
    assert http.get("/crm/v3/objects/contacts/x", params={"idProperty": "firstname"}).status_code == 400
    assert http.patch("/crm/v3/objects/contacts/4040", json={"properties": {}}).json()["category"] == "OBJECT_NOT_FOUND"
    taken = http.patch(f"/crm/v3/objects/contacts/{contact_id}", json={"properties": {"email": "zhang.san@example.com"}})
    assert taken.status_code == 409 and taken.json()["category"] == "CONFLICT"

    upsert = {"inputs": [{"idProperty": "email", "id": "a@example.com", "properties": {"firstname": "A"}},
                         {"idProperty": "email", "id": "b@example.com", "properties": {"firstname": "B"}}]}
    results = http.post("/crm/v3/objects/contacts/batch/upsert", json=upsert).json()["results"]
    assert [(r["id"] == contact_id, r["new"]) for r in results] == [(True, False), (False, True)]
    assert http.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": []}).status_code == 400

    def search(**body: Any) -> Any:
        return http.post("/crm/v3/objects/contacts/search", json=body)

    assert search(limit=201).status_code == 400
    assert search(limit=100, after="9950").json()["errors"][0]["code"] == "TOO_MANY_RESULTS"
    assert search(filterGroups=[{"filters": [{"propertyName": "email", "operator": "EQ", "value": "x"}]}] * 6).status_code == 400
    assert search(filterGroups=[{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]).status_code == 400
    assert search(filterGroups=[{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "x"}]}]).status_code == 400
    page = search(limit=2).json()
    assert page["total"] == 3 and len(page["results"]) == 2 and page["paging"]["next"]["after"] == "2"
    assert "paging" not in search(limit=2, after="2").json()
    platform.search_limit = 0
    throttled = search(limit=2)
    assert throttled.status_code == 429 and throttled.json()["policyName"] == "SECONDLY"
    assert throttled.headers["Retry-After"] == "1" and throttled.headers["X-HubSpot-RateLimit-Secondly-Remaining"] == "0"


def test_fake_associations_need_existing_records(client: tuple[FakeHubSpot, TestClient]) -> None:
    platform, http = client
    ok = http.put(f"/crm/v4/objects/contacts/{SEED_CONTACT}/associations/default/companies/{SEED_COMPANY}")
    assert ok.status_code == 200 and ok.json()["results"][0]["associationSpec"]["associationTypeId"] == 279
    listed = http.get(f"/crm/v4/objects/companies/{SEED_COMPANY}/associations/contacts").json()["results"]
    assert listed == [{"toObjectId": int(SEED_CONTACT), "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": 280, "label": None}]}]
    missing = http.put(f"/crm/v4/objects/contacts/{SEED_CONTACT}/associations/default/companies/4040")
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
    assert http.put(f"/crm/v4/objects/contacts/{SEED_CONTACT}/associations/default/contacts/{SEED_CONTACT}").status_code == 400
