"""The sales flows of flows/ (issue 6) end to end through the real service against the fakes:

(a) douyin-lead-to-crm: the Douyin fake pushes signed lead and comment webhooks, the flow creates
    the Fxiaoke lead and the DingTalk robot announces it; a lead the CRM refuses is announced as
    needing manual entry; re-pushes start no second run.
(b) order-approval + order-approval-result: a signed order webhook; small orders go straight to
    Kingdee; large ones start a DingTalk approval and wait in the pending_approvals table until the
    DingTalk fake approves or refuses and pushes the encrypted callback.

The tests share one service and one set of fakes (see tests/flows_sales_support.py): each uses
its own order numbers, requesters and leads, and compares counts before and after.
"""
from __future__ import annotations

import time
from typing import Any

import pytest

from connectors.dingtalk import sandbox as dingtalk_fake
from engine.store.datatables import DataTables
from engine.validation import load_flow_text
from tests.flows_sales_support import (  # noqa: F401  (the world fixture)
    FLOWS,
    SALES_FLOWS,
    Platforms,
    World,
    erp_orders,
    finished_runs,
    post_order,
    run_ids,
    table_row,
    world,
)

DOUYIN_HOOK = "/hooks/douyin/douyin"
LEADS = "douyin-lead-to-crm"
ORDERS, RESULTS = "order-approval", "order-approval-result"
ROBOT = dingtalk_fake.ROBOT_SIGN_TOKEN


def robot_texts(platforms: Platforms) -> list[str]:
    """The markdown bodies the sales group's robot has posted, oldest first."""
    return [m["markdown"]["text"] for m in platforms.dingtalk.robot_messages[ROBOT]]


def inbox_texts(platforms: Platforms, userid: str) -> list[str]:
    """The markdown work notifications a DingTalk user has received."""
    return [m["markdown"]["text"] for m in platforms.dingtalk.inbox[userid] if m["msgtype"] == "markdown"]


def crm_leads(platforms: Platforms) -> dict[str, dict[str, Any]]:
    """Fxiaoke's leads by id (a copy)."""
    return dict(platforms.fxiaoke.records["LeadsObj"])


# ------------------------------------------------------------------ the flow files


@pytest.mark.parametrize("name", SALES_FLOWS)
def test_flow_files_validate(name: str) -> None:
    result = load_flow_text((FLOWS / f"{name}.json").read_bytes())
    assert result.ok, [str(i) for i in result.issues]


def test_the_shipped_table_and_flows_are_in_place(world: World) -> None:
    table = DataTables(world.client.app.state.flowlink.engine.db).get_table("pending_approvals")
    assert table["key"] == "order_no"  # flows/tables/pending_approvals.json was loaded, not skipped
    listed = {f["id"]: f for f in world.client.get("/api/flows").json()}
    assert all(listed[name]["active"] for name in SALES_FLOWS)


# ------------------------------------------------------------------ (a) Douyin -> Fxiaoke -> DingTalk robot


def test_a_douyin_lead_becomes_a_crm_lead_announced_once(world: World) -> None:
    client, platforms, douyin = world.client, world.platforms, world.platforms.douyin
    handshake = douyin.verify_webhook(DOUYIN_HOOK, client=client, challenge=77)
    assert handshake.status_code == 200 and handshake.json() == {"challenge": 77}
    before, leads_before, notices_before = run_ids(client, LEADS), crm_leads(platforms), len(robot_texts(platforms))

    event = douyin.lead_event({"clue_id": "clue-5001", "name": "赵女士", "telephone": "13912345678", "city": "苏州",
                               "ad_id": "ad-9"}, event="website_contact", from_user_id="open-viewer-3")
    delivery = douyin.deliver(DOUYIN_HOOK, event, client=client)
    assert delivery.statuses == [200]
    (run,) = finished_runs(client, LEADS, 1, before)
    assert run["status"] == "succeeded", run["error"]
    crm_id = run["output"]["crm_id"]
    assert run["output"] == {"channel": "抖音留资", "douyin_id": "clue-5001", "crm_id": crm_id, "manual_entry": False}

    assert set(crm_leads(platforms)) - set(leads_before) == {crm_id}
    lead = platforms.fxiaoke.records["LeadsObj"][crm_id]
    assert (lead["name"], lead["mobile"], lead["owner"]) == ("赵女士", "13912345678", ["FSUID_LILEI"])
    assert "clue-5001" in lead["remark"] and "苏州" in lead["remark"] and "open-viewer-3" in lead["remark"]
    (notice,) = robot_texts(platforms)[notices_before:]
    assert notice.startswith("### 新抖音留资线索") and f"**{crm_id}**" in notice and "13912345678" in notice

    again = douyin.deliver(DOUYIN_HOOK, event, client=client, msg_id=delivery.msg_id)  # Douyin's retry, same Msg-Id
    assert again.statuses == [200]
    time.sleep(0.5)
    assert len(run_ids(client, LEADS) - before) == 1
    assert len(crm_leads(platforms)) == len(leads_before) + 1 and len(robot_texts(platforms)) == notices_before + 1


