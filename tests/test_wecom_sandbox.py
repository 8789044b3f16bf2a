"""The fake WeCom keeps WeCom's contract: it rejects what the platform rejects (so tests
against it prove something) and its test hooks behave as documented."""
from __future__ import annotations

import base64
import hashlib
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from connectors.wecom import fake_state as seed
from connectors.wecom.sandbox import FakeWeCom


@pytest.fixture()
def fake() -> FakeWeCom:
    return FakeWeCom()


@pytest.fixture()
def http(fake: FakeWeCom) -> Iterator[TestClient]:
    with TestClient(fake.app) as client:
        yield client


def token(http: TestClient, corp: str = seed.SANDBOX_CORP, secret: str = seed.SANDBOX_SECRET) -> str:
    return http.get("/cgi-bin/gettoken", params={"corpid": corp, "corpsecret": secret}).json()["access_token"]


def call(http: TestClient, api: str, tok: str | None, body: Any = None, **query: Any) -> dict[str, Any]:
    params = {**query, **({"access_token": tok} if tok else {})}
    if body is None:
        return http.get(f"/cgi-bin/{api}", params=params).json()
    return http.post(f"/cgi-bin/{api}", params=params, json=body).json()


def test_gettoken(http: TestClient, fake: FakeWeCom) -> None:
    get = lambda **q: http.get("/cgi-bin/gettoken", params=q).json()  # noqa: E731
    assert get(corpsecret="x")["errcode"] == 41002
    assert get(corpid=seed.SANDBOX_CORP)["errcode"] == 41004
    assert get(corpid="ww-nope", corpsecret="x")["errcode"] == 40013
    assert get(corpid=seed.SANDBOX_CORP, corpsecret="wrong")["errcode"] == 40001
    assert get(corpid=seed.SECOND_CORP, corpsecret=seed.SANDBOX_SECRET)["errcode"] == 40001  # secrets are per corp
    first = get(corpid=seed.SANDBOX_CORP, corpsecret=seed.SANDBOX_SECRET)
    assert first["errcode"] == 0 and first["expires_in"] == 7200
    assert token(http) == first["access_token"]  # the same token while valid
    assert token(http, secret=seed.LIMITED_SECRET) != first["access_token"]  # one per app


def test_tokens_missing_invalid_expired(http: TestClient, fake: FakeWeCom) -> None:
    assert call(http, "user/get", None, userid="zhangsan")["errcode"] == 41001
    assert call(http, "user/get", "forged", userid="zhangsan")["errcode"] == 40014
    tok = token(http)
    assert call(http, "user/get", tok, userid="zhangsan")["name"] == "张三"
    fake.advance(7201)  # past its TTL
    assert call(http, "user/get", tok, userid="zhangsan")["errcode"] == 42001
    fresh = token(http)
    assert fresh != tok and call(http, "user/get", fresh, userid="zhangsan")["errcode"] == 0
    fake.revoke_tokens()
    assert call(http, "user/get", fresh, userid="zhangsan")["errcode"] == 40014


def test_permissions_rate_limits_and_malformed_bodies(http: TestClient, fake: FakeWeCom) -> None:
    limited = token(http, secret=seed.LIMITED_SECRET)
    assert call(http, "externalcontact/list", limited, userid="zhangsan")["errcode"] == 48002
    tok = token(http)
    fake.set_limit("user/get", 2, 60)
    assert [call(http, "user/get", tok, userid="lisi")["errcode"] for _ in range(3)] == [0, 0, 45009]
    fake.advance(61)
    tok = token(http)
    assert call(http, "user/get", tok, userid="lisi")["errcode"] == 0
    bad = http.post("/cgi-bin/message/send", params={"access_token": tok}, content=b"{not json").json()
    assert bad["errcode"] == 47001
    assert http.get("/cgi-bin/message/send", params={"access_token": tok}).json()["errcode"] == 43002
    assert http.get("/cgi-bin/no/such/api").status_code == 404


def test_message_send_contract(http: TestClient, fake: FakeWeCom) -> None:
    tok = token(http)
    base = {"touser": "zhangsan", "agentid": seed.SANDBOX_AGENT, "msgtype": "text", "text": {"content": "hi"}}
    assert call(http, "message/send", tok, base)["errcode"] == 0
    assert call(http, "message/send", tok, {**base, "agentid": 1})["errcode"] == 40056
    assert call(http, "message/send", tok, {k: v for k, v in base.items() if k != "agentid"})["errcode"] == 41011
    assert call(http, "message/send", tok, {**base, "text": {"content": ""}})["errcode"] == 44004
    assert call(http, "message/send", tok, {**base, "msgtype": "sticker"})["errcode"] == 40008
    assert call(http, "message/send", tok, {**base, "touser": "ghost"})["errcode"] == 81013
    assert call(http, "message/send", tok, {**base, "touser": ""})["errcode"] == 40058
    assert call(http, "message/send", tok, {**base, "msgtype": "file", "file": {"media_id": "nope"}})["errcode"] == 40007
    assert call(http, "message/send", tok, {**base, "msgtype": "textcard", "textcard": {"title": "t"}})["errcode"] == 40058
    partial = call(http, "message/send", tok, {**base, "touser": "zhangsan|ghost", "toparty": "2|77", "totag": "9"})
    assert (partial["errcode"], partial["invaliduser"], partial["invalidparty"], partial["invalidtag"]) == (0, "ghost", "77", "9")
    assert len(fake.corp().messages) == 2


