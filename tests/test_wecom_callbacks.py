"""WeCom callbacks through the real service: the fake WeCom verifies the URL and pushes
signed, encrypted events to /hooks/wecom/<path>; the service acknowledges with an empty 200,
deduplicates re-sends, rejects forgeries with 401 and an audit entry, and runs the flow with
the decrypted event (or answers with an encrypted passive reply)."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from connectors.wecom import fake_state as seed
from connectors.wecom.xmlcodec import parse_xml
from engine.store import audit
from tests.conftest import bearer, login, wait_runs
from tests.wecom_helpers import Served, served  # noqa: F401  (fixture)

SECOND_TOKEN, SECOND_AES_KEY = "second-corp-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture()
def client(served: Served, sqlite_url: str, admin_password: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("FLOWLINK_INBOX_POLL", "0.1")
    with TestClient(create_app(sqlite_url)) as c:
        c.headers.update(bearer(login(c)))
        store = c.app.state.flowlink.engine.connection_store
        store.put("wecom-a", "wecom", served.connection(token=seed.CALLBACK_TOKEN, encoding_aes_key=seed.CALLBACK_AES_KEY))
        store.put("wecom-b", "wecom", served.connection(corp_id=seed.SECOND_CORP, secret=seed.SECOND_SECRET,
                                                        token=SECOND_TOKEN, encoding_aes_key=SECOND_AES_KEY))
        yield c


ECHO = {"type": {"$expr": "trigger.MsgType"}, "event": {"$expr": "trigger.Event"}, "change": {"$expr": "trigger.ChangeType"},
        "user": {"$expr": "trigger.UserID"}, "external": {"$expr": "trigger.ExternalUserID"},
        "content": {"$expr": "trigger.Content"}, "corp": {"$expr": "trigger.ToUserName"}}


def deploy(client: TestClient, flow_id: str, path: str, connection: str = "wecom-a", **trigger: Any) -> None:
    definition = {"id": flow_id, "name": flow_id,
                  "trigger": {"type": "wecom.callback", "path": path, "connection": connection, **trigger},
                  "steps": [{"id": "echo", "type": "set", "value": ECHO}]}
    created = client.post("/api/flows", json={"definition": definition})
    assert created.status_code == 201, created.text
    assert client.post(f"/api/flows/{flow_id}/activate").status_code == 200



def test_url_verification(client: TestClient, served: Served) -> None:
    deploy(client, "wecom-verify", "corp-a")
    answer, plain = served.fake.verify_url(client, "/hooks/wecom/corp-a")
    assert answer.status_code == 200 and answer.text == plain
    forged = client.get("/hooks/wecom/corp-a", params={"msg_signature": "0" * 40, "timestamp": str(int(time.time())),
                                                       "nonce": "n", "echostr": "abc"})
    assert forged.status_code == 401 and forged.json()["error"]["type"] == "WebhookRejected"


def test_every_event_kind_becomes_a_run(client: TestClient, served: Served) -> None:
    deploy(client, "wecom-events", "corp-a")
    fake = served.fake
    events = [
        fake.customer_added("zhangsan", "Lucy", state="expo"),
        fake.customer_added("lisi", "Half", half=True),
        fake.customer_changed("edit_external_contact", "zhangsan", "wmCustomer001"),
        fake.customer_changed("del_external_contact", "zhangsan", "wmCustomer002"),
        fake.customer_changed("del_follow_user", "lisi", "wmCustomer003"),
        fake.tag_changed("create", "etTagVip"),
        fake.member_changed("create_user", "zhaosi", Name="赵四", Mobile="13800000009"),
        fake.member_changed("update_user", "zhangsan", Position="总监"),
        fake.member_changed("delete_user", "wangwu"),
        fake.text_message("zhangsan", "你好"),
    ]
    for event in events:
        answers = fake.send_callback(client, "/hooks/wecom/corp-a", event)
        assert [(a.status_code, a.text) for a in answers] == [(200, "")]
    runs = wait_runs(client, "wecom-events", len(events))
    outputs = sorted((r["output"]["event"] or r["output"]["type"], r["output"]["change"] or "") for r in runs)
    assert outputs == sorted([("change_external_contact", "add_external_contact"),
                              ("change_external_contact", "add_half_external_contact"),
                              ("change_external_contact", "edit_external_contact"),
                              ("change_external_contact", "del_external_contact"),
                              ("change_external_contact", "del_follow_user"),
                              ("change_external_tag", "create"),
                              ("change_contact", "create_user"), ("change_contact", "update_user"),
                              ("change_contact", "delete_user"), ("text", "")])
    added = next(r for r in runs if r["output"]["change"] == "add_external_contact")
    assert added["trigger"]["State"] == "expo" and added["trigger"]["WelcomeCode"].startswith("welcome-")
    assert added["trigger"]["CreateTime"] == events[0]["CreateTime"]
    text = next(r for r in runs if r["output"]["type"] == "text")
    assert text["output"]["content"] == "你好" and text["output"]["corp"] == seed.SANDBOX_CORP


def test_redeliveries_run_once(client: TestClient, served: Served) -> None:
    deploy(client, "wecom-dedupe", "corp-a")
    message = served.fake.text_message("lisi", "once")
    event = served.fake.customer_added("zhangsan", "Dup")
    for item in (message, event):
        answers = served.fake.send_callback(client, "/hooks/wecom/corp-a", item, duplicates=2)
        assert [(a.status_code, a.text) for a in answers] == [(200, "")] * 3
    assert len(wait_runs(client, "wecom-dedupe", 2)) == 2
    time.sleep(0.5)
    assert len(client.get("/api/runs", params={"flow_id": "wecom-dedupe"}).json()) == 2
    keys = sorted(e["dedupe_key"] for e in client.get("/api/events", params={"flow_id": "wecom-dedupe"}).json()["events"])
    assert keys[0].startswith("evt:sys|") and keys[1] == f"msg:{message['MsgId']}"


def test_forgeries_are_rejected_and_audited(client: TestClient, served: Served) -> None:
    deploy(client, "wecom-guard", "corp-a")
    fake = served.fake
    url = "/hooks/wecom/corp-a"
    event = fake.text_message("zhangsan", "hi")
    query, body = fake.encrypt_callback(event)
    tampered = client.post(url, params={**query, "msg_signature": "f" * 40}, content=body)
    replayed = fake.send_callback(client, url, event, timestamp=int(fake.now()) - 3600)[0]
    other_corp = fake.send_callback(client, url, fake.text_message("zhaoliu", "hi", corp_id=seed.SECOND_CORP))[0]
    wrong_key = fake.send_callback(client, url, event, aes_key=SECOND_AES_KEY)[0]
    envelope = parse_xml(body)
    cut = envelope["Encrypt"][:-24]
    sig = fake.callback_crypto().signature(query["timestamp"], query["nonce"], cut)
    truncated = client.post(url, params={**query, "msg_signature": sig},
                            content=body.replace(envelope["Encrypt"].encode(), cut.encode()))
    answers = [tampered, replayed, other_corp, wrong_key, truncated]
    assert [a.status_code for a in answers] == [401] * 5
    assert all(a.json()["error"]["type"] == "WebhookRejected" for a in answers)
    entries = audit.entries(client.app.state.flowlink.engine.db, action="webhook.rejected")
    reasons = [e["details"]["reason"] for e in entries]
    assert len(entries) >= 5 and {e["target_id"] for e in entries} == {"wecom-guard"}
    assert any("signature" in r for r in reasons) and any("replayed" in r for r in reasons)
    assert any("not this connection's corp" in r for r in reasons)
    assert client.get("/api/runs", params={"flow_id": "wecom-guard"}).json() == []


def test_two_corps_side_by_side(client: TestClient, served: Served) -> None:
    deploy(client, "wecom-corp-a", "corp-a")
    deploy(client, "wecom-corp-b", "corp-b", connection="wecom-b")
    fake = served.fake
    a = fake.text_message("zhangsan", "for A")
    b = fake.text_message("zhaoliu", "for B", corp_id=seed.SECOND_CORP)
    assert fake.send_callback(client, "/hooks/wecom/corp-a", a)[0].status_code == 200
    sent_b = fake.send_callback(client, "/hooks/wecom/corp-b", b, token=SECOND_TOKEN, aes_key=SECOND_AES_KEY)
    assert sent_b[0].status_code == 200
    crossed = fake.send_callback(client, "/hooks/wecom/corp-a", b, token=SECOND_TOKEN, aes_key=SECOND_AES_KEY)
    assert [r.status_code for r in crossed] == [401] * 4  # WeCom retries a failed delivery 3 times
    assert [r["output"]["content"] for r in wait_runs(client, "wecom-corp-a", 1)] == ["for A"]
    assert [r["output"]["content"] for r in wait_runs(client, "wecom-corp-b", 1)] == ["for B"]


def test_encrypted_passive_reply(client: TestClient, served: Served) -> None:
    definition = {"id": "wecom-reply", "name": "reply",
                  "trigger": {"type": "wecom.callback", "path": "bot", "connection": "wecom-a", "respond": "last",
                              "response_timeout": 10},
                  "steps": [{"id": "answer", "type": "set", "value": {"reply": "echo: {{ trigger.Content }}"}}]}
    assert client.post("/api/flows", json={"definition": definition}).status_code == 201
    assert client.post("/api/flows/wecom-reply/activate").status_code == 200
    message = served.fake.text_message("lisi", "ping")
    (answer,) = served.fake.send_callback(client, "/hooks/wecom/bot", message)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/xml")
    envelope = parse_xml(answer.content)
    crypto = served.fake.callback_crypto()
    plain = crypto.decrypt_verified(envelope["MsgSignature"], str(envelope["TimeStamp"]), envelope["Nonce"], envelope["Encrypt"])
    reply = parse_xml(plain)
    assert (reply["ToUserName"], reply["FromUserName"], reply["MsgType"], reply["Content"]) == \
        ("lisi", seed.SANDBOX_CORP, "text", "echo: ping")


def test_connection_test_through_the_api(client: TestClient, served: Served) -> None:
    store = client.app.state.flowlink.engine.connection_store
    store.put("wecom-typo", "wecom", served.connection(secret="not-the-secret"))
    bad = client.post("/api/connections/wecom-typo/test").json()
    assert bad["ok"] is False and bad["code"] == "40001" and "app secret is wrong" in bad["message"]
    good = client.post("/api/connections/wecom-a/test").json()
    assert good["ok"] is True, good