def test_a_buying_comment_becomes_a_lead_and_chatter_does_not(world: World) -> None:
    client, platforms, douyin = world.client, world.platforms, world.platforms.douyin
    before, leads_before, notices_before = run_ids(client, LEADS), crm_leads(platforms), len(robot_texts(platforms))
    video = douyin.seeded_item_id
    buying = douyin.new_comment(video, "open-fan-1", "这款传感器多少钱？")
    chatter = douyin.new_comment(video, "open-fan-2", "拍得真好")
    follow = douyin.new_follower("open-fan-3", "Zhou")
    for event in (buying, chatter, follow):
        assert douyin.deliver(DOUYIN_HOOK, event, client=client).statuses == [200]
    runs = finished_runs(client, LEADS, 2, before)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"], [r["error"] for r in runs]
    by_channel = {r["output"]["channel"]: r["output"] for r in runs}
    assert by_channel[None] == {"channel": None, "douyin_id": None, "crm_id": None, "manual_entry": False}
    comment_lead = by_channel["抖音评论"]
    lead = platforms.fxiaoke.records["LeadsObj"][comment_lead["crm_id"]]
    assert lead["name"] == "user open-fan-1" and "多少钱" in lead["remark"] and "mobile" not in lead
    (notice,) = robot_texts(platforms)[notices_before:]
    assert "新抖音评论线索" in notice and comment_lead["crm_id"] in notice
    time.sleep(0.5)
    assert len(run_ids(client, LEADS) - before) == 2  # the follower event is acknowledged without a run
    assert len(crm_leads(platforms)) == len(leads_before) + 1


def test_a_lead_the_crm_refuses_is_announced_for_manual_entry(world: World) -> None:
    client, platforms = world.client, world.platforms
    before, leads_before, notices_before = run_ids(client, LEADS), crm_leads(platforms), len(robot_texts(platforms))
    event = platforms.douyin.lead_event({"clue_id": "clue-5002", "name": "钱先生", "telephone": "晚上6点后打"},
                                        event="dial_phone")
    assert platforms.douyin.deliver(DOUYIN_HOOK, event, client=client).statuses == [200]
    (run,) = finished_runs(client, LEADS, 1, before)
    assert run["status"] == "succeeded", run["error"]
    assert run["output"]["manual_entry"] is True and run["output"]["crm_id"] is None
    crm_step = next(s for s in run["steps"] if s["step_id"] == "crm")
    assert crm_step["status"] == "failed" and crm_step["error"]["code"] == "10001"
    assert crm_leads(platforms) == leads_before
    (notice,) = robot_texts(platforms)[notices_before:]
    assert "需人工录入" in notice and "钱先生" in notice and "晚上6点后打" in notice and "mobile" in notice


# ------------------------------------------------------------------ (b) orders, DingTalk approval, Kingdee


def order(order_no: str, qty: int, price: float, customer: str = "CUST0001", requester: str = "user003") -> dict[str, Any]:
    """An order as a shop system posts it."""
    return {"order_no": order_no, "date": "2026-11-23", "customer": customer, "requester": requester,
            "items": [{"material": "CH0001", "qty": qty, "price": price}, {"material": "CH0002", "qty": 1, "price": 500.0}]}


