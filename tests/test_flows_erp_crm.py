"""The three cross-connector flows of issue 7, end to end against the fakes, loaded from flows/:

- flows/erp-orders-to-crm.json: Kingdee sales orders (poll trigger driven by the service's
  scheduler on a fake clock) → HubSpot deals, upserted once per order → WeCom notice to the owner;
- flows/lead-round-robin.json: leads posted to the real service's webhook → next rep of the
  `sales_reps` table → Fxiaoke lead with that owner → WeCom notice to the rep;
- flows/customer-segmentation.json: the nightly schedule (fired by the scheduler) → Kingdee
  orders → spend tiers → HubSpot company tier, WeCom corp tags, the `customer_tiers` table;

plus the `core.aggregate` action the segmentation uses, and the flow files' validity."""
from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.scheduler import Scheduler
from connectors.core import connector as core_connector
from connectors.sdk import ConnectorRegistry
from connectors.sdk.contract import check_connector
from engine.runtime import FlowEngine
from engine.store.datatables import DataTables
from engine.validation import load_flow
from tests.conftest import bearer, login
from tests.flows_erp_support import FakeClock, Fakes, fakes, flow_definition, prepare, tick  # noqa: F401  (fixture)

SHANGHAI = ZoneInfo("Asia/Shanghai")
FLOW_FILES = ("erp-orders-to-crm", "lead-round-robin", "customer-segmentation")


@pytest.fixture()
def engine(fakes: Fakes, sqlite_url: str) -> Iterator[FlowEngine]:
    """An engine with every installed connector, the flows' connections and the shipped tables."""
    eng = FlowEngine(sqlite_url)
    prepare(eng, fakes)
    yield eng
    eng.close()


def activate(engine: FlowEngine, name: str) -> dict[str, Any]:
    """Save and activate a shipped flow; its definition."""
    definition = flow_definition(name)
    engine.flows.save(definition, "test")
    engine.flows.set_active(definition["id"], True, "test")
    return definition


# ------------------------------------------------------------------------------------------ the files

@pytest.mark.parametrize("name", FLOW_FILES)
def test_flow_file_validates_with_its_connections(name: str) -> None:
    connections = {"k3": "kingdee", "hubspot": "hubspot", "fxiaoke": "fxiaoke", "wecom-main": "wecom", "lead-form-token": "http"}
    result = load_flow(flow_definition(name), connections=connections)
    assert result.issues == [] and result.flow is not None
    assert "sample" in flow_definition(name)["trigger"]


# ------------------------------------------------------------------------------------------ (a) orders → deals

def save_order(fakes: Fakes, customer: str, lines: list[tuple[str, float, float]], fid: int | None = None) -> dict[str, Any]:
    """Create (or, with `fid`, change) a sales order in the fake Kingdee; the bill."""
    fakes.kingdee.advance(2)  # a distinct FModifyDate second for each change
    model: dict[str, Any] = {"FDate": "2026-11-23", "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": customer},
                             "FSaleOrderEntry": [{"FMaterialId": {"FNumber": m}, "FQty": q, "FPrice": p} for m, q, p in lines]}
    if fid is not None:
        model["FID"] = fid
    return fakes.kingdee.store.save("SAL_SaleOrder", model)


def deals(fakes: Fakes) -> dict[str, dict[str, Any]]:
    """The fake HubSpot's deals by erp_order_id."""
    return {r["properties"]["erp_order_id"]: r for r in fakes.hubspot.records["deals"].values()}


