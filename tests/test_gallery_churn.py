"""Gallery flow 7, flows/scrm-churn-winback.json, end to end: the weekly run (with the payload
the scheduler gives) tags lapsed customers churn risk in the fake WeCom and the customers table
and sends each a personal coupon through a mass-send task; recent and already tagged customers
are left alone and a second run the same week sends nothing."""
from __future__ import annotations

import hashlib
from typing import Any

from tests.gallery_support import CHURN_TAG, Gallery, gallery  # noqa: F401  (fixture)

MONDAY = {"scheduled_at": "2026-11-23T10:00:00+08:00", "fired_at": "2026-11-23T02:00:00.050000+00:00"}


def templates(g: Gallery) -> list[dict[str, Any]]:
    """The mass-send tasks the fake WeCom holds."""
    return list(g.wecom.corp().msg_templates.values())


def test_lapsed_customers_are_tagged_and_sent_a_coupon_once(gallery: Gallery) -> None:
    g = gallery
    lapsed = g.add_wecom_customer("zhangsan", "Lucy")
    recent = g.add_wecom_customer("lisi", "Mark")
    tagged = g.add_wecom_customer("lisi", "Nina")
    g.add_customer(lapsed, "Lucy", owner="zhangsan", tags=["展会"], last_order_at="2026-07-01T12:00:00+08:00")
    g.add_customer(recent, "Mark", owner="lisi", last_order_at="2026-10-30T12:00:00+08:00")
    g.add_customer(tagged, "Nina", owner="lisi", tags=["流失风险"], last_order_at="2026-03-01T12:00:00+08:00")
    g.add_customer("wmOffline1", "Walk-in", source="offline", last_order_at="2026-05-01T12:00:00+08:00")  # no WeCom owner
    g.add_customer("wmNever", "Browser")  # never ordered: not churn
    g.deploy("scrm-churn-winback")

    run = g.run("scrm-churn-winback", MONDAY)
    assert run["status"] == "succeeded", run["error"]
    out = run["output"]
    assert out["week"] == "2026-W48" and out["cutoff"] == "2026-08-25T10:00:00+08:00"
    assert out["tagged"] == ["wmOffline1", lapsed] and out["sent"] == [lapsed] and out["failed"] == 0
    assert g.wecom_tags("zhangsan", lapsed) == [CHURN_TAG]
    assert g.wecom_tags("lisi", recent) == [] and g.wecom_tags("lisi", tagged) == []
    (task,) = templates(g)
    assert task["sender"] == "zhangsan" and task["external_userid"] == [lapsed] and task["fail_list"] == []
    coupon = "WB" + hashlib.sha256(f"change-me-winback:{lapsed}:2026-W48".encode()).hexdigest()[:10].upper()
    assert task["text"]["content"] == f"Lucy，好久不见！送您一张 50 元回归券：{coupon}，30 天内有效。"
    assert g.tables.get("customers", key_value=lapsed)["tags"] == ["展会", "流失风险"]
    assert g.tables.get("customers", key_value="wmOffline1")["tags"] == ["流失风险"]

    again = g.run("scrm-churn-winback", MONDAY)  # re-run (or next week): already tagged, nothing sent twice
    assert again["status"] == "succeeded" and again["output"]["sent"] == [] and len(templates(g)) == 1


def test_an_unreachable_customer_is_reported_not_sent(gallery: Gallery) -> None:
    g = gallery
    gone = g.add_wecom_customer("zhangsan", "Gone")
    g.add_customer(gone, "Gone", owner="zhangsan", last_order_at="2026-01-01T00:00:00+08:00")
    g.wecom.corp().follows.pop(("zhangsan", gone))  # the customer deleted the member meanwhile
    g.deploy("scrm-churn-winback")
    run = g.run("scrm-churn-winback", MONDAY)
    assert run["status"] == "succeeded", run["error"]
    # WeCom refuses to tag a customer who no longer follows the member: that customer fails, the run goes on
    assert run["output"]["sent"] == [] and run["output"]["failed"] == 1, (run["output"], run.get("steps"))
    assert templates(g) == []
