"""Gallery flow 1, flows/scrm-birthday-care.json (WeCom), end to end: the 09:00 run (with the
scheduler's payload) greets today's birthdays from their owner with a coupon through the fake
WeCom, records each greeting before sending, and never greets anyone twice in a year, even when
re-run or run twice at once."""
from __future__ import annotations

import hashlib
from typing import Any

from tests.gallery_support import Gallery, gallery  # noqa: F401  (fixture)

MAY_12 = {"scheduled_at": "2026-05-12T09:00:00+08:00", "fired_at": "2026-05-12T01:00:00.040000+00:00"}


def coupon(ext: str, year: int) -> str:
    """The coupon the flow derives for a customer and year (vars.coupon_salt is the shipped default)."""
    return "BD" + hashlib.sha256(f"change-me-birthday:{ext}:{year}".encode()).hexdigest()[:10].upper()


def templates(g: Gallery) -> list[dict[str, Any]]:
    """The mass-send tasks the fake WeCom holds."""
    return list(g.wecom.corp().msg_templates.values())


def test_todays_birthdays_get_one_greeting_with_a_coupon_a_year(gallery: Gallery) -> None:
    g = gallery
    lucy = g.add_wecom_customer("zhangsan", "Lucy")
    g.add_customer(lucy, "Lucy", owner="zhangsan", birthday="1990-05-12")
    g.add_customer("wmNoOwner", "Walk-in", source="offline", birthday="1985-05-12")
    g.add_customer("wmJune", "June", owner="lisi", birthday="1992-06-01")
    g.add_customer("wmLost", "Lost", owner="lisi", state="lost", birthday="1988-05-12")
    g.deploy("scrm-birthday-care")

    run = g.run("scrm-birthday-care", MAY_12)
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == {"date": "2026-05-12", "sent": [lucy], "failed": ["wmNoOwner"], "skipped": []}
    (task,) = templates(g)
    assert task["sender"] == "zhangsan" and task["external_userid"] == [lucy]
    assert task["text"]["content"] == f"Lucy，生日快乐！🎂 送您一张生日专享券：{coupon(lucy, 2026)}，本月内下单立减 100 元。"
    rows = {r["external_userid"]: r for r in g.rows("birthday_greetings")}
    assert (rows[lucy]["status"], rows[lucy]["year"], rows[lucy]["coupon_code"]) == ("sent", 2026, coupon(lucy, 2026))
    assert rows[lucy]["message_id"] == next(iter(g.wecom.corp().msg_templates))
    assert rows["wmNoOwner"]["status"] == "failed" and "no owner" in rows["wmNoOwner"]["error"]

    again = g.run("scrm-birthday-care", MAY_12)  # re-run the same day: nobody twice
    assert again["status"] == "succeeded" and again["output"]["skipped"] == [lucy, "wmNoOwner"]
    assert again["output"]["sent"] == [] and len(templates(g)) == 1

    next_year = g.run("scrm-birthday-care", {"scheduled_at": "2027-05-12T09:00:00+08:00"})
    assert next_year["output"]["sent"] == [lucy] and len(templates(g)) == 2
    assert coupon(lucy, 2027) in templates(g)[1]["text"]["content"]


def test_two_runs_at_once_greet_once(gallery: Gallery) -> None:
    g = gallery
    lucy = g.add_wecom_customer("zhangsan", "Lucy")
    g.add_customer(lucy, "Lucy", owner="zhangsan", birthday="2000-11-23")
    g.deploy("scrm-birthday-care")
    payload = {"scheduled_at": "2026-11-23T09:00:00+08:00"}
    for _ in range(2):  # e.g. two service processes that both fired the schedule
        assert g.client.post("/api/flows/scrm-birthday-care/runs", json=payload).status_code == 202
    runs = g.finished("scrm-birthday-care", 2)
    assert [r["status"] for r in runs] == ["succeeded"] * 2
    assert sorted(len(r["output"]["sent"]) for r in runs) == [0, 1]
    assert len(templates(g)) == 1 and len(g.rows("birthday_greetings")) == 1


def test_the_day_is_taken_in_shanghai(gallery: Gallery) -> None:
    g = gallery
    g.add_customer("wmA", "A", birthday="1990-05-13")
    g.deploy("scrm-birthday-care")
    late = g.run("scrm-birthday-care", {"scheduled_at": "2026-05-12T16:30:00+00:00"})  # 00:30 on the 13th in Shanghai
    assert late["output"]["date"] == "2026-05-13" and late["output"]["failed"] == ["wmA"]
