"""The DingTalk event callback trigger: the official vectors through the trigger, tampered
deliveries rejected, the encrypted "success" answer; then the full round trip through the
service (fake -> /hooks/dingtalk/<path> -> inbox -> run -> actions against the fake), and the
approval poll trigger."""
from __future__ import annotations

import base64
import time
from typing import Any, Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.scheduler import PollContext
from connectors.dingtalk import connector
from connectors.dingtalk import sandbox as fk
from connectors.dingtalk.sandbox import FakeDingTalk
from connectors.sdk.callback_crypto import MsgCrypt
from connectors.sdk.triggers import RequestInfo, WebhookRejected, poll_once
from engine.errors import InvalidInput
from engine.runtime import FlowEngine
from engine.store import audit
from tests.conftest import bearer, login, wait_runs
from tests.dingtalk_support import connection_fields, engine, fake  # noqa: F401

TRIGGER = connector.triggers["event"]

REPO = {"callback_token": "mryue", "callback_aes_key": "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
        "callback_owner_key": "ding6ccabc44d2c8d38b"}
REPO_QUERY = {"signature": "03044561471240d4a14bb09372dfcfd4fd0e40cb", "timestamp": "1608001896814", "nonce": "WL4PK6yA"}
REPO_ENCRYPT = ("0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4"
                "yhELOFchzNukR+t8SB/qk4ROMu3")
SUITE = {"callback_token": "123456", "callback_aes_key": "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij",
         "callback_owner_key": "suite4xxxxxxxxxxxxxxx"}
SUITE_ENCRYPT = ("1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9V"
                 "rYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==")
NO_AGE = {"max_age_seconds": 0}  # the official vectors were signed years ago

APP = {"callback_token": fk.CALLBACK_TOKEN, "callback_aes_key": fk.CALLBACK_AES_KEY, "app_key": fk.APP_KEY}
APP_CRYPT = MsgCrypt(fk.CALLBACK_TOKEN, fk.CALLBACK_AES_KEY, fk.APP_KEY, millisecond_timestamps=True)


def delivery(connection: dict[str, Any], query: dict[str, str], encrypt: str, config: dict[str, Any] | None = None) -> RequestInfo:
    return RequestInfo(method="POST", path="/hooks/dingtalk/x", headers={"content-type": "application/json"}, query=query,
                       body=orjson.dumps({"encrypt": encrypt}), connection=connection, config=config or {})


def sealed(event: dict[str, Any], crypt: MsgCrypt = APP_CRYPT, **query: str) -> tuple[dict[str, str], str]:
    out = crypt.encrypt(orjson.dumps(event).decode())
    return {"signature": out.signature, "timestamp": out.timestamp, "nonce": out.nonce, **query}, out.encrypted


def assert_encrypted_success(body: Any, crypt: MsgCrypt) -> None:
    assert set(body) == {"msg_signature", "timeStamp", "nonce", "encrypt"}
    assert crypt.decrypt_verified(body["msg_signature"], body["timeStamp"], body["nonce"], body["encrypt"]) == "success"


# ------------------------------------------------------------------ the trigger's hooks


async def test_official_check_url_vector_is_answered_with_encrypted_success() -> None:
    result = await TRIGGER.handle(delivery(REPO, REPO_QUERY, REPO_ENCRYPT, NO_AGE))
    assert result.handshake and result.events == []
    crypt = MsgCrypt(REPO["callback_token"], REPO["callback_aes_key"], REPO["callback_owner_key"])
    assert_encrypted_success(result.response.body, crypt)
    assert len(result.response.body["timeStamp"]) == 13  # DingTalk signs milliseconds


async def test_official_suite_vector_with_msg_signature_aliases() -> None:
    query = {"msg_signature": "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0", "timeStamp": "1445827045067", "nonce": "nEXhMP4r"}
    result = await TRIGGER.handle(delivery(SUITE, query, SUITE_ENCRYPT, NO_AGE))
    assert result.handshake
    with pytest.raises(WebhookRejected):
        await TRIGGER.handle(delivery(SUITE, {**query, "nonce": "xxxxx"}, SUITE_ENCRYPT, NO_AGE))


@pytest.mark.parametrize("tamper", ["signature", "owner key", "token", "truncated", "stale", "missing nonce", "no body"])
async def test_tampered_deliveries_are_rejected(tamper: str) -> None:
    connection, config = dict(REPO), dict(NO_AGE)
    query, encrypt = dict(REPO_QUERY), REPO_ENCRYPT
    if tamper == "signature":
        query["signature"] = "0" * 40
    elif tamper == "owner key":
        connection["callback_owner_key"] = "ding-someone-else"
    elif tamper == "token":
        connection["callback_token"] = "other"
    elif tamper == "truncated":  # a correctly signed, block-aligned but truncated ciphertext
        encrypt = base64.b64encode(base64.b64decode(REPO_ENCRYPT)[:-32]).decode()
        query["signature"] = MsgCrypt(REPO["callback_token"], REPO["callback_aes_key"], "x").signature(
            query["timestamp"], query["nonce"], encrypt)
    elif tamper == "stale":
        config = {}
    elif tamper == "missing nonce":
        del query["nonce"]
    request = delivery(connection, query, encrypt, config)
    if tamper == "no body":
        request.body = b""
    with pytest.raises(WebhookRejected):
        await TRIGGER.handle(request)