async def test_orders_become_deals_once_and_the_owner_is_told(engine: FlowEngine, fakes: Fakes) -> None:
    tables = DataTables(engine.db)
    tables.insert("crm_owners", {"owner_id": "101", "crm": "hubspot", "name": "Lei Li", "wecom_userid": "zhangsan"})
    tables.insert("crm_owners", {"owner_id": "102", "crm": "hubspot", "name": "Meimei Han", "wecom_userid": "lisi"})
    known = fakes.hubspot.add_record("companies", {"name": "星辰贸易", "erp_customer_id": "CUST0001", "hubspot_owner_id": "102"})
    activate(engine, "erp-orders-to-crm")
    clock = FakeClock(datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc))
    scheduler = Scheduler(engine, clock=clock)
    try:
        assert await tick(scheduler, clock, 300, "erp-orders-to-crm") == []  # the first poll only seeds the cursor
        first = save_order(fakes, "CUST0001", [("CH0001", 2, 1800.0), ("CH0002", 1, 950.5)])
        second = save_order(fakes, "CUST0002", [("CH0001", 5, 100.0)])
        runs = await tick(scheduler, clock, 300, "erp-orders-to-crm")
        assert [r.status for r in runs] == ["succeeded"] * 2, [r.error for r in runs]
        by_order = {r.output["order"]: r.output for r in runs}
        assert by_order[first["FBillNo"]]["created"] is True and by_order[first["FBillNo"]]["amount"] == 4550.5
        assert by_order[second["FBillNo"]]["owner"] == "101"  # a new company gets the default owner

        synced = deals(fakes)
        assert set(synced) == {first["FBillNo"], second["FBillNo"]}
        deal = synced[first["FBillNo"]]["properties"]
        assert (deal["amount"], deal["dealstage"], deal["hubspot_owner_id"]) == ("4550.5", "contractsent", "102")
        assert deal["dealname"] == f"{first['FBillNo']} 上海星辰贸易有限公司"
        assert deal["closedate"].startswith("2026-11-23T00:00:00")
        created = next(c for c in fakes.hubspot.records["companies"].values() if c["properties"].get("erp_customer_id") == "CUST0002")
        assert created["properties"]["name"] == "杭州云帆科技有限公司" and created["properties"]["hubspot_owner_id"] == "101"
        assert fakes.hubspot.records["companies"][known["id"]]["properties"]["hubspot_owner_id"] == "102"  # not reassigned
        assert ("deals", synced[first["FBillNo"]]["id"], "companies", known["id"]) in fakes.hubspot.associations
        notices = {m["touser"]: m["markdown"]["content"] for m in fakes.wecom_messages()}
        assert set(notices) == {"lisi", "zhangsan"}
        assert notices["lisi"].startswith(f"**新订单** {first['FBillNo']}") and "¥4550.5" in notices["lisi"]

        assert await tick(scheduler, clock, 300, "erp-orders-to-crm") == []  # nothing changed
        save_order(fakes, "CUST0001", [("CH0001", 3, 1800.0)], fid=first["FID"])  # the order is changed ...
        fakes.kingdee.store.set_status("SAL_SaleOrder", "Submit", [second["FBillNo"]], [])
        fakes.kingdee.store.set_status("SAL_SaleOrder", "Audit", [second["FBillNo"]], [])  # ... the other audited
        runs = await tick(scheduler, clock, 300, "erp-orders-to-crm")
        assert sorted((r.status, r.output["created"]) for r in runs) == [("succeeded", False)] * 2, [r.error for r in runs]
        synced = deals(fakes)
        assert len(fakes.hubspot.records["deals"]) == 2  # updated, never duplicated
        assert synced[first["FBillNo"]]["properties"]["amount"] == "5400.0"
        assert synced[second["FBillNo"]]["properties"]["dealstage"] == "closedwon"
        updates = [m["markdown"]["content"] for m in fakes.wecom_messages()[2:]]
        assert sorted(u.split("\n")[0] for u in updates) == sorted(f"**订单更新** {n}" for n in (first["FBillNo"], second["FBillNo"]))
    finally:
        await scheduler.stop()


