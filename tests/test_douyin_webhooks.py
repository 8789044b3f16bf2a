"""Douyin callback triggers: the signature (reference vector), tampering and foreign apps
rejected, verify_webhook answered, each event type normalised, leads mapped by config, and
the full round trip fake -> /hooks/douyin/<path> -> inbox -> run -> action against the fake,
with Douyin's retries (same Msg-Id) starting one run only."""
from __future__ import annotations

import json
import time
from typing import Any, Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from connectors.douyin import connector
from connectors.douyin.sandbox import SANDBOX_CLIENT_KEY, SANDBOX_CLIENT_SECRET, FakeDouyin
from connectors.douyin.signature import sign
from connectors.sdk.triggers import RequestInfo, WebhookRejected
from engine.errors import InvalidInput
from engine.store import audit
from tests.conftest import bearer, login
from tests.douyin_helpers import ServedFake, douyin  # noqa: F401

CONNECTION = {"client_key": SANDBOX_CLIENT_KEY, "client_secret": SANDBOX_CLIENT_SECRET}


def request_for(event: dict[str, Any], *, secret: str = SANDBOX_CLIENT_SECRET, msg_id: str = "msg-1",
                config: dict[str, Any] | None = None, connection: dict[str, Any] | None = None,
                body: bytes | None = None) -> RequestInfo:
    raw = body if body is not None else orjson.dumps(event)
    return RequestInfo(method="POST", path="douyin/t", headers={"Msg-Id": msg_id, "X-Douyin-Signature": sign(secret, raw)},
                       body=raw, connection=CONNECTION if connection is None else connection, config=config or {})


async def handle(trigger: str, request: RequestInfo) -> Any:
    return await connector.triggers[trigger].handle(request)


# ------------------------------------------------------------------ the trigger's hooks


def test_the_signature_matches_the_reference_vector() -> None:
    body = b'{"event":"verify_webhook","client_key":"abc","content":{"challenge":12345}}'
    assert sign("test_client_secret", body) == "ed6b1797456b888e29a8fcc49521ba7e1993f7bc"


async def test_verify_webhook_is_answered_with_the_challenge() -> None:
    body = b'{"event":"verify_webhook","client_key":"abc","content":{"challenge":12345}}'
    request = request_for({}, secret="test_client_secret", body=body,
                          connection={"client_key": "abc", "client_secret": "test_client_secret"})
    result = await handle("event", request)
    assert result.handshake and result.response.status == 200 and result.response.body == {"challenge": 12345}
    assert result.events == []


async def test_tampering_a_wrong_secret_and_a_foreign_app_are_rejected() -> None:
    event = FakeDouyin().new_follower("open-fan-1", "Li Na")
    good = request_for(event)
    assert len((await handle("new_follower", good)).events) == 1
    tampered = request_for(event, body=good.body.replace(b"Li Na", b"Li Xu"))
    tampered.headers["x-douyin-signature"] = good.headers["x-douyin-signature"]
    with pytest.raises(WebhookRejected, match="X-Douyin-Signature"):
        await handle("new_follower", tampered)
    with pytest.raises(WebhookRejected, match="X-Douyin-Signature"):
        await handle("new_follower", request_for(event, secret="another-secret"))
    unsigned = request_for(event)
    del unsigned.headers["x-douyin-signature"]
    with pytest.raises(WebhookRejected):
        await handle("new_follower", unsigned)
    with pytest.raises(WebhookRejected, match="client_secret"):
        await handle("new_follower", request_for(event, connection={}))
    foreign = request_for({**event, "client_key": "aw_other_app"})
    with pytest.raises(WebhookRejected, match="aw_other_app"):
        await handle("new_follower", foreign)


async def test_a_signed_but_malformed_body_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="not JSON"):
        await handle("event", request_for({}, body=b"{nope"))
    with pytest.raises(InvalidInput, match="content"):
        await handle("event", request_for({"event": "im_receive_msg", "content": "{broken"}))


