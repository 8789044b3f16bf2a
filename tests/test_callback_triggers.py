"""Connector callback triggers served at /hooks/<connector>/<path>: the connector's trigger
verifies, answers handshakes, parses events and builds the acknowledgement and passive reply;
the service commits each event (deduplicated by the trigger's key), audits rejections and
runs the flow with the event as its trigger data."""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from connectors.sdk import Connector
from connectors.sdk.triggers import RequestInfo, WebhookRejected, WebhookResponse, WebhookTrigger, add_trigger
from engine.errors import InvalidInput
from engine.store import audit
from tests.conftest import bearer, login, wait_runs

SECRET = "s3cret"


def _signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def acme_connector() -> Connector:
    """A platform that signs its callbacks, verifies the URL with a challenge, batches events
    and accepts a passive reply: the shape of WeCom/DingTalk/Douyin callbacks in miniature."""
    connector = Connector(name="acme", version="1.0.0", title={"en": "Acme"})

    def verify(request: RequestInfo) -> None:
        secret = (request.connection or {}).get("secret")
        given = request.header("x-acme-signature") or request.query.get("signature", "")
        signed = request.body if request.method == "POST" else request.query.get("challenge", "").encode()
        if not secret or not hmac.compare_digest(given, _signature(secret, signed)):
            raise WebhookRejected("bad signature")

    def handshake(request: RequestInfo) -> Any:
        return WebhookResponse(body=request.query["challenge"], headers={"content-type": "text/plain"}) if request.method == "GET" else None

    def parse(request: RequestInfo) -> list[dict[str, Any]]:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise InvalidInput("body.events must be a list")
        prefix = request.config.get("prefix", "")
        return [{**event, "label": prefix + event.get("text", "")} for event in body["events"]]

    add_trigger(connector, WebhookTrigger(
        name="event", title={"en": "Acme event"}, sample={"id": "e1", "text": "hi"},
        verify=verify, handshake=handshake, parse=parse, dedupe_key="id",
        ack=lambda request, events: WebhookResponse(body="success", headers={"content-type": "text/plain"}),
        reply=lambda request, output: {"reply": output},
    ))
    return connector


@pytest.fixture()
def client(sqlite_url: str, admin_password: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLOWLINK_INBOX_POLL", "0.1")
    with TestClient(create_app(sqlite_url)) as c:
        c.headers.update(bearer(login(c)))
        engine = c.app.state.flowlink.engine
        engine.registry.add(acme_connector())
        engine.connection_store.put("acme-main", "acme", {"secret": SECRET})
        yield c


def deploy(client: TestClient, flow_id: str, **trigger: Any) -> None:
    definition = {"id": flow_id, "name": flow_id,
                  "trigger": {"type": "acme.event", "connection": "acme-main", **trigger},
                  "steps": [{"id": "echo", "type": "set", "value": {"id": {"$expr": "trigger.id"},
                                                                   "label": {"$expr": "trigger.label"}}}],
                  "output": {"$expr": "steps.echo.output.label"}}
    created = client.post("/api/flows", json={"definition": definition})
    assert created.status_code == 201, created.text
    assert client.post(f"/api/flows/{flow_id}/activate").status_code == 200


def post_events(client: TestClient, path: str, events: list[dict[str, Any]], secret: str = SECRET) -> Any:
    body = orjson.dumps({"events": events})
    return client.post(f"/hooks/{path}", content=body, headers={"x-acme-signature": _signature(secret, body),
                                                                  "content-type": "application/json"})



def test_handshake_events_dedupe_and_ack(client: TestClient) -> None:
    deploy(client, "acme-a", path="tenant-1", config={"prefix": ">"})
    challenge = "abc123"
    answer = client.get("/hooks/acme/tenant-1", params={"challenge": challenge, "signature": _signature(SECRET, challenge.encode())})
    assert answer.status_code == 200 and answer.text == challenge

    first = post_events(client, "acme/tenant-1", [{"id": "e1", "text": "one"}, {"id": "e2", "text": "two"}])
    assert first.status_code == 200 and first.text == "success"
    again = post_events(client, "acme/tenant-1", [{"id": "e2", "text": "two"}, {"id": "e3", "text": "three"}])  # e2 redelivered
    assert again.status_code == 200 and again.text == "success"
    runs = wait_runs(client, "acme-a", 3)
    assert sorted(run["output"] for run in runs) == [">one", ">three", ">two"]
    time.sleep(0.3)
    assert len(client.get("/api/runs", params={"flow_id": "acme-a"}).json()) == 3  # e2 ran once
    events = client.get("/api/events", params={"flow_id": "acme-a"}).json()["events"]
    assert sorted(e["dedupe_key"] for e in events) == ["e1", "e2", "e3"]


def test_path_defaults_to_flow_id_and_plain_webhooks_are_separate(client: TestClient) -> None:
    deploy(client, "acme-default")
    assert post_events(client, "acme/acme-default", [{"id": "x", "text": "x"}]).status_code == 200
    assert post_events(client, "acme/other", [{"id": "x", "text": "x"}]).status_code == 404


def test_rejections_are_401_and_audited(client: TestClient) -> None:
    deploy(client, "acme-b", path="t2")
    forged = post_events(client, "acme/t2", [{"id": "e1", "text": "x"}], secret="wrong")
    assert forged.status_code == 401
    assert forged.json()["error"]["type"] == "WebhookRejected" and "bad signature" in forged.json()["error"]["message"]
    malformed_body = b'{"events": 5}'
    malformed = client.post("/hooks/acme/t2", content=malformed_body, headers={"x-acme-signature": _signature(SECRET, malformed_body)})
    assert malformed.status_code == 400 and "body.events" in malformed.json()["error"]["message"]
    entries = audit.entries(client.app.state.flowlink.engine.db, action="webhook.rejected")
    assert [(e["actor"], e["target_id"]) for e in entries] == [("webhook:acme", "acme-b")]
    assert entries[0]["details"]["reason"] == "bad signature" and entries[0]["details"]["path"] == "/hooks/acme/t2"
    assert client.get("/api/runs", params={"flow_id": "acme-b"}).json() == []


def test_passive_reply_from_the_run_output(client: TestClient) -> None:
    deploy(client, "acme-c", path="t3", respond="last", response_timeout=10)
    answer = post_events(client, "acme/t3", [{"id": "r1", "text": "ping"}])
    assert answer.status_code == 200 and answer.json() == {"reply": "ping"}


def test_validation_names_a_poll_trigger_used_as_callback(client: TestClient) -> None:
    from connectors.sdk.triggers import PollTrigger

    engine = client.app.state.flowlink.engine
    add_trigger(engine.registry.connectors["acme"], PollTrigger(name="recent", title={"en": "Recent"}, sample={}, fetch=lambda ctx, state: []))
    result = client.post("/api/flows/validate", json={"id": "p", "name": "p", "trigger": {"type": "acme.recent"},
                                                "steps": [{"id": "s", "type": "set", "value": 1}]}).json()
    assert result["ok"] is False
    assert any(i["pointer"] == "/trigger/type" and 'use {"type": "poll", "source": "acme.recent"}' in i["message"]
               for i in result["issues"])