async def test_a_connection_without_callback_secrets_rejects() -> None:
    query, encrypt = sealed({"EventType": "user_add_org"})
    with pytest.raises(WebhookRejected, match="callback_token"):
        await TRIGGER.handle(delivery({"app_key": fk.APP_KEY}, query, encrypt))


async def test_events_are_parsed_acked_and_filtered() -> None:
    event = {"EventType": "user_leave_org", "TimeStamp": "1764000000000", "UserId": ["user007"], "CorpId": fk.CORP_ID}
    query, encrypt = sealed(event)
    result = await TRIGGER.handle(delivery(APP, query, encrypt))
    assert result.events == [event] and not result.handshake
    assert_encrypted_success(result.response.body, APP_CRYPT)
    filtered = await TRIGGER.handle(delivery(APP, query, encrypt, {"event_types": ["bpms_instance_change"]}))
    assert filtered.events == []
    assert_encrypted_success(filtered.response.body, APP_CRYPT)
    assert TRIGGER.event_key(event) == TRIGGER.event_key(dict(event))
    assert TRIGGER.event_key({**event, "eventId": "e-1"}) == "e-1"


async def test_a_signed_non_json_payload_is_invalid_input() -> None:
    out = APP_CRYPT.encrypt("not json")
    request = delivery(APP, {"signature": out.signature, "timestamp": out.timestamp, "nonce": out.nonce}, out.encrypted)
    with pytest.raises(InvalidInput):
        await TRIGGER.handle(request)


# ------------------------------------------------------------------ the round trip through the service