async def test_an_owner_without_a_wecom_mapping_is_synced_but_not_notified(engine: FlowEngine, fakes: Fakes) -> None:
    trigger = {**flow_definition("erp-orders-to-crm")["trigger"]["sample"]}
    bill = save_order(fakes, "CUST0002", [("CH0002", 1, 10.0)])
    trigger.update(id=bill["FID"], number=bill["FBillNo"], status="A",
                   fields={"FDate": "2026-11-23T00:00:00", "FCustId.FNumber": "CUST0002"})
    record = await engine.run(engine.compile(flow_definition("erp-orders-to-crm")), trigger)
    assert record.status == "succeeded", record.error
    assert record.output["notified"] is False and record.output["deal_id"] in fakes.hubspot.records["deals"]
    assert fakes.wecom_messages() == []


# ------------------------------------------------------------------------------------------ (b) lead round-robin

REPS = [  # Fxiaoke open user ids (the owners) and the same people's WeCom userids
    {"userid": "FSUID_LILEI", "name": "李雷", "wecom_userid": "zhangsan", "active": True},
    {"userid": "FSUID_ZHAOLIU", "name": "赵六", "wecom_userid": "wangwu", "active": False},  # left: takes no leads
    {"userid": "FSUID_HANMEIMEI", "name": "韩梅梅", "wecom_userid": "lisi", "active": True},
    {"userid": "FSUID_WANGWU", "name": "王五", "wecom_userid": "wangwu", "active": True},
]
TOKEN = "form-shared-token"
HOOK = "/hooks/leads/round-robin"


