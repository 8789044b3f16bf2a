"""The DingTalk HTTP event callback trigger (``/hooks/dingtalk/<path>``).

DingTalk POSTs ``?signature=&timestamp=&nonce=`` (``msg_signature``/``timeStamp`` in some
docs) with ``{"encrypt": "…"}``. The ciphertext is the WXBizMsgCrypt scheme
(:mod:`connectors.sdk.callback_crypto`) with the owner key as receive id: the AppKey for
subscriptions configured in the developer console (default), the CorpId for
``register_call_back``, the SuiteKey for ISV apps. Every delivery, the ``check_url``
handshake included, must be answered within 1500 ms by the *encrypted* string "success".
"""
from __future__ import annotations

import time
from typing import Any

import orjson

from connectors.dingtalk.base import connector
from connectors.sdk import RequestInfo, WebhookRejected, WebhookResponse, WebhookTrigger, add_trigger
from connectors.sdk.callback_crypto import InvalidAesKey, MsgCrypt
from connectors.sdk.triggers import content_key
from engine.errors import InvalidInput

#: Events answered as URL verification (console check, ISV suite checks).
HANDSHAKE_EVENTS = frozenset({"check_url", "check_create_suite_url", "check_update_suite_url"})
#: A delivery signed longer ago than this (seconds) is a replay; the trigger's `config.max_age_seconds` overrides it (0: no check).
MAX_AGE_SECONDS = 3600


def crypt_for(request: RequestInfo) -> MsgCrypt:
    """The MsgCrypt of the trigger's connection (token, aes_key, owner key); rejects when they are missing."""
    fields = request.connection or {}
    token, aes_key = fields.get("callback_token"), fields.get("callback_aes_key")
    owner = fields.get("callback_owner_key") or fields.get("app_key")
    if not token or not aes_key or not owner:
        raise WebhookRejected("the dingtalk connection needs callback_token, callback_aes_key and app_key "
                              "(or callback_owner_key) to accept callbacks")
    try:
        return MsgCrypt(str(token), str(aes_key), str(owner), millisecond_timestamps=True)
    except InvalidAesKey as exc:
        raise WebhookRejected(f"the connection's callback_aes_key is invalid: {exc}") from None


def _signed_parts(request: RequestInfo) -> tuple[str, str, str, str]:
    """(signature, timestamp, nonce, encrypt) of a delivery; rejects a delivery missing any."""
    q = request.query
    signature = q.get("signature") or q.get("msg_signature")
    timestamp = q.get("timestamp") or q.get("timeStamp")
    nonce = q.get("nonce")
    try:
        body = orjson.loads(request.body) if request.body else None
    except orjson.JSONDecodeError:
        body = None
    encrypt = body.get("encrypt") if isinstance(body, dict) else None
    if not (signature and timestamp and nonce and isinstance(encrypt, str) and encrypt):
        raise WebhookRejected("not a DingTalk callback: signature, timestamp, nonce or the encrypt body is missing")
    return signature, timestamp, nonce, encrypt


def _check_age(request: RequestInfo, timestamp: str) -> None:
    max_age = float(request.config.get("max_age_seconds", MAX_AGE_SECONDS))
    if max_age <= 0:
        return
    if not timestamp.isdigit():
        raise WebhookRejected("callback timestamp is not a number")
    sent = int(timestamp) / (1000 if len(timestamp) > 10 else 1)  # DingTalk signs milliseconds
    if abs(time.time() - sent) > max_age:
        raise WebhookRejected(f"callback timestamp is more than {max_age:g} s away from now (replayed or clock skew)")


def decrypt(request: RequestInfo) -> str:
    """Verify the signature, decrypt, and check padding, length and receive id; the plaintext."""
    signature, timestamp, nonce, encrypt = _signed_parts(request)
    return crypt_for(request).decrypt_verified(signature, timestamp, nonce, encrypt)


