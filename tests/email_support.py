"""Shared fixtures of the email tests: the sandbox's real SMTP/IMAP servers and an engine."""
from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Iterator

import pytest

from connectors.core import connector as core_connector
from connectors.email import connector as email_connector
from connectors.email.sandbox import FakeMailServer
from connectors.sdk import ConnectorRegistry
from connectors.sdk.sandbox import SandboxServer
from engine.runtime import FlowEngine


@pytest.fixture(scope="module")
def mail_server() -> Iterator[FakeMailServer]:
    """One set of servers per test module (certificates and ports are slow-ish to make)."""
    server = FakeMailServer()
    yield server
    server.close()


@pytest.fixture()
def mail(mail_server: FakeMailServer) -> FakeMailServer:
    """The servers with a clean slate: no deliveries, default SMTP behaviour, an empty INBOX."""
    mail_server.delivered.clear()
    mail_server.smtp_behaviour.full_mailboxes.clear()
    mail_server.smtp_behaviour.data_replies.clear()
    with mail_server.store.lock:
        mail_server.store.folders["INBOX"].messages.clear()
    return mail_server


@pytest.fixture()
def sandbox_url(mail: FakeMailServer) -> Iterator[str]:
    """The sandbox's HTTP side (``/endpoints``) served on 127.0.0.1."""
    with SandboxServer(mail.app) as server:
        yield server.base_url


@pytest.fixture()
def engine(mail: FakeMailServer, sqlite_url: str) -> Iterator[FlowEngine]:
    """An engine with the `mailbox` connection pointing at the sandbox's servers."""
    eng = FlowEngine(sqlite_url, registry=ConnectorRegistry([core_connector, email_connector]))
    eng.connection_store.put("mailbox", "email", mail.connection())
    yield eng
    eng.close()


def flow(*steps: dict[str, Any], flow_id: str = "mail-test") -> dict[str, Any]:
    """A manual flow of the given steps."""
    return {"id": flow_id, "name": "mail test", "trigger": {"type": "manual"}, "steps": list(steps)}


def send_step(step_id: str = "send", connection: str = "mailbox", step: dict[str, Any] | None = None, **args: Any) -> dict[str, Any]:
    """A send_email step (no retries) with a default recipient, subject and text."""
    base = {"to": ["zhangsan@example.cn"], "subject": "Hello", "text": "Hi"}
    return {"id": step_id, "type": "action", "action": "email.send_email", "connection": connection,
            "args": {**base, **args}, "retry": [], **(step or {"end": True})}


def caught(step: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The step with a catch-all that ends the run with the error as its output."""
    return ({**step, "catch": [{"errors": ["*"], "next": "failed"}], "end": True},
            {"id": "failed", "type": "set", "value": {"$expr": "error"}, "end": True})


def parsed(raw: bytes) -> EmailMessage:
    """A delivered message, parsed."""
    return message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]