async def test_each_event_type_is_normalised() -> None:
    fake = FakeDouyin()
    comment = (await handle("new_comment", request_for(fake.new_comment(fake.seeded_item_id, "open-v9", "Price?"),
                                                       msg_id="m-c"))).events
    assert comment[0]["type"] == "comment" and comment[0]["msg_id"] == "m-c"
    assert comment[0]["comment"]["item_id"] == fake.seeded_item_id and comment[0]["comment"]["text"] == "Price?"
    assert comment[0]["comment"]["user_open_id"] == "open-v9" and comment[0]["comment"]["comment_id"].startswith("cmt-")
    follower = (await handle("new_follower", request_for(fake.new_follower("open-fan-2", "Li Na")))).events[0]
    assert follower["follower"] == {**follower["follower"], "open_id": "open-fan-2", "nickname": "Li Na"}
    message = (await handle("private_message", request_for(fake.new_private_message("open-v3", "Ship to Suzhou?")))).events[0]
    sent = fake.im_messages[message["message"]["server_message_id"]]
    assert message["message"]["conversation_id"] == sent.conversation_short_id and message["message"]["text"] == "Ship to Suzhou?"
    assert message["from_user_id"] == "open-v3" and message["message"]["sender_nickname"] == "user open-v3"
    # every event is clean JSON, with Douyin's content parsed
    assert json.loads(json.dumps(message))["content"]["text"] == "Ship to Suzhou?"


async def test_a_trigger_ignores_other_event_types() -> None:
    fake = FakeDouyin()
    follow = fake.new_follower("open-fan-3", "Wu")
    assert (await handle("new_comment", request_for(follow))).events == []
    assert (await handle("event", request_for(follow, config={"types": ["comment"]}))).events == []
    assert len((await handle("event", request_for(follow, config={"events": ["new_follow_action"]}))).events) == 1
    result = await handle("event", request_for(follow))
    assert result.events[0]["type"] == "new_follower" and result.response.body == {"err_no": 0, "err_msg": "success"}


async def test_leads_use_the_default_mapping_or_the_flows_config() -> None:
    fake = FakeDouyin()
    pushed = fake.lead_event({"clue_id": "clue-9", "name": "Zhang Wei", "telephone": "13800001111", "city": "Hangzhou",
                              "ad_id": "ad-1"}, from_user_id="open-v4")
    lead = (await handle("new_lead", request_for(pushed))).events[0]["lead"]
    assert lead == {"lead_id": "clue-9", "name": "Zhang Wei", "phone": "13800001111", "city": "Hangzhou",
                    "source": "website_contact", "ad_id": "ad-1", "remark": None, "open_id": "open-v4", "create_time": None}
    custom = fake.lead_event({"form": {"fullname": "Chen Jie", "tel": "13911112222"}, "region": "Suzhou"}, event="clue_push")
    config = {"lead_events": ["clue_push"],
              "lead_fields": {"name": "content.form.fullname", "phone": "content.form.tel", "city": "content.region",
                              "remark": None, "campaign": "'douyin-spring'"}}
    mapped = (await handle("new_lead", request_for(custom, config=config))).events[0]["lead"]
    assert mapped["name"] == "Chen Jie" and mapped["phone"] == "13911112222" and mapped["city"] == "Suzhou"
    assert mapped["source"] == "clue_push" and mapped["campaign"] == "douyin-spring" and "remark" not in mapped
    assert (await handle("new_lead", request_for(custom))).events == []  # not a lead event by default
    with pytest.raises(InvalidInput, match="lead_fields.name"):
        await handle("new_lead", request_for(custom, config={"lead_events": ["clue_push"], "lead_fields": {"name": "a.["}}))


# ------------------------------------------------------------------ round trips through the service


