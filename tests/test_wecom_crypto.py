"""WeCom callback crypto and parsing, through the trigger's own hooks: wechatpy's published
vectors, random round trips (hypothesis), and everything that must be rejected (tampered
signature, wrong key, wrong receive id or corp, truncated ciphertext, stale timestamps)."""
from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sdk.callback_crypto import MsgCrypt
from connectors.sdk.triggers import RequestInfo, WebhookRejected
from connectors.wecom.callback import callback, event_key
from connectors.wecom.xmlcodec import build_xml, parse_xml
from engine.errors import InvalidInput

# wechatpy tests/test_crypto.py (reference §10.1)
TOKEN, AES_KEY, CORP = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"
CONNECTION = {"token": TOKEN, "encoding_aes_key": AES_KEY, "corp_id": CORP}
ANY_TIME = {"replay_window": 10**10}  # the vectors are from 2014
ECHOSTR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
ENCRYPTED = ("RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6y"
             "dJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/T"
             "ywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5"
             "t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=")
REPLY_XML = ("<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA["
             "wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n"
             "<CreateTime>1411525903</CreateTime>\n</xml>")
REPLY_ENCRYPTED = ("9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObv"
                   "esEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8"
                   "NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O"
                   "5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3")


def request(method: str, query: dict[str, str], body: bytes = b"", connection: dict[str, Any] | None = None,
            config: dict[str, Any] | None = None) -> RequestInfo:
    return RequestInfo(method=method, path="wecom/corp-a", query=query, body=body,
                       connection=CONNECTION if connection is None else connection, config=config or {})


def push(encrypted: str, signature: str, timestamp: str, nonce: str, to_user: str = CORP, **kw: Any) -> RequestInfo:
    body = build_xml({"ToUserName": to_user, "AgentID": 1, "Encrypt": encrypted}).encode()
    return request("POST", {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}, body, **kw)


async def test_wechatpy_url_verification_vector() -> None:
    good = request("GET", {"msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "timestamp": "1411443780",
                           "nonce": "437374425", "echostr": ECHOSTR}, config=ANY_TIME)
    result = await callback.handle(good)
    assert result.handshake and result.response.status == 200 and result.response.body == "5927782489442352469"
    bad_nonce = request("GET", {**good.query, "nonce": "437374424"}, config=ANY_TIME)
    with pytest.raises(WebhookRejected, match="signature"):
        await callback.handle(bad_nonce)


async def test_wechatpy_message_vector_parses_to_an_event() -> None:
    delivery = push(ENCRYPTED, "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", config=ANY_TIME)
    result = await callback.handle(delivery)
    assert result.events == [{"ToUserName": CORP, "FromUserName": "messense", "CreateTime": 1411525903, "MsgType": "text",
                              "Content": "test", "MsgId": "4363689963896700987", "AgentID": 1}]
    assert result.response.status == 200 and result.response.body == ""
    assert callback.event_key(result.events[0]) == "msg:4363689963896700987"


def test_wechatpy_encrypt_vector() -> None:
    sealed = MsgCrypt(TOKEN, AES_KEY, CORP).encrypt(REPLY_XML, nonce="461056294", timestamp="1411525903",
                                                    random_prefix=b"1234567890123456")
    assert sealed.encrypted == REPLY_ENCRYPTED
    assert sealed.signature == "407518b7649e86ef23978113f92d27afa9296533"


def _sealed_push(event: dict[str, Any], *, key: str = AES_KEY, receive_id: str = CORP, token: str = TOKEN,
                 timestamp: int | None = None, to_user: str = CORP) -> RequestInfo:
    sealed = MsgCrypt(token, key, receive_id).encrypt(build_xml(event), timestamp=timestamp or int(time.time()))
    return push(sealed.encrypted, sealed.signature, sealed.timestamp, sealed.nonce, to_user=to_user)


keys = st.binary(min_size=32, max_size=32).map(lambda raw: base64.b64encode(raw).decode()[:43])
# XML 1.0 cannot carry control characters (and normalises \r), so texts leave them out
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=300)
names = st.from_regex(r"[A-Z][A-Za-z]{0,15}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(key=keys, corp=st.from_regex(r"ww[a-z0-9]{6,16}", fullmatch=True), token=st.text(min_size=1, max_size=32),
       fields=st.dictionaries(names.filter(lambda n: n not in ("CreateTime", "AgentID")), texts, max_size=6))
