"""`email.send_email` in flows against the sandbox's real SMTP servers (aiosmtpd, STARTTLS/TLS + AUTH)."""
from __future__ import annotations

import base64
from typing import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.email import connector as email_connector
from connectors.email.sandbox import PASSWORD, USER, FakeMailServer
from connectors.sdk.contract import check_connector
from connectors.sdk.sandbox import SandboxServer
from engine.runtime import FlowEngine
from tests.email_support import caught, engine, flow, mail, mail_server, parsed, sandbox_url, send_step  # noqa: F401

PDF = b"%PDF-1.4\n%\xc4\xe5\xf2\xe5\xeb\n"


@pytest.fixture()
def files() -> Iterator[str]:
    async def serve(request: Request) -> Response:
        if request.path_params["name"] != "menu.png":
            return Response("no such file", status_code=404)
        return Response(b"\x89PNG\r\n\x1a\nfake", media_type="image/png")

    with SandboxServer(Starlette(routes=[Route("/files/{name}", serve)])) as server:
        yield server.base_url


async def test_html_text_attachments_cc_bcc_over_starttls(engine: FlowEngine, mail: FakeMailServer, files: str) -> None:
    step = send_step(
        to=["张三 <zhangsan@example.cn>"], cc=["lisi@example.cn"], bcc=["audit@example.cn"], reply_to=["service@shop.cn"],
        subject="订单 {{ trigger.order }} 已确认", text="您好 {{ trigger.name }}，订单已确认。",
        html="<p>您好 <b>{{ trigger.name }}</b></p>", headers={"X-Order": "{{ trigger.order }}"},
        attachments=[{"filename": "invoice.pdf", "content_base64": base64.b64encode(PDF).decode()},
                     {"filename": "menu.png", "url": f"{files}/files/menu.png"}])
    run = await engine.run(engine.compile(flow(step)), {"order": "A-1024", "name": "张三"})
    assert run.status == "succeeded", run.error
    out = run.output
    assert out["accepted"] == ["zhangsan@example.cn", "lisi@example.cn", "audit@example.cn"] and out["refused"] == {}
    assert out["sender"] == USER and out["subject"] == "订单 A-1024 已确认"

    [delivered] = mail.delivered
    assert delivered.mail_from == USER and delivered.rcpt_tos == out["accepted"]
    message = parsed(delivered.raw)
    assert message["Subject"] == "订单 A-1024 已确认" and message["Message-ID"] == out["message_id"]
    assert str(message["To"]) == "张三 <zhangsan@example.cn>" and message["Cc"] == "lisi@example.cn"
    assert message["Bcc"] is None and message["X-Order"] == "A-1024" and message["Reply-To"] == "service@shop.cn"
    assert message.get_body(("plain",)).get_content().strip() == "您好 张三，订单已确认。"
    assert message.get_body(("html",)).get_content().strip() == "<p>您好 <b>张三</b></p>"
    attached = {part.get_filename(): (part.get_content_type(), part.get_payload(decode=True)) for part in message.iter_attachments()}
    assert attached == {"invoice.pdf": ("application/pdf", PDF), "menu.png": ("image/png", b"\x89PNG\r\n\x1a\nfake")}
    assert len(mail.store.folders["INBOX"].messages) == 1  # delivered where IMAP can see it


async def test_implicit_tls_and_sandbox_discovery(engine: FlowEngine, mail: FakeMailServer, sandbox_url: str) -> None:
    engine.connection_store.put("smtps", "email", mail.connection(smtp_port=mail.smtps_port, smtp_security="ssl"))
    engine.connection_store.put("discovered", "email", {"username": USER, "password": PASSWORD, "base_url": sandbox_url})
    for name in ("smtps", "discovered"):
        run = await engine.run(engine.compile(flow(send_step(connection=name, subject=name))))
        assert run.status == "succeeded", run.error
    assert [parsed(d.raw)["Subject"] for d in mail.delivered] == ["smtps", "discovered"]


async def test_wrong_password_is_permission_denied_and_catchable(engine: FlowEngine, mail: FakeMailServer) -> None:
    engine.connection_store.put("bad", "email", mail.connection(password="wrong"))
    step = {**send_step(connection="bad"), "catch": [{"errors": ["email.535"], "next": "denied"}]}
    run = await engine.run(engine.compile(flow(step, {"id": "denied", "type": "set", "value": {"$expr": "error"}, "end": True})))
    assert run.output["type"] == "PermissionDenied" and run.output["code"] == "535" and "wrong" not in run.output["message"]
    assert mail.delivered == []