def test_a_small_order_goes_straight_to_the_erp(world: World) -> None:
    client, platforms = world.client, world.platforms
    instances_before, before = set(platforms.dingtalk.instances), run_ids(client, ORDERS)
    forged = post_order(client, order("SO-1", 10, 1000.0), secret="not-the-secret")
    assert forged.status_code == 401

    answer = post_order(client, order("SO-1", 10, 1000.0))
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "booked" and result["total"] == 10500.0
    (bill,) = erp_orders(platforms.kingdee, "SO-1")
    assert bill["FBillNo"] == result["erp_number"] and bill["FDocumentStatus"] == "C"  # saved, submitted, audited
    assert bill["FCustId"] == {"FNumber": "CUST0001"} and bill["FDate"] == "2026-11-23"
    assert [(e["FMaterialId"]["FNumber"], e["FQty"], e["FPrice"]) for e in bill["FSaleOrderEntry"]] == \
        [("CH0001", 10, 1000.0), ("CH0002", 1, 500.0)]
    assert set(platforms.dingtalk.instances) == instances_before
    pending = DataTables(client.app.state.flowlink.engine.db).query("pending_approvals", where={"order_no": "SO-1"})
    assert pending["total"] == 0

    duplicate = post_order(client, order("SO-1", 10, 1000.0))  # the shop re-sends: deduped by order_no
    assert duplicate.status_code == 200 and duplicate.json() == result  # the first run's answer, not a new run
    assert len(run_ids(client, ORDERS) - before) == 1 and len(erp_orders(platforms.kingdee, "SO-1")) == 1


def test_a_large_order_is_booked_once_after_approval(world: World) -> None:
    client, platforms = world.client, world.platforms
    before = run_ids(client, RESULTS)
    answer = post_order(client, order("SO-2", 50, 1250.0))
    assert answer.status_code == 200, answer.text
    waiting = answer.json()
    assert waiting["status"] == "pending_approval" and waiting["total"] == 63000.0
    instance = platforms.dingtalk.instances[waiting["instance_id"]]
    assert instance["originatorUserId"] == "user003" and instance["status"] == "RUNNING"
    assert {c["name"]: c["value"] for c in instance["formComponentValues"]} == {"订单号": "SO-2", "金额": "63000.0", "客户": "CUST0001"}
    assert erp_orders(platforms.kingdee, "SO-2") == []
    assert table_row(client, "pending_approvals", waiting["order_no"])["status"] == "pending"

    event = platforms.dingtalk.approve(waiting["instance_id"])  # pushes the signed, encrypted bpms_instance_change
    assert platforms.dingtalk.deliveries[-1].acknowledged
    (run,) = finished_runs(client, RESULTS, 1, before)
    assert run["status"] == "succeeded", run["error"]
    (bill,) = erp_orders(platforms.kingdee, "SO-2")
    assert run["output"] == {"order_no": "SO-2", "outcome": "approved", "erp_number": bill["FBillNo"]}
    assert bill["FDocumentStatus"] == "C" and bill["FSaleOrderEntry"][0]["FQty"] == 50
    row = table_row(client, "pending_approvals", waiting["order_no"])
    assert (row["status"], row["erp_number"]) == ("approved", bill["FBillNo"]) and row["decided_at"]
    assert row["instance_id"] == waiting["instance_id"] and row["amount"] == 63000.0
    (told,) = [t for t in inbox_texts(platforms, "user003") if "SO-2" in t]
    assert "SO-2 审批通过" in told and bill["FBillNo"] in told

    # the same push again is dropped by the inbox; an equivalent one with a new eventId runs but books nothing
    assert platforms.dingtalk.send_callback(event, redeliver=True).acknowledged
    assert platforms.dingtalk.send_callback({**event, "eventId": "evt-again"}).acknowledged
    runs = finished_runs(client, RESULTS, 2, before)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    steps = [s["step_id"] for s in runs[1]["steps"]]
    assert "already_settled" in steps and "book" not in steps
    time.sleep(0.5)
    assert len(run_ids(client, RESULTS) - before) == 2
    assert len(erp_orders(platforms.kingdee, "SO-2")) == 1
    assert len([t for t in inbox_texts(platforms, "user003") if "SO-2" in t]) == 1


