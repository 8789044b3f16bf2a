"""Gallery flows 4 and 5 end to end: flows/scrm-campaign-push.json sends a campaign to a segment
through the fake WeCom with one tracked link per customer; customers follow their links through
the service's public GET /r/{code} (clicks counted, 302 to the registered target, never an open
redirect); flows/scrm-campaign-conversion.json takes conversion webhooks; the campaigns table ends
with the click-through and conversion rates."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from tests.gallery_support import Gallery, gallery  # noqa: F401  (fixture)

TARGET = "https://shop.example.com/double11?from=wecom"
CAMPAIGN = {"campaign_id": "double11-vip", "name": "Double 11 for VIPs", "segment_id": "vip",
            "message": "{name}，双十一 VIP 专享价已开启：{link}", "target_urls": [TARGET], "sent": 0}


def setup_campaign(g: Gallery) -> dict[str, str]:
    """A VIP segment of three customers (two reachable in WeCom) and one customer outside it."""
    g.tables.insert("segments", {"segment_id": "vip", "name": "VIP", "where": {"tags": {"contains": "vip"}}})
    g.tables.insert("campaigns", CAMPAIGN)
    people = {"lucy": g.add_wecom_customer("zhangsan", "Lucy"), "mark": g.add_wecom_customer("lisi", "Mark")}
    g.add_customer(people["lucy"], "Lucy", owner="zhangsan", tags=["vip"])
    g.add_customer(people["mark"], "Mark", owner="lisi", tags=["vip", "repeat"])
    g.add_customer("wmOffline", "Walk-in", source="offline", tags=["vip"])
    g.add_customer("wmRegular", "Regular", owner="lisi", tags=["new"])
    return people


def campaign(g: Gallery) -> dict[str, Any]:
    """The double11-vip row of the campaigns table."""
    return g.tables.get("campaigns", key_value="double11-vip")


def link_code(g: Gallery, ext: str) -> str:
    """The /r/ code in the message the customer got."""
    for task in g.wecom.corp().msg_templates.values():
        if task["external_userid"] == [ext]:
            found = re.search(r"https://flowlink\.example\.com/r/([A-Za-z0-9_-]+)$", task["text"]["content"])
            assert found, task["text"]["content"]
            return found.group(1)
    raise AssertionError(f"no message to {ext}")


def click(client: TestClient, code: str) -> Any:
    """Follow a tracked link as a customer would: no login, no redirect following."""
    return client.get(f"/r/{code}", follow_redirects=False, headers={"Authorization": ""})


def test_push_click_and_convert(gallery: Gallery) -> None:
    g = gallery
    people = setup_campaign(g)
    g.deploy("scrm-campaign-push", activate=False)
    g.deploy("scrm-campaign-conversion")

    run = g.run("scrm-campaign-push", {"campaign_id": "double11-vip"})
    assert run["status"] == "succeeded", run["error"]
    assert (run["output"]["audience"], run["output"]["sent"], run["output"]["failed"]) == (3, 2, 1)
    tasks = list(g.wecom.corp().msg_templates.values())
    assert sorted(t["sender"] for t in tasks) == ["lisi", "zhangsan"]
    assert all(t["text"]["content"].startswith(("Lucy，双十一", "Mark，双十一")) for t in tasks)
    deliveries = {d["external_userid"]: d for d in g.rows("campaign_deliveries")}
    assert {k: d["status"] for k, d in deliveries.items()} == {people["lucy"]: "sent", people["mark"]: "sent", "wmOffline": "failed"}
    assert (campaign(g)["sent"], campaign(g)["failed"]) == (2, 1)

    rerun = g.run("scrm-campaign-push", {"campaign_id": "double11-vip"})  # nobody gets it twice
    assert (rerun["output"]["sent"], rerun["output"]["skipped"]) == (0, 3) and len(g.wecom.corp().msg_templates) == 2

    lucy = link_code(g, people["lucy"])
    assert deliveries[people["lucy"]]["link_code"] == lucy
    for _ in range(2):
        answer = click(g.client, lucy)
        assert answer.status_code == 302 and answer.headers["location"] == TARGET
    click(g.client, link_code(g, people["mark"]))
    stats = campaign(g)
    assert (stats["clicks"], stats["unique_clicks"], stats["click_rate"]) == (3, 2, 1.0)
    assert g.tables.get("tracked_links", key_value=lucy)["clicks"] == 2
    assert {r["external_userid"]: r["clicks"] for r in g.rows("campaign_clicks")} == {people["lucy"]: 2, people["mark"]: 1}

    conversion = {"campaign_id": "double11-vip", "external_userid": people["lucy"], "order_no": "SO-1", "amount": 699}
    assert g.post_hook("scrm/conversions", conversion).status_code in (200, 202)
    g.post_hook("scrm/conversions", conversion)  # re-sent: dropped by the order number
    g.finished("scrm-campaign-conversion", 1)
    g.post_hook("scrm/conversions", {**conversion, "order_no": "SO-2", "amount": 101})  # a repeat order, later
    runs = g.finished("scrm-campaign-conversion", 2)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"], [r["error"] for r in runs]
    # exactly one of the two orders is the customer's conversion (the first)
    assert [r["output"]["new_conversion"] for r in runs] == [True, False]
    stats = campaign(g)
    assert (stats["conversions"], stats["revenue"], stats["conversion_rate"], stats["click_rate"]) == (1, 800, 0.5, 1.0)
    (converted,) = g.rows("campaign_conversions")
    assert (converted["order_no"], converted["amount"]) == ("SO-1", 800)


def test_the_redirect_is_never_open(gallery: Gallery) -> None:
    g = gallery
    setup_campaign(g)
    assert click(g.client, "not-a-real-code-0000000000").status_code == 404
    assert click(g.client, "short").status_code == 404
    # a link row pointing somewhere the campaign did not register (written by hand or by a buggy flow)
    g.tables.insert("tracked_links", {"code": "evil0000000000000000", "campaign_id": "double11-vip",
                                      "external_userid": "wmX", "url": "https://evil.example.com/phish"})
    answer = click(g.client, "evil0000000000000000")
    assert answer.status_code == 404 and "location" not in answer.headers
    assert g.tables.get("tracked_links", key_value="evil0000000000000000")["clicks"] is None
    assert campaign(g)["clicks"] is None


def test_links_made_through_the_api(gallery: Gallery) -> None:
    g = gallery
    setup_campaign(g)
    body = {"campaign_id": "double11-vip", "external_userid": "wmOffline", "url": TARGET}
    made = g.client.post("/api/links", json=body)
    assert made.status_code == 201, made.text
    link = made.json()
    assert link["path"] == f"/r/{link['code']}" and link["short_url"].endswith(link["path"]) and len(link["code"]) >= 24
    assert g.client.post("/api/links", json=body).json()["code"] == link["code"]  # one per customer, campaign and target
    for url in ("https://evil.example.com/", "javascript:alert(1)", "//evil.example.com", TARGET + "&x=1"):
        bad = g.client.post("/api/links", json={**body, "url": url})
        assert bad.status_code == 422, url
    assert g.client.post("/api/links", json={**body, "campaign_id": "nope"}).status_code == 404
    assert g.client.post("/api/links", json=body, headers={"Authorization": ""}).status_code == 401
    assert click(g.client, link["code"]).headers["location"] == TARGET
    # the campaign drops the target: its links stop redirecting
    g.tables.update("campaigns", where={"campaign_id": "double11-vip"}, values={"target_urls": ["https://shop.example.com/other"]})
    assert click(g.client, link["code"]).status_code == 404


def test_concurrent_clicks_are_all_counted_and_unique_per_customer(gallery: Gallery) -> None:
    g = gallery
    setup_campaign(g)
    codes = [g.client.post("/api/links", json={"campaign_id": "double11-vip", "external_userid": ext, "url": TARGET}).json()["code"]
             for ext in ("wmA", "wmB")]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda i: click(g.client, codes[i % 2]).status_code, range(12)))
    assert answers == [302] * 12
    stats = campaign(g)
    assert (stats["clicks"], stats["unique_clicks"]) == (12, 2)
    assert sorted(r["clicks"] for r in g.rows("campaign_clicks")) == [6, 6]


def test_an_incomplete_campaign_or_a_segment_over_the_limit_sends_nothing(gallery: Gallery) -> None:
    g = gallery
    setup_campaign(g)
    g.tables.insert("campaigns", {"campaign_id": "draft", "name": "Draft", "segment_id": "vip", "message": "{name}: {link}"})
    g.deploy("scrm-campaign-push", activate=False, max_audience=2)
    run = g.run("scrm-campaign-push", {"campaign_id": "draft"})
    assert run["status"] == "failed" and run["error"]["type"] == "CampaignIncomplete"
    too_many = g.run("scrm-campaign-push", {"campaign_id": "double11-vip"})  # 3 VIPs, vars.max_audience 2
    assert too_many["status"] == "failed" and too_many["error"]["type"] == "AudienceTooLarge"
    assert g.rows("campaign_deliveries") == [] and g.wecom.corp().msg_templates == {}