def test_directory_and_customer_contract(http: TestClient) -> None:
    tok = token(http)
    assert call(http, "user/get", tok, userid="ghost")["errcode"] == 60111
    assert call(http, "user/getuserid", tok, {"mobile": "10000000000"})["errcode"] == 46004
    assert call(http, "user/simplelist", tok, department_id="42")["errcode"] == 60123
    assert call(http, "externalcontact/get", tok, external_userid="wmGhost")["errcode"] == 40096
    mark = {"userid": "lisi", "external_userid": "wmCustomer001", "add_tag": ["etTagVip"]}
    assert call(http, "externalcontact/mark_tag", tok, mark)["errcode"] == 84061
    assert call(http, "externalcontact/mark_tag", tok, {**mark, "userid": "zhangsan", "add_tag": []})["errcode"] == 40058
    assert call(http, "externalcontact/mark_tag", tok, {**mark, "userid": "zhangsan", "add_tag": ["etX"]})["errcode"] == 40068
    dup = call(http, "externalcontact/add_corp_tag", tok, {"group_id": "etGroupSource", "tag": [{"name": "广告"}]})
    assert dup["errcode"] == 40071
    assert call(http, "externalcontact/add_corp_tag", tok, {"tag": [{"name": "x"}]})["errcode"] == 40058
    assert call(http, "externalcontact/add_contact_way", tok, {"type": 1, "scene": 2, "user": ["zhangsan"],
                                                               "state": "x" * 31})["errcode"] == 40058
    assert call(http, "externalcontact/add_contact_way", tok, {"type": 1, "scene": 2, "user": ["a", "b"]})["errcode"] == 40058


def test_cursor_paging(http: TestClient, fake: FakeWeCom) -> None:
    for i in range(4):
        fake.customer_added("lisi", f"c{i}")
    tok = token(http)
    seen, cursor, pages = [], "", 0
    while True:
        page = call(http, "externalcontact/batch/get_by_user", tok, {"userid_list": ["lisi"], "cursor": cursor, "limit": 2})
        assert page["errcode"] == 0
        seen += [c["external_contact"]["external_userid"] for c in page["external_contact_list"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 5
    for bad in ({"userid_list": ["lisi"], "limit": 101}, {"userid_list": ["lisi"], "cursor": "garbage!"}, {"limit": 5},
                {"userid_list": ["ghost"]}):
        assert call(http, "externalcontact/batch/get_by_user", tok, bad)["errcode"] != 0


def test_welcome_codes_are_single_use_and_short_lived(http: TestClient, fake: FakeWeCom) -> None:
    tok = token(http)
    event = fake.customer_added("zhangsan", "Lucy", state="expo")
    assert event["ChangeType"] == "add_external_contact" and event["State"] == "expo"
    body = {"welcome_code": event["WelcomeCode"], "text": {"content": "hi"}}
    assert call(http, "externalcontact/send_welcome_msg", tok, {"welcome_code": event["WelcomeCode"]})["errcode"] == 40058
    assert call(http, "externalcontact/send_welcome_msg", tok, body)["errcode"] == 0
    assert call(http, "externalcontact/send_welcome_msg", tok, body)["errcode"] == 41051
    late = fake.customer_added("zhangsan", "Lily")
    fake.advance(21)
    tok = token(http)
    assert call(http, "externalcontact/send_welcome_msg", tok, {**body, "welcome_code": late["WelcomeCode"]})["errcode"] == 41051


def test_robot_contract(http: TestClient, fake: FakeWeCom) -> None:
    send = lambda body, key=seed.ROBOT_KEY: http.post("/cgi-bin/webhook/send", params={"key": key}, json=body).json()  # noqa: E731
    text = {"msgtype": "text", "text": {"content": "hi"}}
    assert send(text, key="nope")["errcode"] == 93000
    raw = b"\x89PNG image"
    image = {"msgtype": "image", "image": {"base64": base64.b64encode(raw).decode(), "md5": hashlib.md5(raw).hexdigest()}}
    assert send(image)["errcode"] == 0
    assert send({"msgtype": "image", "image": {**image["image"], "md5": "0" * 32}})["errcode"] == 40058
    assert send({"msgtype": "file", "file": {"media_id": "nope"}})["errcode"] == 40007
    # 20 requests a minute per robot, the three above included (rejected ones count too)
    assert [send(text)["errcode"] for _ in range(18)] == [0] * 17 + [45009]
    fake.advance(61)
    assert send(text)["errcode"] == 0


def test_callbacks_are_signed_and_encrypted_for_the_corp(fake: FakeWeCom) -> None:
    from connectors.wecom.xmlcodec import parse_xml

    event = fake.text_message("zhangsan", "hello")
    query, body = fake.encrypt_callback(event)
    envelope = parse_xml(body)
    assert envelope["ToUserName"] == seed.SANDBOX_CORP and envelope["AgentID"] == seed.SANDBOX_AGENT
    plain = fake.callback_crypto().decrypt_verified(query["msg_signature"], query["timestamp"], query["nonce"], envelope["Encrypt"])
    assert parse_xml(plain) == event
