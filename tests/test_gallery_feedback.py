"""Gallery flow 6, flows/scrm-feedback-tickets.json, end to end: the fake Douyin pushes signed
private messages to the service; a complaint becomes a ticket (number, Fxiaoke follow-up on the
customer's account, service_tickets row), the service group's WeCom robot is told and the
customer gets an acknowledgement; other messages and re-deliveries do nothing."""
from __future__ import annotations

import json

from connectors.wecom import fake_state as wecom_seed
from tests.gallery_support import Gallery, gallery  # noqa: F401  (fixture)

HOOK = "/hooks/douyin/scrm-feedback"


def test_a_complaint_becomes_a_crm_ticket_a_group_notice_and_an_acknowledgement(gallery: Gallery) -> None:
    g = gallery
    g.deploy("scrm-feedback-tickets")
    fake = g.douyin.fake
    question = fake.new_private_message("open-v1", "请问发货到苏州要几天？")
    complaint = fake.new_private_message("open-v2", "收到的货有质量问题，我要退款！")
    assert fake.deliver(HOOK, question, client=g.client).statuses == [200]
    delivery = fake.deliver(HOOK, complaint, client=g.client)
    assert delivery.statuses == [200]
    fake.deliver(HOOK, complaint, client=g.client, msg_id=delivery.msg_id)  # Douyin re-delivers: no second ticket
    runs = g.finished("scrm-feedback-tickets", 2)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"], [r["error"] for r in runs]
    by_text = {r["trigger"]["message"]["text"]: r["output"] for r in runs}
    assert by_text["请问发货到苏州要几天？"]["ticket_no"] is None

    out = by_text["收到的货有质量问题，我要退款！"]
    assert out["ticket_no"] == "TS1" and out["keywords"] == ["退款", "质量问题"] and out["acknowledged"] is True
    (ticket,) = g.rows("service_tickets")
    assert (ticket["ticket_no"], ticket["channel"], ticket["customer_id"], ticket["status"]) == ("TS1", "douyin", "open-v2", "acknowledged")
    record = g.fxiaoke.records["ActiveRecordObj"][out["crm_record"]]
    assert record["active_record_content"].startswith("[投诉 TS1] 收到的货有质量问题")
    account = g.fxiaoke.records["AccountObj"][ticket["crm_account_id"]]
    assert account["name"] == "抖音用户 user open-v2 (open-v2)" and account["owner"] == ["FSUID_HANMEIMEI"]
    (notice,) = g.wecom.robots[wecom_seed.ROBOT_KEY]["messages"]
    assert notice["msgtype"] == "markdown" and "新投诉 TS1" in notice["markdown"]["content"]
    server_id = json.loads(complaint["content"])["server_message_id"]
    assert [r["text"] for r in fake.im_messages[server_id].replies] == ["您好，已收到您的反馈（工单号 TS1），客服会在 24 小时内联系您处理。"]
    question_id = json.loads(question["content"])["server_message_id"]
    assert fake.im_messages[question_id].replies == []


def test_a_second_complaint_of_the_same_customer_reuses_their_crm_account(gallery: Gallery) -> None:
    g = gallery
    g.deploy("scrm-feedback-tickets")
    fake = g.douyin.fake
    for text in ("差评！客服不回复", "我要投诉物流"):
        fake.deliver(HOOK, fake.new_private_message("open-v3", text), client=g.client)
        g.finished("scrm-feedback-tickets", 1 if text.startswith("差评") else 2)
    tickets = g.rows("service_tickets")
    assert [t["ticket_no"] for t in tickets] == ["TS1", "TS2"]
    assert tickets[0]["crm_account_id"] == tickets[1]["crm_account_id"]
    assert len(g.fxiaoke.records["ActiveRecordObj"]) == 2
