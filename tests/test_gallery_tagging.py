"""Gallery flow 3, flows/scrm-auto-tagging.json, end to end: orders posted to the service's
webhook update the customer's spend and order count, the rules of the tag_rules table (data,
edited between orders) tag the customer in the fake WeCom and set the tier in the fake HubSpot."""
from __future__ import annotations

from typing import Any

from tests.gallery_support import CHURN_TAG, Gallery, gallery  # noqa: F401  (fixture)

RULES = [
    {"rule_id": "big-spender", "label": "高消费", "wecom_tag_id": "etTagVip", "crm_tier": "gold", "min_spend": 5000,
     "priority": 30, "active": True},
    {"rule_id": "repeat", "label": "复购", "crm_tier": "silver", "min_orders": 2, "priority": 20, "active": True},
    {"rule_id": "skincare", "label": "护肤", "wecom_tag_id": "etTagExpo", "category": "skincare", "priority": 10, "active": True},
    {"rule_id": "paused", "label": "停用", "wecom_tag_id": "etTagAd", "min_spend": 0, "priority": 99, "active": False},
]


def order(no: str, ext: str, amount: float, category: str) -> dict[str, Any]:
    """A paid order as the mini-program posts it."""
    return {"order_no": no, "external_userid": ext, "amount": amount, "category": category,
            "paid_at": "2026-11-23T10:15:00+08:00"}


def test_orders_tag_by_table_rules_in_wecom_the_crm_and_the_table(gallery: Gallery) -> None:
    g = gallery
    for rule in RULES:
        g.tables.insert("tag_rules", rule)
    ext = g.add_wecom_customer("zhangsan", "Lucy")
    g.add_customer(ext, "Lucy", owner="zhangsan", tags=["展会", "流失风险"], spend=0, order_count=0)
    g.wecom.corp().follows[("zhangsan", ext)]["tag_id"] = [CHURN_TAG]
    g.deploy("scrm-auto-tagging")

    first = g.post_hook("scrm/orders", order("MP-1", ext, 1200, "skincare"))
    assert first.status_code in (200, 202), first.text
    (run,) = g.finished("scrm-auto-tagging", 1)
    assert run["status"] == "succeeded", run["error"]
    assert run["output"]["labels"] == ["护肤"] and run["output"]["tier"] is None
    assert g.wecom_tags("zhangsan", ext) == ["etTagExpo"]  # the churn-risk tag is gone: the customer ordered
    contact = g.hubspot.records["contacts"][run["output"]["crm_contact"]]["properties"]
    assert contact["erp_customer_id"] == ext and float(contact["total_spend"]) == 1200 and not contact.get("customer_tier")

    # a re-sent order is dropped by the webhook's dedupe key: counted once
    g.post_hook("scrm/orders", order("MP-1", ext, 1200, "skincare"))
    # ops staff lower the big-spender threshold in the table; the flow is unchanged
    g.tables.update("tag_rules", where={"rule_id": "big-spender"}, values={"min_spend": 4000})
    g.post_hook("scrm/orders", order("MP-2", ext, 3000, "shoes"))
    runs = g.finished("scrm-auto-tagging", 2)
    assert len(runs) == 2 and runs[1]["status"] == "succeeded", runs[1]["error"]
    out = runs[1]["output"]
    assert (out["spend"], out["orders"]) == (4200, 2)
    assert out["labels"] == ["高消费", "复购"] and out["tier"] == "gold"
    assert g.wecom_tags("zhangsan", ext) == ["etTagExpo", "etTagVip"]
    contact = g.hubspot.records["contacts"][out["crm_contact"]]["properties"]
    assert contact["customer_tier"] == "gold" and float(contact["total_spend"]) == 4200
    assert len(g.hubspot.records["contacts"]) == 2  # the seeded contact and this one: upserted, not duplicated
    row = g.tables.get("customers", key_value=ext)
    assert (row["spend"], row["order_count"], row["state"]) == (4200, 2, "active")
    assert row["tags"] == ["展会", "护肤", "高消费", "复购"]


def test_an_unknown_customer_or_a_wrong_token_tags_nothing(gallery: Gallery) -> None:
    g = gallery
    g.tables.insert("tag_rules", RULES[0])
    g.deploy("scrm-auto-tagging")
    assert g.post_hook("scrm/orders", order("MP-9", "wmNobody", 9000, "x"), token="wrong").status_code == 401
    g.post_hook("scrm/orders", order("MP-10", "wmNobody", 9000, "x"))
    (run,) = g.finished("scrm-auto-tagging", 1)
    assert run["status"] == "succeeded" and run["output"]["tagged"] is False
    assert g.rows("customers") == [] and g.hubspot.records["contacts"].keys() == {"1001"}
