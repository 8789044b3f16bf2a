"""`email.new_email`: the IMAP poll trigger driven by the real scheduler against the sandbox's
IMAP server, fed by its SMTP server; and the fake IMAP server's own strictness."""
from __future__ import annotations

import asyncio
import imaplib
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any

import pytest

from api.scheduler import PollContext, Scheduler
from connectors.email import connector as email_connector
from connectors.email.sandbox import PASSWORD, USER, FakeMailServer
from connectors.email.trigger import new_email
from connectors.sdk.triggers import poll_once
from engine.runtime import FlowEngine
from tests.email_support import engine, flow, mail, mail_server, send_step  # noqa: F401


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()

    def __call__(self) -> float:
        return self.now


def _raw(subject: str, sender: str = "orders@shop.cn") -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, USER, subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@shop.cn>"
    message.set_content(f"body of {subject}")
    return bytes(message)


def _activate(engine: FlowEngine, args: dict[str, Any] | None = None, flow_id: str = "inbox") -> None:
    engine.flows.save({
        "id": flow_id, "name": "new mail",
        "trigger": {"type": "poll", "source": "email.new_email", "connection": "mailbox", "interval": 60, "args": args or {}},
        "steps": [{"id": "out", "type": "set", "value": {"subject": {"$expr": "trigger.subject"}, "key": {"$expr": "trigger.key"},
                                                          "from": {"$expr": "trigger.from.address"},
                                                          "files": {"$expr": "trigger.attachments[].filename"}}}],
    }, "test")
    engine.flows.set_active(flow_id, True, "test")


async def _poll(scheduler: Scheduler, clock: Clock) -> None:
    clock.now += 60
    await scheduler.run_once()
    for entry in scheduler.polls.values():
        if entry.task is not None:
            await entry.task
    while scheduler.runs:  # gather yields, so finished runs leave the set
        await asyncio.gather(*list(scheduler.runs))
    scheduler.engine.flush()


def _subjects(engine: FlowEngine, flow_id: str = "inbox") -> list[str]:
    records = [engine.runs.get(r.id) for r in engine.runs.list(flow_id=flow_id, limit=100)]
    assert all(r.status == "succeeded" for r in records), [r.error for r in records]
    return sorted(r.output["subject"] for r in records)


async def test_sent_mail_starts_runs_once_and_a_rebuilt_mailbox_is_not_replayed(engine: FlowEngine, mail: FakeMailServer) -> None:
    mail.store.append(_raw("old news"))  # history before the flow: seeds the cursor, never runs
    _activate(engine)
    clock = Clock()
    scheduler = Scheduler(engine, clock=clock)
    await _poll(scheduler, clock)
    assert _subjects(engine) == []

    for subject in ("order A-1", "order A-2"):  # through the connector's SMTP action, into the IMAP INBOX
        sent = await engine.run(engine.compile(flow(send_step(to=[USER], subject=subject))))
        assert sent.status == "succeeded", sent.error
    await _poll(scheduler, clock)
    assert _subjects(engine) == ["order A-1", "order A-2"]
    await _poll(scheduler, clock)
    assert _subjects(engine) == ["order A-1", "order A-2"]  # nothing new: no run

    validity = mail.store.rebuild()  # every UID reassigned under a new UIDVALIDITY
    await _poll(scheduler, clock)
    assert _subjects(engine) == ["order A-1", "order A-2"]  # not replayed
    mail.store.append(_raw("order A-3"), internal_date=time.time() + 5)
    await _poll(scheduler, clock)
    assert _subjects(engine) == ["order A-1", "order A-2", "order A-3"]
    mail.store.append(_raw("order A-4"), internal_date=time.time() + 6)
    await _poll(scheduler, clock)
    records = [engine.runs.get(r.id).output for r in engine.runs.list(flow_id="inbox", limit=100)]
    assert {r["subject"]: r["key"] for r in records}["order A-4"] == f"{validity}:5"
    assert _subjects(engine) == ["order A-1", "order A-2", "order A-3", "order A-4"]
    await scheduler.stop()