def test_a_refused_order_never_reaches_the_erp_and_the_requester_is_told(world: World) -> None:
    client, platforms = world.client, world.platforms
    before = run_ids(client, RESULTS)
    waiting = post_order(client, order("SO-3", 100, 800.0, requester="user007")).json()
    assert waiting["status"] == "pending_approval"
    platforms.dingtalk.refuse(waiting["instance_id"], remark="折扣过大，请重新报价")
    (run,) = finished_runs(client, RESULTS, 1, before)
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == {"order_no": "SO-3", "outcome": "refused", "erp_number": None}
    assert erp_orders(platforms.kingdee, "SO-3") == []
    row = table_row(client, "pending_approvals", waiting["order_no"])
    assert (row["status"], row["remark"], row["erp_number"]) == ("refused", "折扣过大，请重新报价", None)
    (told,) = inbox_texts(platforms, "user007")
    assert "SO-3 审批未通过" in told and "折扣过大" in told


def test_an_order_the_erp_rejects_waits_again_and_books_on_replay(world: World) -> None:
    client, platforms = world.client, world.platforms
    before = run_ids(client, RESULTS)
    waiting = post_order(client, order("SO-4", 60, 1000.0, customer="CUST0404", requester="user005")).json()
    assert waiting["status"] == "pending_approval"  # DingTalk does not know the ERP's customers
    platforms.dingtalk.approve(waiting["instance_id"])
    (run,) = finished_runs(client, RESULTS, 1, before)
    assert run["status"] == "failed" and run["error"]["type"] == "ErpRejected", run["error"]
    assert "SO-4" in run["error"]["message"] and "CUST0404" in run["error"]["message"]
    row = table_row(client, "pending_approvals", waiting["order_no"])
    assert row["status"] == "pending" and erp_orders(platforms.kingdee, "SO-4") == []
    assert inbox_texts(platforms, "user005") == []

    # an operator corrects the customer in the table and replays the dead callback event
    model = {**row["model"], "FCustId": {"FNumber": "CUST0002"}}
    assert client.patch(f"/api/tables/pending_approvals/rows/{row['_id']}", json={"model": model}).status_code == 200
    dead = client.get("/api/events", params={"flow_id": RESULTS, "status": "dead"}).json()["events"]
    (event,) = [e for e in dead if e["run_id"] == run["id"]]
    assert client.post(f"/api/events/{event['id']}/replay").status_code == 202
    (replayed,) = finished_runs(client, RESULTS, 2, before)[1:]
    assert replayed["status"] == "succeeded", replayed["error"]
    (bill,) = erp_orders(platforms.kingdee, "SO-4")
    assert bill["FCustId"] == {"FNumber": "CUST0002"} and replayed["output"]["erp_number"] == bill["FBillNo"]
    assert table_row(client, "pending_approvals", waiting["order_no"])["status"] == "approved"


def test_an_approval_nobody_waits_for_fails_visibly(world: World) -> None:
    client, platforms = world.client, world.platforms
    before, saves = run_ids(client, RESULTS), platforms.kingdee.calls["Save"]
    stray = platforms.dingtalk.add_instance("user010")  # started in the DingTalk app, not by the order flow
    platforms.dingtalk.approve(stray)
    (run,) = finished_runs(client, RESULTS, 1, before)
    assert run["status"] == "failed" and run["error"]["type"] == "UnknownApproval" and stray in run["error"]["message"]
    assert platforms.kingdee.calls["Save"] == saves


def test_an_order_whose_approval_cannot_start_fails_to_the_caller(world: World) -> None:
    client, platforms = world.client, world.platforms
    instances_before = set(platforms.dingtalk.instances)
    answer = post_order(client, order("SO-6", 80, 1000.0, requester="nobody-here"))  # not a DingTalk user
    assert answer.status_code == 500 and answer.json()["error"]["type"] == "RunFailed", answer.text
    assert set(platforms.dingtalk.instances) == instances_before and erp_orders(platforms.kingdee, "SO-6") == []
    row = table_row(client, "pending_approvals", "SO-6")  # recorded first, so nothing is lost; replay the event to retry
    assert (row["status"], row["instance_id"]) == ("requesting", None)
