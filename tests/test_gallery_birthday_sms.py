"""Gallery flow 1, SMS variant (flows/scrm-birthday-care-sms.json), end to end against the fake
Alibaba Cloud SMS: today's birthdays with a mobile get the coupon template in batches of at most
100 (SendBatchSms), each greeting is recorded before sending, a re-run sends nothing, and a
refused batch is recorded as failed."""
from __future__ import annotations

import hashlib

from tests.gallery_support import Gallery, gallery, sms_gallery  # noqa: F401  (fixtures)

MAY_12 = {"scheduled_at": "2026-05-12T09:00:00+08:00"}


def coupon(ext: str, year: int = 2026) -> str:
    """The coupon the flow derives for a customer and year (vars.coupon_salt is the shipped default)."""
    return "BD" + hashlib.sha256(f"change-me-birthday:{ext}:{year}".encode()).hexdigest()[:10].upper()


def test_birthday_sms_once_a_year(sms_gallery: Gallery) -> None:
    g = sms_gallery
    assert g.sms is not None
    g.add_customer("wmA", "Lucy", mobile="13900000001", birthday="1990-05-12")
    g.add_customer("wmB", "Mark", mobile="13900000002", birthday="1991-05-12")
    g.add_customer("wmC", "No phone", birthday="1992-05-12")
    g.add_customer("wmD", "June", mobile="13900000004", birthday="1993-06-01")
    g.deploy("scrm-birthday-care-sms")

    run = g.run("scrm-birthday-care-sms", MAY_12)
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == {"date": "2026-05-12", "sent": ["wmA", "wmB"], "failed": [], "skipped": 0}
    texts = {m.phone: m.content for m in g.sms.sent}
    assert texts == {"13900000001": f"【阿里云短信测试】Lucy，生日快乐！送您一张优惠券：{coupon('wmA')}，有效期至2026-06-11。",
                     "13900000002": f"【阿里云短信测试】Mark，生日快乐！送您一张优惠券：{coupon('wmB')}，有效期至2026-06-11。"}
    assert g.sms.calls == {"SendBatchSms": 1}
    rows = g.rows("birthday_greetings")
    assert {(r["external_userid"], r["status"], r["channel"]) for r in rows} == {("wmA", "sent", "sms"), ("wmB", "sent", "sms")}
    assert {r["message_id"] for r in rows} == {g.sms.sent[0].biz_id}

    again = g.run("scrm-birthday-care-sms", MAY_12)
    assert again["output"]["sent"] == [] and again["output"]["skipped"] == 2 and len(g.sms.sent) == 2


def test_batches_of_100_and_a_refused_batch(sms_gallery: Gallery) -> None:
    g = sms_gallery
    assert g.sms is not None
    for i in range(150):
        g.add_customer(f"wm{i:03d}", f"C{i}", mobile=f"139{i:08d}", birthday="1990-05-12")
    g.add_customer("wmBad", "Bad number", mobile="12345", birthday="1990-05-12")  # the platform refuses it
    g.deploy("scrm-birthday-care-sms")
    run = g.run("scrm-birthday-care-sms", MAY_12)
    assert run["status"] == "succeeded", run["error"]
    assert g.sms.calls["SendBatchSms"] == 2
    sent, failed = run["output"]["sent"], run["output"]["failed"]
    assert (len(sent), len(failed)) == (100, 51) and "wmBad" in failed  # the second batch was refused
    assert len(g.sms.sent) == len(sent)
    statuses = {r["external_userid"]: (r["status"], r["error"]) for r in g.rows("birthday_greetings")}
    assert statuses["wmBad"][0] == "failed" and "MOBILE_NUMBER_ILLEGAL" in statuses["wmBad"][1]