async def test_refused_recipients(engine: FlowEngine, mail: FakeMailServer) -> None:
    everyone = await engine.run(engine.compile(flow(*caught(send_step(to=["nobody@flowlink.test"])))))
    assert everyone.output["type"] == "InvalidInput" and everyone.output["code"] == "550"
    assert "nobody@flowlink.test" in everyone.output["message"] and mail.delivered == []

    some = await engine.run(engine.compile(flow(send_step(to=["nobody@flowlink.test", "zhangsan@example.cn"]))))
    assert some.status == "succeeded", some.error
    assert some.output["accepted"] == ["zhangsan@example.cn"]
    assert some.output["refused"]["nobody@flowlink.test"].startswith("550 5.1.1")
    assert mail.delivered[0].rcpt_tos == ["zhangsan@example.cn"]

    mail.smtp_behaviour.full_mailboxes.add("full@example.cn")
    deferred = await engine.run(engine.compile(flow(*caught(send_step(to=["full@example.cn"])))))
    assert deferred.output["type"] == "Transient" and deferred.output["code"] == "452"


async def test_server_replies_are_typed(engine: FlowEngine, mail: FakeMailServer) -> None:
    mail.smtp_behaviour.data_replies.extend(["451 4.3.0 Try again later", "554 5.7.1 Message rejected as spam"])
    later = await engine.run(engine.compile(flow(*caught(send_step()))))
    assert later.output["type"] == "Transient" and later.output["code"] == "451"
    spam = await engine.run(engine.compile(flow(*caught(send_step()))))
    assert spam.output["type"] == "ConnectorError" and spam.output["code"] == "554" and "spam" in spam.output["message"]
    sender = await engine.run(engine.compile(flow(*caught(send_step(from_address="ceo@flowlink.test")))))
    assert sender.output["type"] == "InvalidInput" and sender.output["code"] == "553"
    assert mail.delivered == []


async def test_tls_trust(engine: FlowEngine, mail: FakeMailServer) -> None:
    engine.connection_store.put("no-ca", "email", mail.connection(ca_cert=None))
    engine.connection_store.put("no-verify", "email", mail.connection(ca_cert=None, verify_tls=False))
    untrusted = await engine.run(engine.compile(flow(*caught(send_step(connection="no-ca")))))
    assert untrusted.output["type"] == "ConnectorError" and untrusted.output["code"] == "tls"
    trusting = await engine.run(engine.compile(flow(send_step(connection="no-verify"))))
    assert trusting.status == "succeeded", trusting.error
    assert len(mail.delivered) == 1


@pytest.mark.parametrize(("args", "where"), [
    ({"to": ["not-an-address"]}, "args.to[0]"),
    ({"to": ["a@b.cn", "x@y"]}, "args.to[1]"),
    ({"to": [], "cc": []}, "at least one recipient"),
    ({"attachments": [{"filename": "a.txt", "content_base64": "%%%"}]}, "args.attachments[0].content_base64"),
    ({"headers": {"Bad Header": "x"}}, "args.headers"),
])
async def test_invalid_input_is_refused_before_connecting(engine: FlowEngine, mail: FakeMailServer, args: dict, where: str) -> None:
    run = await engine.run(engine.compile(flow(*caught(send_step(**args)))))
    assert run.output["type"] == "InvalidInput" and where in run.output["message"], run.output
    assert mail.delivered == []


async def test_a_missing_attachment_url_is_invalid_input(engine: FlowEngine, mail: FakeMailServer, files: str) -> None:
    run = await engine.run(engine.compile(flow(*caught(send_step(
        attachments=[{"filename": "x.png", "url": f"{files}/files/gone.png"}])))))
    assert run.output["type"] == "InvalidInput" and "HTTP 404" in run.output["message"]


async def test_contract_kit_passes() -> None:
    report = await check_connector(email_connector)
    assert report.ok, "\n".join(report.lines())


def test_connection_test_through_the_api(api_client, mail: FakeMailServer) -> None:  # noqa: ANN001
    for name, password in (("good", PASSWORD), ("bad", "wrong-password")):
        created = api_client.post("/api/connections", json={"name": name, "connector": "email",
                                                            "fields": mail.connection(password=password)})
        assert created.status_code in (200, 201), created.text
    good = api_client.post("/api/connections/good/test").json()
    assert good["ok"] is True and "logged in as robot@flowlink.test" in good["message"] and "INBOX readable" in good["message"]
    bad = api_client.post("/api/connections/bad/test").json()
    assert bad["ok"] is False and bad["kind"] == "PermissionDenied" and bad["code"] == "535"