async def test_search_criteria_and_the_per_poll_limit(engine: FlowEngine, mail: FakeMailServer) -> None:
    mail.store.append(_raw("seed", sender="orders@shop.cn"))
    _activate(engine, {"search": 'FROM "orders@shop.cn"', "limit": 2})
    clock = Clock()
    scheduler = Scheduler(engine, clock=clock)
    await _poll(scheduler, clock)
    for subject, sender in (("a", "orders@shop.cn"), ("spam", "ads@spam.cn"), ("b", "orders@shop.cn"), ("c", "orders@shop.cn")):
        mail.store.append(_raw(subject, sender=sender))
    await _poll(scheduler, clock)
    assert _subjects(engine) == ["a", "b"]  # oldest first, at most two per poll
    await _poll(scheduler, clock)
    assert _subjects(engine) == ["a", "b", "c"]
    await scheduler.stop()


async def test_the_item_carries_decoded_headers_bodies_and_attachments(engine: FlowEngine, mail: FakeMailServer) -> None:
    connection = mail.connection()
    ctx = PollContext("direct", email_connector, {"include_attachments": True}, connection, "mailbox", engine)
    mail.store.append(_raw("seed"))
    assert await poll_once(new_email, "poll:direct", engine.db, ctx) == []
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "订单中心 <orders@shop.cn>", f"Robot <{USER}>", "新订单 A-1024"
    message.set_content("客户：张三")
    message.add_alternative("<p>客户：<b>张三</b></p>", subtype="html")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="订单.pdf")
    mail.store.append(bytes(message))
    [item] = await poll_once(new_email, "poll:direct", engine.db, ctx)
    assert item["from"] == {"name": "订单中心", "address": "orders@shop.cn"} and item["to"] == [{"name": "Robot", "address": USER}]
    assert item["subject"] == "新订单 A-1024" and item["text"].strip() == "客户：张三" and "<b>张三</b>" in item["html"]
    assert item["attachments"] == [{"filename": "订单.pdf", "content_type": "application/pdf", "size": 8,
                                    "content_base64": "JVBERi0xLjQ="}]
    assert item["key"] == f"{item['uidvalidity']}:{item['uid']}" and item["mailbox"] == "INBOX"


@pytest.mark.parametrize(("overrides", "args", "kind"), [
    ({"password": "wrong"}, {}, "PermissionDenied"),
    ({}, {"mailbox": "Archive"}, "NotFound"),
    ({"ca_cert": None}, {}, "ConnectorError"),
])
async def test_poll_errors_are_typed(engine: FlowEngine, mail: FakeMailServer, overrides: dict, args: dict, kind: str) -> None:
    ctx = PollContext("errors", email_connector, args, mail.connection(**overrides), "mailbox", engine)
    with pytest.raises(Exception) as caught:
        await poll_once(new_email, "poll:errors", engine.db, ctx)
    assert getattr(caught.value, "kind", None) == kind, caught.value
    assert "wrong" not in str(caught.value)


def test_fake_imap_server_follows_rfc3501(mail: FakeMailServer) -> None:
    context = __import__("ssl").create_default_context(cadata=mail.certificates.ca_pem)
    with imaplib.IMAP4_SSL("127.0.0.1", mail.imap_port, ssl_context=context, timeout=10) as client:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(USER, "wrong")
        client.login(USER, PASSWORD)
        assert client.select('"Nope"')[0] == "NO"
        one, two, three = (mail.store.append(_raw(subject)) for subject in ("one", "two", "three"))
        status, _ = client.select("INBOX", readonly=True)
        assert status == "OK" and int(client.response("UIDVALIDITY")[1][0]) == mail.store.folders["INBOX"].uidvalidity
        # "*" is the highest UID and ranges are unordered, so n:* matches the newest message even when n is past it
        assert client.uid("SEARCH", "UID", f"{three + 10}:*")[1] == [str(three).encode()]
        assert client.uid("SEARCH", "UID", f"{one}:{two}")[1] == [f"{one} {two}".encode()]
        assert client.uid("SEARCH", "SUBJECT", '"two"')[1] == [str(two).encode()]
        status, data = client.uid("FETCH", str(two), "(UID BODY.PEEK[])")
        assert status == "OK" and b"Subject: two" in data[0][1]
        with pytest.raises(imaplib.IMAP4.error, match="not supported"):
            client.uid("SEARCH", "LARGER", "10")