@pytest.fixture()
def service(fakes: Fakes, sqlite_url: str, admin_password: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The real service with the lead flow active and the sales team in `sales_reps`."""
    monkeypatch.setenv("FLOWLINK_INBOX_POLL", "0.1")
    with TestClient(create_app(sqlite_url)) as client:
        client.headers.update(bearer(login(client)))
        engine = client.app.state.flowlink.engine
        tables = prepare(engine, fakes)
        engine.connection_store.put("lead-form-token", "http", {"token": TOKEN})
        for rep in REPS:
            tables.insert("sales_reps", rep)
        assert client.post("/api/flows", json={"definition": flow_definition("lead-round-robin")}).status_code == 201
        assert client.post("/api/flows/lead-round-robin/activate").status_code == 200
        yield client


def finished_runs(client: TestClient, flow_id: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Wait (generously) until `count` runs of the flow ended; their full records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.get("/api/runs", params={"flow_id": flow_id, "limit": 200}).json()
        done = [r for r in runs if r["status"] in ("succeeded", "failed")]
        if len(done) >= count:
            return [client.get(f"/api/runs/{r['id']}").json() for r in done]
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} finished runs of {flow_id}")


def test_concurrent_leads_are_shared_round_robin_and_land_in_fxiaoke(service: TestClient, fakes: Fakes) -> None:
    def post(i: int) -> int:
        lead = {"lead_id": f"WEB-{i:03d}", "name": f"客户{i}", "mobile": f"139{i:08d}", "company": f"公司{i}", "channel": "官网"}
        return service.post(HOOK, json=lead, headers={"X-Flowlink-Token": TOKEN}).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(post, range(20)))
    assert all(code in (200, 202) for code in answers), answers
    runs = finished_runs(service, "lead-round-robin", 20)
    assert [r["status"] for r in runs] == ["succeeded"] * 20, [r["error"] for r in runs]
    outputs = [r["output"] for r in runs]
    assert sorted(o["turn"] for o in outputs) == list(range(1, 21))  # never two leads on one turn
    by_turn = {o["turn"]: o["owner"] for o in outputs}
    active = ["FSUID_LILEI", "FSUID_HANMEIMEI", "FSUID_WANGWU"]
    assert [by_turn[t] for t in range(1, 21)] == [active[(t - 1) % 3] for t in range(1, 21)]  # strict rotation
    assert sorted(Counter(by_turn.values()).values()) == [6, 7, 7]

    assert len(fakes.fxiaoke.records["LeadsObj"]) == 1 + 20  # the seeded lead and one per webhook call
    assert len({o["fxiaoke_id"] for o in outputs}) == 20
    for o in outputs:
        lead = fakes.fxiaoke.records["LeadsObj"][o["fxiaoke_id"]]
        number = int(o["lead_id"].removeprefix("WEB-"))
        assert (lead["name"], lead["mobile"], lead["owner"]) == (f"客户{number}", f"139{number:08d}", [o["owner"]])
        assert lead["remark"].startswith(f"官网 {o['lead_id']}")
    wecom = Counter(m["touser"] for m in fakes.wecom_messages())
    assert wecom == {"zhangsan": 7, "lisi": 7, "wangwu": 6}
    assert all("**新线索分配给你**" in m["markdown"]["content"] for m in fakes.wecom_messages())
    assert all(o["notified"] for o in outputs)


def test_bad_token_repeated_and_invalid_leads(service: TestClient, fakes: Fakes) -> None:
    lead = {"lead_id": "WEB-900", "name": "王小明", "mobile": "13900001111"}
    assert service.post(HOOK, json=lead, headers={"X-Flowlink-Token": "wrong"}).status_code == 401
    for _ in range(2):  # the form re-sent it: one run (dedupe on lead_id)
        assert service.post(HOOK, json=lead, headers={"X-Flowlink-Token": TOKEN}).status_code in (200, 202)
    assert service.post(HOOK, json={"lead_id": "WEB-901"}, headers={"X-Flowlink-Token": TOKEN}).status_code in (200, 202)
    runs = finished_runs(service, "lead-round-robin", 2)
    time.sleep(0.5)
    assert len(service.get("/api/runs", params={"flow_id": "lead-round-robin"}).json()) == 2
    by_status = {r["status"]: r for r in runs}
    assert by_status["failed"]["error"]["type"] == "InvalidLead"
    assert by_status["succeeded"]["output"]["turn"] == 1  # the invalid lead took no turn
    created = [r for r in fakes.fxiaoke.records["LeadsObj"].values() if r["name"] == "王小明"]
    assert len(created) == 1 and created[0]["owner"] == ["FSUID_LILEI"]


# ------------------------------------------------------------------------------------------ (c) segmentation

TIER_TAGS = {"etTierHighValue": "高价值", "etTierPotential": "潜力", "etTierNormal": "普通", "etTierChurned": "流失"}


def add_tier_tags(fakes: Fakes) -> None:
    """The corp's tier tag group, with the ids the flow's vars name (as an admin would have made them)."""
    fakes.wecom.corp().tag_groups["etGroupTier"] = {
        "group_id": "etGroupTier", "group_name": "客户分层", "create_time": 1763800000, "order": 3,
        "tag": [{"id": tag_id, "name": name, "create_time": 1763800000, "order": i} for i, (tag_id, name) in enumerate(TIER_TAGS.items())]}


def audited_order(fakes: Fakes, customer: str, date: str, qty: float, price: float) -> str:
    """An audited sales order of `customer` dated `date`; its number."""
    bill = fakes.kingdee.store.save("SAL_SaleOrder", {
        "FDate": date, "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": customer},
        "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "CH0001"}, "FQty": qty, "FPrice": price}]})
    for op in ("Submit", "Audit"):
        fakes.kingdee.store.set_status("SAL_SaleOrder", op, [bill["FBillNo"]], [])
    return bill["FBillNo"]


def erp_customer(fakes: Fakes, name: str) -> str:
    """An audited customer in the fake Kingdee; its number."""
    number = fakes.kingdee.store.save("BD_Customer", {"FName": name})["FNumber"]
    for op in ("Submit", "Audit"):
        fakes.kingdee.store.set_status("BD_Customer", op, [number], [])
    return number


def tier_tags_of(fakes: Fakes, userid: str, external_userid: str) -> list[str]:
    return [t for t in fakes.wecom.corp().follows[(userid, external_userid)]["tag_id"] if t in TIER_TAGS]


async def test_nightly_segmentation_tiers_tags_and_remembers(engine: FlowEngine, fakes: Fakes) -> None:
    tables = DataTables(engine.db)
    big, growing, small = "CUST0001", "CUST0002", erp_customer(fakes, "宁波小件五金")
    gone, silent = erp_customer(fakes, "青岛旧客户"), erp_customer(fakes, "厦门从未下单")
    audited_order(fakes, big, "2026-10-05", 10, 3000.0)       # 30 000
    audited_order(fakes, big, "2026-11-20", 20, 1000.0)       # + 20 000 = 50 000: high value
    audited_order(fakes, growing, "2026-11-01", 12, 1000.0)   # 12 000: potential
    audited_order(fakes, small, "2026-09-30", 3, 99.5)        # 298.5: normal
    audited_order(fakes, gone, "2026-06-01", 100, 1000.0)     # big, but nothing for 90+ days: churned
    audited_order(fakes, gone, "2024-01-01", 1, 1.0)          # outside the 365-day window: not counted
    fakes.kingdee.seed_sales_orders(2, customer=growing)      # not audited: not counted
    tables.insert("customer_tiers", {"erp_customer": big, "external_userid": "wmCustomer001", "wecom_userid": "zhangsan"})
    tables.insert("customer_tiers", {"erp_customer": gone, "external_userid": "wmCustomer003", "wecom_userid": "lisi",
                                        "tier": "high_value", "spend": 100000})
    tables.insert("customers", {"external_userid": "wmCustomer001", "name": "李雷", "source": "wecom"})
    add_tier_tags(fakes)
    fakes.wecom.corp().follows[("lisi", "wmCustomer003")]["tag_id"] = ["etTagVip", "etTierHighValue"]
    activate(engine, "customer-segmentation")
    # 2026-11-23 01:59 in Shanghai; the 02:00 slot fires on the next pass
    clock = FakeClock(datetime(2026, 11, 23, 1, 59, tzinfo=SHANGHAI))
    scheduler = Scheduler(engine, clock=clock)
    try:
        assert await tick(scheduler, clock, 0, "customer-segmentation") == []
        (run,) = await tick(scheduler, clock, 120, "customer-segmentation")
        assert run.status == "succeeded", run.error
        out = run.output
        assert out["scheduled_at"] == "2026-11-23T02:00:00+08:00"
        assert out["tiers"] == {"high_value": [big], "potential": [growing], "normal": [small], "churned": [gone, silent]}
        assert out["customers"] == 5 and out["changed"] == 5 and out["failed"] == 0

        companies = {c["properties"].get("erp_customer_id"): c["properties"] for c in fakes.hubspot.records["companies"].values()}
        assert (companies[big]["customer_tier"], companies[big]["total_spend"]) == ("gold", "50000.0")
        assert (companies[growing]["customer_tier"], companies[growing]["name"]) == ("silver", "杭州云帆科技有限公司")
        assert companies[small]["customer_tier"] == "bronze"
        assert companies[gone]["customer_tier"] == "" and companies[gone]["name"] == "青岛旧客户"
        assert tier_tags_of(fakes, "zhangsan", "wmCustomer001") == ["etTierHighValue"]
        follow = fakes.wecom.corp().follows[("lisi", "wmCustomer003")]["tag_id"]
        assert follow == ["etTagVip", "etTierChurned"]  # the old tier tag out, other tags kept
        stored = {r["erp_customer"]: r for r in tables.query("customer_tiers", limit=100)["rows"]}
        assert {k: r["tier"] for k, r in stored.items()} == {big: "high_value", growing: "potential", small: "normal",
                                                             gone: "churned", silent: "churned"}
        assert (stored[big]["spend"], stored[big]["order_count"], stored[big]["last_order_at"]) == (50000, 2, "2026-11-20")
        assert stored[gone]["spend"] == 100000 and stored[silent]["order_count"] == 0
        assert stored[big]["segmented_at"] == "2026-11-23T02:00:00+08:00"
        profile = tables.get("customers", key_value="wmCustomer001")
        assert (profile["spend"], profile["order_count"]) == (50000, 2)

        # the next night nothing changed: no CRM or WeCom call, one new order moves one customer
        audited_order(fakes, small, "2026-11-23", 100, 100.0)  # 298.5 + 10 000: potential
        calls_before = sum(fakes.hubspot.calls.values()), sum(fakes.wecom.calls.values())
        (night2,) = await tick(scheduler, clock, 86400, "customer-segmentation")
        assert night2.status == "succeeded", night2.error
        assert night2.output["changed"] == 1 and night2.output["tiers"]["potential"] == [growing, small]
        hubspot_calls = sum(fakes.hubspot.calls.values()) - calls_before[0]
        assert hubspot_calls == 1 and sum(fakes.wecom.calls.values()) == calls_before[1]  # `small` has no WeCom link
    finally:
        await scheduler.stop()


def schedule_payload(at: datetime) -> dict[str, Any]:
    """What the scheduler gives a run of the nightly slot `at`."""
    return {"scheduled_at": at.isoformat(), "fired_at": at.astimezone(timezone.utc).isoformat(), "cron": "0 2 * * *",
            "timezone": "Asia/Shanghai"}


async def test_a_customer_that_fails_is_tolerated_and_retried_the_next_night(engine: FlowEngine, fakes: Fakes) -> None:
    tables = DataTables(engine.db)
    add_tier_tags(fakes)
    audited_order(fakes, "CUST0001", "2026-11-20", 1, 20000.0)
    audited_order(fakes, "CUST0002", "2026-11-21", 1, 60000.0)
    # a wrong link: lisi does not follow wmCustomer002, so WeCom answers 84061 for this customer
    tables.insert("customer_tiers", {"erp_customer": "CUST0002", "external_userid": "wmCustomer002", "wecom_userid": "lisi"})
    flow = engine.compile(flow_definition("customer-segmentation"))
    first = await engine.run(flow, schedule_payload(datetime(2026, 11, 23, 2, 0, tzinfo=SHANGHAI)))
    assert first.status == "succeeded", first.error
    assert (first.output["customers"], first.output["failed"], first.output["tiers"]["potential"]) == (2, 1, ["CUST0001"])
    assert tables.get("customer_tiers", key_value="CUST0002")["tier"] is None  # not remembered: retried next night
    assert fakes.wecom.errors[84061] >= 1

    tables.update("customer_tiers", where={"erp_customer": "CUST0002"}, values={"wecom_userid": "zhangsan"})
    second = await engine.run(flow, schedule_payload(datetime(2026, 11, 24, 2, 0, tzinfo=SHANGHAI)))
    assert second.status == "succeeded", second.error
    assert (second.output["changed"], second.output["failed"], second.output["tiers"]["high_value"]) == (1, 0, ["CUST0002"])
    assert tier_tags_of(fakes, "zhangsan", "wmCustomer002") == ["etTierHighValue"]
    assert tables.get("customer_tiers", key_value="CUST0002")["tier"] == "high_value"


# ------------------------------------------------------------------------------------------ core.aggregate

@pytest.fixture()
def core_engine(sqlite_url: str) -> Iterator[FlowEngine]:
    """An engine with the core connector only (no fakes needed)."""
    eng = FlowEngine(sqlite_url, registry=ConnectorRegistry([core_connector]))
    yield eng
    eng.close()


async def test_aggregate_groups_in_order_and_computes_each_metric(core_engine: FlowEngine) -> None:
    engine = core_engine
    items = [{"c": "A", "n": 2, "d": "2026-01-02", "tag": "x"}, {"c": "B", "n": 1.5, "d": None, "tag": "x"},
             {"c": "A", "n": None, "d": "2026-03-01", "tag": "y"}, {"c": None, "n": 7}, {"c": "A", "n": 4, "tag": "x"},
             {"c": 1, "n": 1}, {"c": True, "n": 1}]
    metrics = {"total": {"op": "sum", "of": "n"}, "items": {"op": "count"}, "with_n": {"op": "count", "of": "n"},
               "tags": {"op": "count_distinct", "of": "tag"}, "low": {"op": "min", "of": "n"}, "high": {"op": "max", "of": "d"},
               "mean": {"op": "avg", "of": "n"}, "first_tag": {"op": "first", "of": "tag"}, "last_tag": {"op": "last", "of": "tag"},
               "doubled": {"op": "sum", "of": "n && mul(n, `2`)"}}
    flow = engine.compile({"id": "agg", "name": "agg", "trigger": {"type": "manual"}, "steps": [
        {"id": "agg", "type": "action", "action": "core.aggregate", "args": {"items": {"$expr": "trigger"}, "group_by": "c", "metrics": metrics}}]})
    record = await engine.run(flow, items)
    assert record.status == "succeeded", record.error
    assert record.output == [
        {"key": "A", "total": 6, "items": 3, "with_n": 2, "tags": 2, "low": 2, "high": "2026-03-01", "mean": 3.0,
         "first_tag": "x", "last_tag": "x", "doubled": 12},
        {"key": "B", "total": 1.5, "items": 1, "with_n": 1, "tags": 1, "low": 1.5, "high": None, "mean": 1.5,
         "first_tag": "x", "last_tag": "x", "doubled": 3.0},
        {"key": None, "total": 7, "items": 1, "with_n": 1, "tags": 0, "low": 7, "high": None, "mean": 7.0,
         "first_tag": None, "last_tag": None, "doubled": 14},
        {"key": 1, "total": 1, "items": 1, "with_n": 1, "tags": 0, "low": 1, "high": None, "mean": 1.0,
         "first_tag": None, "last_tag": None, "doubled": 2},
        {"key": True, "total": 1, "items": 1, "with_n": 1, "tags": 0, "low": 1, "high": None, "mean": 1.0,
         "first_tag": None, "last_tag": None, "doubled": 2},
    ]


@pytest.mark.parametrize(("args", "message"), [
    ({"group_by": "c", "metrics": {"s": {"op": "sum", "of": "v"}}}, "args.metrics.s: expected numbers"),
    ({"group_by": "c", "metrics": {"m": {"op": "max", "of": "m"}}}, "min/max need all numbers or all strings"),
    ({"group_by": "obj", "metrics": {"n": {"op": "count"}}}, "args.group_by: group keys must be"),
    ({"group_by": "c", "metrics": {"key": {"op": "count"}}}, "'key' is the group key's field"),
    ({"group_by": "c", "metrics": {"s": {"op": "sum"}}}, "`of` is required for sum"),
    ({"group_by": "c[", "metrics": {"n": {"op": "count"}}}, "args.group_by"),
])
async def test_aggregate_rejects_what_it_cannot_compute(core_engine: FlowEngine, args: dict[str, Any], message: str) -> None:
    engine = core_engine
    items = [{"c": "A", "v": "12", "m": 1, "obj": {"a": 1}}, {"c": "A", "v": 3, "m": "z", "obj": {"a": 1}}]
    flow = engine.compile({"id": "agg", "name": "agg", "trigger": {"type": "manual"}, "steps": [
        {"id": "agg", "type": "action", "action": "core.aggregate", "args": {"items": {"$expr": "trigger"}, **args}}]})
    record = await engine.run(flow, items)
    assert record.status == "failed" and record.error["type"] == "InvalidInput"
    assert message in record.error["message"]


async def test_core_contract_kit_passes_with_aggregate() -> None:
    report = await check_connector(core_connector)
    assert report.ok, [(c.name, c.message, c.details) for c in report.failed]
    assert any(c.name.startswith("example: aggregate") and c.ok for c in report.checks)
