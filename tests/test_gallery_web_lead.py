"""Gallery flow 2 end to end: flows/scrm-web-lead.json takes website form posts through the
service's webhook (answering the form), sends the confirmation email through a real local SMTP
server, creates the lead and a follow-up task in the fake Fxiaoke for the rep whose turn it is
and tells the rep on the fake DingTalk; flows/scrm-lead-followup-reminder.json, run as the
hourly schedule would, reminds reps of leads not followed up within 24 h, once."""
from __future__ import annotations

from datetime import datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

from tests.gallery_support import Gallery, gallery, lead_gallery  # noqa: F401  (fixtures)

REPS = [
    {"userid": "lilei", "name": "李雷", "mobile": "13800000001", "dingtalk_userid": "user001", "active": True},
    {"userid": "hanmeimei", "name": "韩梅梅", "mobile": "13800000002", "dingtalk_userid": "user002", "active": True},
    {"userid": "away", "name": "休假", "mobile": "13800000009", "dingtalk_userid": "user003", "active": False},
]


def form(form_id: str, **fields: Any) -> dict[str, Any]:
    """A website form submission."""
    return {"form_id": form_id, "name": "王小明", "mobile": "13912345678", "email": "xiaoming@example.cn",
            "company": "杭州明远贸易", "message": "想了解报价", **fields}


def notices(g: Gallery, userid: str) -> list[dict[str, Any]]:
    """The DingTalk work notices a user received from the fake."""
    assert g.dingtalk is not None
    return g.dingtalk.inbox.get(userid, [])


def test_a_form_lead_is_confirmed_assigned_created_and_announced(lead_gallery: Gallery) -> None:
    g = lead_gallery
    for rep in REPS:
        g.tables.insert("sales_reps", rep)
    g.deploy("scrm-web-lead")

    answer = g.post_hook("forms/web-lead", form("F-1"))
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["ok"] is True and result["rep"] == "lilei" and result["confirmation_sent"] is True
    assert g.mail is not None
    (mail,) = g.mail.delivered
    message = message_from_bytes(mail.raw, policy=policy.default)
    assert mail.rcpt_tos == ["xiaoming@example.cn"] and message["Subject"] == "我们已收到您的咨询"
    assert "我们的顾问 李雷 会在 24 小时内与您联系" in message.get_body(("plain",)).get_content()
    lead = g.fxiaoke.records["LeadsObj"][result["crm_lead_id"]]
    assert (lead["name"], lead["mobile"], lead["owner"]) == ("王小明", "13912345678", ["FSUID_LILEI"])
    (task,) = [r for r in g.fxiaoke.records["ActiveRecordObj"].values()]
    assert task["owner"] == ["FSUID_LILEI"] and task["active_record_content"].startswith("请在 24 小时内联系 王小明")
    row = g.tables.get("web_leads", key_value="F-1")
    assert (row["status"], row["rep_userid"], row["crm_lead_id"], row["confirmation_sent"]) == ("assigned", "lilei", lead["_id"], True)
    (notice,) = notices(g, "user001")
    assert "王小明" in str(notice)

    second = g.post_hook("forms/web-lead", form("F-2", name="赵敏", email="", mobile="13700000000")).json()
    assert second["ok"] is True and second["rep"] == "hanmeimei" and second["confirmation_sent"] is False
    assert g.fxiaoke.records["LeadsObj"][second["crm_lead_id"]]["owner"] == ["FSUID_HANMEIMEI"]
    assert len(g.mail.delivered) == 1 and len(notices(g, "user002")) == 1


def test_invalid_forms_are_answered_and_go_no_further(lead_gallery: Gallery) -> None:
    g = lead_gallery
    g.tables.insert("sales_reps", REPS[0])
    g.deploy("scrm-web-lead")
    bad = g.post_hook("forms/web-lead", form("F-3", name="  ", mobile="12345", email="not-an-address")).json()
    assert bad == {"ok": False, "errors": ["name is required", "mobile must be 11 digits starting with 1",
                                           "email is not a valid address"]}
    assert g.post_hook("forms/web-lead", form("F-4"), token="wrong").status_code == 401
    assert g.mail is not None and g.mail.delivered == []
    assert len(g.fxiaoke.records["LeadsObj"]) == 1  # the seeded one
    assert g.rows("web_leads") == [] and notices(g, "user001") == []


def test_reps_are_reminded_once_of_leads_not_followed_up_in_24_hours(lead_gallery: Gallery) -> None:
    g = lead_gallery
    for rep in REPS:
        g.tables.insert("sales_reps", rep)
    g.deploy("scrm-web-lead")
    g.deploy("scrm-lead-followup-reminder")
    first = g.post_hook("forms/web-lead", form("F-5")).json()
    g.post_hook("forms/web-lead", form("F-6", name="赵敏", mobile="13700000000"))
    assigned = datetime.fromisoformat(g.tables.get("web_leads", key_value="F-6")["assigned_at"])

    def hourly(after: timedelta) -> dict[str, Any]:
        at = (assigned + after).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return g.run("scrm-lead-followup-reminder", {"scheduled_at": at.isoformat()})

    early = hourly(timedelta(hours=20))
    assert early["status"] == "succeeded" and early["output"]["reminded"] == [] and early["output"]["followed_up"] == []

    g.fxiaoke.records["LeadsObj"][first["crm_lead_id"]]["leads_status"] = "4"  # Li Lei followed up F-5 in the CRM
    late = hourly(timedelta(hours=24))
    assert late["status"] == "succeeded", late["error"]
    assert late["output"]["reminded"] == ["F-6"] and late["output"]["followed_up"] == ["F-5"]
    reminders = [n for n in notices(g, "user002") if "未跟进" in str(n)]
    assert len(reminders) == 1 and "赵敏" in str(reminders[0])
    assert g.tables.get("web_leads", key_value="F-6")["status"] == "reminded"
    assert g.tables.get("web_leads", key_value="F-5")["status"] == "followed_up"

    again = hourly(timedelta(hours=25))  # the next hour: nobody is reminded twice
    assert again["output"]["reminded"] == [] and len([n for n in notices(g, "user002") if "未跟进" in str(n)]) == 1