@pytest.fixture()
def service(sqlite_url: str, admin_password: str, douyin: ServedFake, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("FLOWLINK_INBOX_POLL", "0.1")
    with TestClient(create_app(sqlite_url)) as client:
        client.headers.update(bearer(login(client)))
        client.app.state.flowlink.engine.connection_store.put("dy", "douyin", douyin.connection())
        yield client


def deploy(client: TestClient, flow_id: str, trigger: str, steps: list[dict[str, Any]], output: Any, **extra: Any) -> None:
    definition = {"id": flow_id, "name": flow_id, "steps": steps, "output": output,
                  "trigger": {"type": f"douyin.{trigger}", "connection": "dy", **extra}}
    created = client.post("/api/flows", json={"definition": definition})
    assert created.status_code == 201, created.text
    assert client.post(f"/api/flows/{flow_id}/activate").status_code == 200


def finished_runs(client: TestClient, flow_id: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.get("/api/runs", params={"flow_id": flow_id}).json()
        done = [r for r in runs if r["status"] in ("succeeded", "failed")]
        if len(done) >= count:
            return [client.get(f"/api/runs/{r['id']}").json() for r in done]
        time.sleep(0.1)
    raise AssertionError(f"{flow_id}: fewer than {count} finished runs")


REPLY_STEPS = [{"id": "reply", "type": "action", "action": "douyin.send_im_reply", "connection": "dy", "end": True,
                "args": {"msg_id": {"$expr": "trigger.message.server_message_id"},
                         "conversation_id": {"$expr": "trigger.message.conversation_id"},
                         "to_user_id": {"$expr": "trigger.from_user_id"},
                         "text": "Thanks {{ trigger.message.sender_nickname }}, we ship there in 2 days."}}]


def test_a_private_message_round_trip_replies_once(service: TestClient, douyin: ServedFake) -> None:
    deploy(service, "dy-im", "private_message", REPLY_STEPS, {"$expr": "steps.reply.output"}, path="shop-a")
    url = "/hooks/douyin/shop-a"
    handshake = douyin.fake.verify_webhook(url, client=service, challenge=424242)
    assert handshake.status_code == 200 and handshake.json() == {"challenge": 424242}

    event = douyin.fake.new_private_message("open-v7", "Do you ship to Ningbo?")
    delivery = douyin.fake.deliver(url, event, client=service)
    assert delivery.statuses == [200] and delivery.responses[0].json() == {"err_no": 0, "err_msg": "success"}
    runs = finished_runs(service, "dy-im", 1)
    assert runs[0]["status"] == "succeeded", runs[0].get("error")
    assert runs[0]["output"]["msg_id"].startswith("smsg-")
    message = douyin.fake.im_messages[json.loads(event["content"])["server_message_id"]]
    assert [r["text"] for r in message.replies] == ["Thanks user open-v7, we ship there in 2 days."]

    again = douyin.fake.deliver(url, event, client=service, msg_id=delivery.msg_id)  # Douyin retries with the same Msg-Id
    assert again.statuses == [200]
    time.sleep(0.5)
    assert len(service.get("/api/runs", params={"flow_id": "dy-im"}).json()) == 1 and len(message.replies) == 1


def test_deliveries_are_retried_with_the_same_msg_id_until_acknowledged(service: TestClient, douyin: ServedFake) -> None:
    event = douyin.fake.new_follower("open-fan-5", "Zhou Min")
    early = douyin.fake.deliver("/hooks/douyin/fans", event, client=service)  # no flow serves the path yet
    assert early.statuses == [404] * 4 and not early.delivered
    deploy(service, "dy-fans", "new_follower", [{"id": "fan", "type": "set", "end": True, "value": {"$expr": "trigger.follower"}}],
           {"$expr": "steps.fan.output"}, path="fans")
    later = douyin.fake.deliver("/hooks/douyin/fans", event, client=service, msg_id=early.msg_id)
    assert later.statuses == [200]
    douyin.fake.deliver("/hooks/douyin/fans", event, client=service, msg_id=early.msg_id)
    runs = finished_runs(service, "dy-fans", 1)
    assert runs[0]["output"]["open_id"] == "open-fan-5" and runs[0]["output"]["nickname"] == "Zhou Min"
    time.sleep(0.5)
    assert len(service.get("/api/runs", params={"flow_id": "dy-fans"}).json()) == 1


def test_a_tampered_delivery_is_401_audited_and_never_run(service: TestClient, douyin: ServedFake) -> None:
    deploy(service, "dy-c", "new_comment", [{"id": "c", "type": "set", "end": True, "value": {"$expr": "trigger.comment"}}],
           {"$expr": "steps.c.output"}, path="comments")
    event = douyin.fake.new_comment(douyin.fake.seeded_item_id, "open-v8", "Nice")
    body = orjson.dumps(event)
    forged = body.replace(b"Nice", b"Scam")
    answer = service.post("/hooks/douyin/comments", content=forged,
                          headers={"Msg-Id": "m-x", "X-Douyin-Signature": sign(SANDBOX_CLIENT_SECRET, body),
                                   "content-type": "application/json"})
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "WebhookRejected"
    entries = audit.entries(service.app.state.flowlink.engine.db, action="webhook.rejected")
    assert [e["target_id"] for e in entries] == ["dy-c"] and "X-Douyin-Signature" in entries[0]["details"]["reason"]
    time.sleep(0.3)
    assert service.get("/api/runs", params={"flow_id": "dy-c"}).json() == []
    assert douyin.fake.deliver("/hooks/douyin/comments", event, client=service).statuses == [200]
    runs = finished_runs(service, "dy-c", 1)
    assert runs[0]["output"]["text"] == "Nice" and runs[0]["output"]["item_id"] == douyin.fake.seeded_item_id


def test_a_lead_push_reaches_the_flow_as_a_normalised_lead(service: TestClient, douyin: ServedFake) -> None:
    deploy(service, "dy-lead", "new_lead", [{"id": "lead", "type": "set", "end": True, "value": {"$expr": "trigger.lead"}}],
           {"$expr": "steps.lead.output"}, path="leads",
           config={"lead_fields": {"phone": "content.contact.mobile", "budget": "content.extra.budget"}})
    event = douyin.fake.lead_event({"clue_id": "clue-42", "name": "Sun Li", "contact": {"mobile": "13700002222"},
                                    "city": "Shanghai", "extra": {"budget": 8000}}, event="personal_tab_contact",
                                   from_user_id="open-v11")
    assert douyin.fake.deliver("/hooks/douyin/leads", event, client=service).statuses == [200]
    lead = finished_runs(service, "dy-lead", 1)[0]["output"]
    assert lead["lead_id"] == "clue-42" and lead["name"] == "Sun Li" and lead["phone"] == "13700002222"
    assert lead["city"] == "Shanghai" and lead["budget"] == 8000 and lead["source"] == "personal_tab_contact"
    assert lead["open_id"] == "open-v11"


def test_connections_are_created_and_tested_through_the_api(service: TestClient, douyin: ServedFake) -> None:
    fields = douyin.connection()
    created = service.post("/api/connections", json={"name": "dy-api", "connector": "douyin", "fields": fields})
    assert created.status_code == 201, created.text
    assert SANDBOX_CLIENT_SECRET not in created.text and fields["refresh_token"] not in created.text
    tested = service.post("/api/connections/dy-api/test").json()
    assert tested["ok"] is True and "open-sandbox-1" in tested["message"]
    app_only = {"auth": "douyin_client_token", "client_key": SANDBOX_CLIENT_KEY, "client_secret": "wrong",
                "base_url": douyin.base_url}
    assert service.post("/api/connections", json={"name": "dy-app", "connector": "douyin", "fields": app_only}).status_code == 201
    refused = service.post("/api/connections/dy-app/test").json()
    assert refused["ok"] is False and refused["code"] == "10013"
    missing = service.post("/api/connections", json={"name": "dy-x", "connector": "douyin", "fields": {"client_key": "k"}})
    assert missing.status_code == 422 and "client_secret" in missing.text