def decrypt_event(request: RequestInfo) -> dict[str, Any]:
    """The decrypted event; InvalidInput (answered 400) when an authentic payload is not a JSON object."""
    plaintext = decrypt(request)
    try:
        event = orjson.loads(plaintext)
    except orjson.JSONDecodeError:
        raise InvalidInput("the decrypted callback is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidInput("the decrypted callback is not a JSON object")
    return event


def verify(request: RequestInfo) -> None:
    """Reject unsigned, mis-signed, stale, truncated or foreign (other owner key) deliveries."""
    _, timestamp, _, _ = _signed_parts(request)
    _check_age(request, timestamp)
    decrypt(request)


def encrypted_success(request: RequestInfo) -> WebhookResponse:
    """The only answer DingTalk accepts: the encrypted, signed "success"."""
    sealed = crypt_for(request).encrypt("success")
    return WebhookResponse(body={"msg_signature": sealed.signature, "timeStamp": sealed.timestamp,
                                 "nonce": sealed.nonce, "encrypt": sealed.encrypted})


def handshake(request: RequestInfo) -> WebhookResponse | None:
    """Answer the console's ``check_url`` (and ISV suite checks) with the encrypted "success"."""
    event = decrypt_event(request)
    return encrypted_success(request) if event.get("EventType") in HANDSHAKE_EVENTS else None


def parse(request: RequestInfo) -> list[dict[str, Any]]:
    """The event as one run's trigger data; `config.event_types` keeps only the listed EventTypes."""
    event = decrypt_event(request)
    wanted = request.config.get("event_types")
    if wanted and event.get("EventType") not in set(wanted):
        return []
    return [event]


def event_key(event: dict[str, Any]) -> str:
    """A redelivery's identity: Stream-style ``eventId`` when present, else the event's content
    (DingTalk re-pushes the same plaintext, timestamps included)."""
    return str(event.get("eventId") or content_key(event))


def ack(request: RequestInfo, events: list[Any]) -> WebhookResponse:
    """Acknowledge a delivery (also one whose events were all filtered out or duplicates)."""
    return encrypted_success(request)


SAMPLE = {
    "EventType": "bpms_instance_change", "processInstanceId": "a171de6c-8bc0-4a2b-9c6e-2a1d0a3f0f0b",
    "corpId": "ding0123456789abcdef", "createTime": 1764000000000, "finishTime": 1764003600000,
    "title": "张三提交的大额订单审批", "type": "finish", "result": "agree", "staffId": "manager01",
    "processCode": "PROC-FF6Y4BE1-N3L5-4U2G-XXXX", "businessId": "202611231234000123",
}

OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "EventType": {"type": "string", "description": "bpms_instance_change, bpms_task_change, user_add_org, "
                                                       "user_leave_org, chat_add_member, chat_update_title ..."},
        "processInstanceId": {"type": "string"}, "type": {"type": "string", "description": "start / finish / terminate"},
        "result": {"type": "string", "description": "agree / refuse (finish events)"},
        "UserId": {"type": "array", "items": {"type": "string"}, "description": "user_* events"},
        "ChatId": {"type": "string"}, "CorpId": {"type": "string"}, "corpId": {"type": "string"},
    },
    "required": ["EventType"],
}

add_trigger(connector, WebhookTrigger(
    name="event",
    title={"en": "DingTalk event (callback)", "zh": "钉钉事件订阅（HTTP 推送）"},
    description="Approval changes (bpms_instance_change / bpms_task_change), contact changes (user_add_org, "
                "user_leave_org, ...), group chat changes. Configure https://<host>/hooks/dingtalk/<path> with the "
                "connection's token and aes_key in the developer console. Config: event_types (optional filter), "
                "max_age_seconds (replay window, default 3600).",
    sample=SAMPLE,
    output_schema=OUTPUT_SCHEMA,
    verify=verify,
    handshake=handshake,
    parse=parse,
    dedupe_key=event_key,
    ack=ack,
))
