"""Gallery flow 4, SMS variant (flows/scrm-campaign-push-sms.json), end to end against the fake
Alibaba Cloud SMS: a segment's customers with a mobile get the campaign template with their own
tracked link, which the service's /r/{code} redirects and counts; re-runs send nothing twice."""
from __future__ import annotations

import re

from tests.gallery_support import Gallery, gallery, sms_gallery  # noqa: F401  (fixtures)

TARGET = "https://shop.example.com/double11"
TEMPLATE = "SMS_900000001"


def test_sms_campaign_with_tracked_links(sms_gallery: Gallery) -> None:
    g = sms_gallery
    assert g.sms is not None
    g.sms.templates[TEMPLATE] = "${name}，双十一 VIP 专享：${link}"  # approved in the SMS console
    g.tables.insert("segments", {"segment_id": "shanghai", "name": "Shanghai", "where": {"city": "Shanghai"}})
    g.tables.insert("campaigns", {"campaign_id": "d11-sms", "name": "Double 11 SMS", "segment_id": "shanghai",
                                  "sms_sign_name": "阿里云短信测试", "sms_template_code": TEMPLATE, "target_urls": [TARGET]})
    g.add_customer("wmA", "Lucy", city="Shanghai", mobile="13900000001")
    g.add_customer("wmB", "Mark", city="Shanghai", mobile="13900000002")
    g.add_customer("wmC", "No phone", city="Shanghai")
    g.add_customer("wmD", "Beijing", city="Beijing", mobile="13900000004")
    g.deploy("scrm-campaign-push-sms", activate=False)

    run = g.run("scrm-campaign-push-sms", {"campaign_id": "d11-sms"})
    assert run["status"] == "succeeded", run["error"]
    assert (run["output"]["audience"], run["output"]["sent"], run["output"]["failed"]) == (2, 2, 0)
    assert g.sms.calls == {"SendBatchSms": 1}
    texts = {m.phone: m.content for m in g.sms.sent}
    assert set(texts) == {"13900000001", "13900000002"}
    code = re.search(r"https://flowlink\.example\.com/r/([A-Za-z0-9_-]+)$", texts["13900000001"]).group(1)  # type: ignore[union-attr]
    assert texts["13900000001"].startswith("【阿里云短信测试】Lucy，双十一 VIP 专享：")
    deliveries = {d["external_userid"]: d for d in g.rows("campaign_deliveries")}
    assert {k: (d["status"], d["channel"]) for k, d in deliveries.items()} == {"wmA": ("sent", "sms"), "wmB": ("sent", "sms")}
    assert deliveries["wmA"]["link_code"] == code and deliveries["wmA"]["message_id"] == g.sms.sent[0].biz_id

    answer = g.client.get(f"/r/{code}", follow_redirects=False, headers={"Authorization": ""})
    assert answer.status_code == 302 and answer.headers["location"] == TARGET
    campaign = g.tables.get("campaigns", key_value="d11-sms")
    assert (campaign["sent"], campaign["unique_clicks"], campaign["click_rate"]) == (2, 1, 0.5)

    again = g.run("scrm-campaign-push-sms", {"campaign_id": "d11-sms"})
    assert (again["output"]["sent"], again["output"]["skipped"]) == (0, 2) and len(g.sms.sent) == 2


def test_a_refused_batch_is_recorded_as_failed(sms_gallery: Gallery) -> None:
    g = sms_gallery
    g.tables.insert("segments", {"segment_id": "all", "name": "All", "where": {"source": "wecom"}})
    g.tables.insert("campaigns", {"campaign_id": "bad-template", "name": "Unapproved", "segment_id": "all",
                                  "sms_sign_name": "阿里云短信测试", "sms_template_code": "SMS_NOT_APPROVED", "target_urls": [TARGET]})
    g.add_customer("wmA", "Lucy", mobile="13900000001")
    g.deploy("scrm-campaign-push-sms", activate=False)
    run = g.run("scrm-campaign-push-sms", {"campaign_id": "bad-template"})
    assert run["status"] == "succeeded", run["error"]
    assert (run["output"]["sent"], run["output"]["failed"]) == (0, 1)
    (delivery,) = g.rows("campaign_deliveries")
    assert delivery["status"] == "failed" and "SMS_TEMPLATE_ILLEGAL" in delivery["error"]
    assert g.tables.get("campaigns", key_value="bad-template")["failed"] == 1