@pytest.fixture()
def service(fake: FakeDingTalk, sqlite_url: str, admin_password: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("FLOWLINK_INBOX_POLL", "0.1")
    with TestClient(create_app(sqlite_url)) as client:
        client.headers.update(bearer(login(client)))
        client.app.state.flowlink.engine.connection_store.put("dt", "dingtalk", connection_fields(fake))
        yield client


APPROVAL_FLOW = {
    "id": "big-order-approved", "name": "Big order approved",
    "trigger": {"type": "dingtalk.event", "path": "corp-a", "connection": "dt",
                "config": {"event_types": ["bpms_instance_change"]}},
    "steps": [
        {"id": "approval", "type": "action", "action": "dingtalk.get_approval", "connection": "dt",
         "args": {"instance_id": "{{ trigger.processInstanceId }}"}, "next": "notify"},
        {"id": "notify", "type": "action", "action": "dingtalk.robot_send", "connection": "dt",
         "args": {"content": "{{ steps.approval.output.title }}: {{ trigger.result }}"}, "end": True},
    ],
    "output": {"$expr": "steps.approval.output.result"},
}


def deploy(client: TestClient, definition: dict[str, Any]) -> None:
    created = client.post("/api/flows", json={"definition": definition})
    assert created.status_code == 201, created.text
    assert client.post(f"/api/flows/{definition['id']}/activate").status_code == 200



def test_approval_callback_round_trip(service: TestClient, fake: FakeDingTalk) -> None:
    deploy(service, APPROVAL_FLOW)
    fake.subscribe("/hooks/dingtalk/corp-a", client=service)
    check = fake.send_check_url()
    assert check.acknowledged and check.attempts == 1
    assert service.get("/api/runs", params={"flow_id": "big-order-approved"}).json() == []

    event = fake.approve(fk.SEEDED_INSTANCE)  # the fake pushes the signed, encrypted bpms_instance_change
    assert fake.deliveries[-1].acknowledged and fake.deliveries[-1].attempts == 1
    [run] = wait_runs(service, "big-order-approved", 1)
    assert run["status"] == "succeeded", run.get("error")
    assert run["output"] == "agree"
    [message] = fake.robot_messages[fk.ROBOT_SIGN_TOKEN]
    assert message["text"]["content"] == "员工1提交的大额订单审批: agree"

    again = fake.send_callback(event, redeliver=True)  # a re-push, then the same ciphertext once more
    assert again.acknowledged and again.attempts == 2
    events = service.get("/api/events", params={"flow_id": "big-order-approved"}).json()["events"]
    assert len(events) == 1  # both redeliveries matched the stored event's key: no new event, no new run
    time.sleep(0.5)
    assert len(service.get("/api/runs", params={"flow_id": "big-order-approved"}).json()) == 1


def test_contact_events_start_runs_and_forged_pushes_are_refused(service: TestClient, fake: FakeDingTalk) -> None:
    deploy(service, {"id": "hr-sync", "name": "HR sync",
                     "trigger": {"type": "dingtalk.event", "path": "hr", "connection": "dt"},
                     "steps": [{"id": "who", "type": "set", "value": {"$expr": "trigger"}, "end": True}],
                     "output": {"$expr": "steps.who.output.UserId[0]"}})
    fake.subscribe("/hooks/dingtalk/hr", client=service)
    fake.hire("user100", "新同事", "13700000100")
    fake.dismiss("user003")
    runs = wait_runs(service, "hr-sync", 2)
    assert sorted(r["output"] for r in runs) == ["user003", "user100"]

    forged = fake.send_callback({"EventType": "user_leave_org", "UserId": ["manager01"]}, attempts=2,
                                crypt=MsgCrypt("wrong-token", fk.CALLBACK_AES_KEY, fk.APP_KEY, millisecond_timestamps=True))
    assert not forged.acknowledged and forged.statuses == [401, 401]
    other_app = fake.send_callback({"EventType": "user_leave_org", "UserId": ["manager01"]}, attempts=1,
                                   crypt=MsgCrypt(fk.CALLBACK_TOKEN, fk.CALLBACK_AES_KEY, "another-app-key"))
    assert other_app.statuses == [401]
    rejected = audit.entries(service.app.state.flowlink.engine.db, action="webhook.rejected")
    assert len(rejected) == 3 and {e["target_id"] for e in rejected} == {"hr-sync"}
    assert len(service.get("/api/events", params={"flow_id": "hr-sync"}).json()["events"]) == 2
    assert len(service.get("/api/runs", params={"flow_id": "hr-sync"}).json()) == 2


# ------------------------------------------------------------------ the poll trigger


async def test_poll_trigger_reports_each_finished_approval_once(engine: FlowEngine, fake: FakeDingTalk) -> None:
    trigger = connector.triggers["approval_finished"]
    fields = connection_fields(fake)
    ctx = PollContext("poll-flow", connector, {"process_code": fk.PROCESS_CODE}, fields, "dt", engine)
    ids = [fake.add_instance(originator=f"user{i:03d}") for i in range(1, 23)]
    assert await poll_once(trigger, "poll:poll-flow", engine.db, ctx) == []  # seeds
    for instance_id in ids:
        fake.approve(instance_id)
    fake.advance(1)
    fake.refuse(fk.SEEDED_INSTANCE)
    found = await poll_once(trigger, "poll:poll-flow", engine.db, ctx)
    assert sorted(i["processInstanceId"] for i in found) == sorted(ids + [fk.SEEDED_INSTANCE])
    assert {(i["status"], i["result"]) for i in found if i["processInstanceId"] != fk.SEEDED_INSTANCE} == {("COMPLETED", "agree")}
    assert fake.calls["/v1.0/workflow/processes/instanceIds/query"] == 3  # 0 finished, then 23 ids at 20 a page
    assert await poll_once(trigger, "poll:poll-flow", engine.db, ctx) == []


def test_a_flow_can_use_the_poll_trigger(engine: FlowEngine) -> None:
    engine.compile({"id": "approved", "name": "approved",
                    "trigger": {"type": "poll", "source": "dingtalk.approval_finished", "connection": "dt",
                                "args": {"process_code": fk.PROCESS_CODE}},
                    "steps": [{"id": "echo", "type": "set", "value": {"$expr": "trigger.result"}, "end": True}]})


# ------------------------------------------------------------------ connection test


def test_connection_test_checks_both_token_endpoints(service: TestClient, fake: FakeDingTalk) -> None:
    # an app of its own: tokens of the seeded app may already sit in this process's memory cache
    fake.apps["dingconntestapp"] = {"secret": "conn-test-secret", "corp_id": fk.CORP_ID, "agent_id": 1}
    store = service.app.state.flowlink.engine.connection_store
    store.put("fresh", "dingtalk", connection_fields(fake, app_key="dingconntestapp", app_secret="conn-test-secret"))
    ok = service.post("/api/connections/fresh/test").json()
    assert ok["ok"] is True and "both token endpoints" in ok["message"] and "aes_key" in ok["message"]
    assert fake.calls["/gettoken"] == 1 and fake.calls["/v1.0/oauth2/accessToken"] == 1
    store.put("bad", "dingtalk", connection_fields(fake, app_secret="wrong"))
    bad = service.post("/api/connections/bad/test").json()
    assert bad["ok"] is False and bad["kind"] == "PermissionDenied" and "wrong" not in bad["message"]
    store.put("bad-key", "dingtalk", connection_fields(fake, callback_aes_key="short"))
    assert service.post("/api/connections/bad-key/test").json()["ok"] is False
    store.put("robot", "dingtalk", {"robot_access_token": "t", "base_url": fake.base_url})
    robot = service.post("/api/connections/robot/test").json()
    assert robot["ok"] is True and "robot" in robot["message"]