def test_random_round_trips_through_the_trigger(key: str, corp: str, token: str, fields: dict[str, str]) -> None:
    event = {"ToUserName": corp, "CreateTime": 1700000000, "MsgType": "event", **fields}
    connection = {"token": token, "encoding_aes_key": key, "corp_id": corp}
    crypto = MsgCrypt(token, key, corp)
    sealed = crypto.encrypt(build_xml(event))
    body = build_xml({"ToUserName": corp, "Encrypt": sealed.encrypted}).encode()
    delivery = request("POST", {"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce},
                       body, connection=connection)
    result = asyncio.run(callback.handle(delivery))
    assert result.events == [event]


@settings(max_examples=60, deadline=None)
@given(plain=st.binary(max_size=500), key=keys)
def test_random_bytes_round_trip_and_any_tampering_is_caught(plain: bytes, key: str) -> None:
    crypto = MsgCrypt(TOKEN, key, CORP)
    text = plain.decode("latin-1")
    sealed = crypto.encrypt(text)
    assert crypto.decrypt_verified(sealed.signature, sealed.timestamp, sealed.nonce, sealed.encrypted) == text
    flipped = sealed.signature[:-1] + ("0" if sealed.signature[-1] != "0" else "1")
    with pytest.raises(WebhookRejected):
        crypto.decrypt_verified(flipped, sealed.timestamp, sealed.nonce, sealed.encrypted)


async def test_rejections() -> None:
    event = {"ToUserName": CORP, "FromUserName": "sys", "CreateTime": int(time.time()), "MsgType": "event", "Event": "x"}
    ok = _sealed_push(event)
    assert (await callback.handle(ok)).events[0]["Event"] == "x"

    tampered = request("POST", {**ok.query, "msg_signature": "0" * 40}, ok.body)
    other_key = "A" * 42 + "Q"  # a valid but different EncodingAESKey
    wrong_key = _sealed_push(event, key=other_key)
    wrong_receiver = _sealed_push(event, receive_id="ww-someone-else")
    wrong_corp = _sealed_push(event, receive_id="ww-someone-else", to_user="ww-someone-else")
    stale = _sealed_push(event, timestamp=int(time.time()) - 3600)
    future = _sealed_push(event, timestamp=int(time.time()) + 3600)
    sealed = MsgCrypt(TOKEN, AES_KEY, CORP).encrypt(build_xml(event))
    truncated_text = sealed.encrypted[:-24]
    truncated_sig = MsgCrypt(TOKEN, AES_KEY, CORP).signature(sealed.timestamp, sealed.nonce, truncated_text)
    truncated = push(truncated_text, truncated_sig, sealed.timestamp, sealed.nonce)
    no_encrypt = request("POST", dict(ok.query), build_xml({"ToUserName": CORP}).encode())
    not_xml = request("POST", dict(ok.query), b"{}")
    no_config = request("POST", dict(ok.query), ok.body, connection={"corp_id": CORP})
    cases = {"tampered": (tampered, "signature"), "wrong key": (wrong_key, ""), "wrong receive id": (wrong_receiver, "receive id"),
             "wrong corp": (wrong_corp, "not this connection's corp"), "stale": (stale, "replayed"),
             "future": (future, "replayed"), "truncated": (truncated, ""), "no Encrypt": (no_encrypt, "Encrypt"),
             "not xml": (not_xml, "not a WeCom callback"), "no token": (no_config, "token")}
    for name, (delivery, reason) in cases.items():
        with pytest.raises(WebhookRejected, match=reason or None):
            await callback.handle(delivery)
            pytest.fail(f"{name} was accepted")


async def test_replay_window_is_configurable() -> None:
    event = {"ToUserName": CORP, "CreateTime": 1, "MsgType": "event"}
    old = _sealed_push(event, timestamp=int(time.time()) - 100)
    assert (await callback.handle(old)).events
    old.config = {"replay_window": 60}
    with pytest.raises(WebhookRejected, match="60 s"):
        await callback.handle(old)


async def test_a_decrypted_body_that_is_not_xml_is_invalid_input() -> None:
    sealed = MsgCrypt(TOKEN, AES_KEY, CORP).encrypt("not xml at all")
    with pytest.raises(InvalidInput):
        await callback.handle(push(sealed.encrypted, sealed.signature, sealed.timestamp, sealed.nonce))


def test_event_keys_follow_wecom_advice() -> None:
    add = {"FromUserName": "sys", "CreateTime": 5, "Event": "change_external_contact", "ChangeType": "add_external_contact",
           "UserID": "u", "ExternalUserID": "wm1", "WelcomeCode": "w1"}
    retry = {**add, "WelcomeCode": "w1"}
    other = {**add, "ExternalUserID": "wm2"}
    assert event_key(add) == event_key(retry) != event_key(other)
    assert event_key({"MsgId": "42", "CreateTime": 1}) == "msg:42"


def test_xml_codec() -> None:
    fields = {"A": "x]]>y", "CreateTime": 7, "Nested": {"Item": [{"K": "1"}, {"K": "2"}]}, "Empty": ""}
    assert parse_xml(build_xml(fields)) == fields
    with pytest.raises(InvalidInput, match="DTD"):
        parse_xml(b'<!DOCTYPE x [<!ENTITY a "b">]><xml><A>&a;</A></xml>')
    with pytest.raises(InvalidInput, match="well-formed"):
        parse_xml(b"<xml><A></xml>")
