"""Douyin callback triggers: ``/hooks/douyin/<path>`` checks, answers and parses deliveries.

- verify: ``X-Douyin-Signature`` must be SHA1(client_secret + raw body) with the trigger
  connection's client_secret, and a delivery naming another client_key is refused;
- handshake: ``verify_webhook`` is answered at once with ``{"challenge": <challenge>}``;
- parse: the delivery as one normalised event (:mod:`connectors.douyin.events`), or none
  when the trigger does not want that event type (Douyin sends every subscribed event
  to the app's one URL);
- dedupe: by the ``Msg-Id`` header (Douyin retries with the same id);
- ack: HTTP 200 right after the event is stored (Douyin drops the connection after 5 s).
"""
from __future__ import annotations

from typing import Any

import orjson

from connectors.douyin.events import normalise, parse_envelope
from connectors.douyin.signature import MSG_ID_HEADER, SIGNATURE_HEADER, signature_matches
from connectors.sdk.triggers import RequestInfo, WebhookRejected, WebhookResponse, WebhookTrigger

ACK = WebhookResponse(200, {"err_no": 0, "err_msg": "success"})


def verify(request: RequestInfo) -> None:
    """Reject a delivery whose signature or client_key does not match the trigger's connection."""
    connection = request.connection or {}
    secret = connection.get("client_secret")
    if not secret:
        raise WebhookRejected("the trigger's connection has no client_secret to check X-Douyin-Signature with")
    if not signature_matches(str(secret), request.body, request.header(SIGNATURE_HEADER)):
        raise WebhookRejected("X-Douyin-Signature does not match the body (a wrong client_secret or a modified body)")
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return  # signed but malformed: parse answers 400
    sent_key = body.get("client_key") if isinstance(body, dict) else None
    own_key = connection.get("client_key")
    if sent_key and own_key and sent_key != own_key:
        raise WebhookRejected(f"the delivery is for client_key {sent_key}, not this connection's app")


def handshake(request: RequestInfo) -> WebhookResponse | None:
    """Answer ``verify_webhook`` with its challenge; None for ordinary events."""
    envelope = parse_envelope(request.body)
    if envelope["event"] != "verify_webhook":
        return None
    challenge = envelope["content"].get("challenge")
    return WebhookResponse(200, {"challenge": challenge})


def ack(request: RequestInfo, events: list[Any]) -> WebhookResponse:
    """Douyin only needs a 200 within 5 s."""
    return ACK


def _parser(wanted: str | None):  # noqa: ANN202
    def parse(request: RequestInfo) -> list[dict[str, Any]]:
        event = normalise(parse_envelope(request.body), request.header(MSG_ID_HEADER), request.config)
        types = request.config.get("types") if wanted is None else [wanted]
        events = request.config.get("events")
        if types and event["type"] not in types:
            return []
        if wanted is None and events and event["event"] not in events:
            return []
        return [event]

    parse.__doc__ = f"The delivery as one normalised event{'' if wanted is None else f' when it is a {wanted}'}."
    return parse


def _msg_id(event: dict[str, Any]) -> str | None:
    return event.get("msg_id") or None


_ENVELOPE_PROPS: dict[str, Any] = {
    "event": {"type": "string", "description": "Douyin's event name, e.g. im_receive_msg"},
    "type": {"type": "string", "enum": ["comment", "new_follower", "private_message", "lead", "other"]},
    "msg_id": {"type": "string", "description": "the Msg-Id header (the same on redeliveries)"},
    "client_key": {"type": "string"},
    "from_user_id": {"type": "string"},
    "to_user_id": {"type": "string"},
    "log_id": {"type": "string"},
    "content": {"type": "object", "description": "the event's content, parsed"},
}
_SCHEMAS: dict[str, dict[str, Any]] = {
    "comment": {"type": "object", "properties": {
        "comment_id": {"type": "string"}, "item_id": {"type": "string"}, "text": {"type": "string"},
        "user_open_id": {"type": "string"}, "nickname": {"type": "string"}, "create_time": {"type": ["integer", "null"]},
        "reply_to_comment_id": {"type": "string"}}},
    "follower": {"type": "object", "properties": {
        "open_id": {"type": "string"}, "nickname": {"type": "string"}, "avatar": {"type": "string"},
        "create_time": {"type": ["integer", "null"]}}},
    "message": {"type": "object", "properties": {
        "conversation_id": {"type": "string"}, "server_message_id": {"type": "string"}, "message_type": {"type": "string"},
        "text": {"type": "string"}, "create_time": {"type": ["integer", "null"]}, "sender_open_id": {"type": "string"},
        "sender_nickname": {"type": "string"}}},
    "lead": {"type": "object", "description": "fields from config.lead_fields (defaults documented)", "properties": {
        name: {} for name in ("lead_id", "name", "phone", "city", "source", "ad_id", "remark", "open_id", "create_time")}},
}


def _schema(part: str | None) -> dict[str, Any]:
    props = dict(_ENVELOPE_PROPS)
    if part is None:
        props.update(_SCHEMAS)
    else:
        props[part] = _SCHEMAS[part]
    required = ["event", "type", "msg_id", "content"] + ([part] if part else [])
    return {"type": "object", "properties": props, "required": required}


_ENVELOPE_SAMPLE = {"msg_id": "msg-4e1c2a9b0d3f5a67", "client_key": "aw_sandbox_key", "to_user_id": "open-sandbox-1",
                    "log_id": "20261123152000010212345678"}
SAMPLES: dict[str, dict[str, Any]] = {
    "comment": {**_ENVELOPE_SAMPLE, "event": "item_comment_reply", "type": "comment", "from_user_id": "open-viewer-1",
                "content": {"comment_id": "cmt-7", "content": "How much is the oolong?", "reply_to_item_id": "@9VwK000001"},
                "comment": {"comment_id": "cmt-7", "item_id": "@9VwK000001", "text": "How much is the oolong?",
                            "user_open_id": "open-viewer-1", "nickname": "Wang Fang", "create_time": 1763910000,
                            "reply_to_comment_id": ""}},
    "new_follower": {**_ENVELOPE_SAMPLE, "event": "new_follow_action", "type": "new_follower", "from_user_id": "open-fan-9",
                     "content": {"open_id": "open-fan-9", "nick_name": "Li Na"},
                     "follower": {"open_id": "open-fan-9", "nickname": "Li Na", "avatar": "", "create_time": 1763910000}},
    "private_message": {**_ENVELOPE_SAMPLE, "event": "im_receive_msg", "type": "private_message", "from_user_id": "open-viewer-1",
                        "content": {"conversation_short_id": "conv-open-viewer-1", "server_message_id": "smsg-12",
                                    "message_type": "text", "text": "Do you ship to Hangzhou?"},
                        "message": {"conversation_id": "conv-open-viewer-1", "server_message_id": "smsg-12",
                                    "message_type": "text", "text": "Do you ship to Hangzhou?", "create_time": 1763910000000,
                                    "sender_open_id": "open-viewer-1", "sender_nickname": "Wang Fang"}},
    "lead": {**_ENVELOPE_SAMPLE, "event": "website_contact", "type": "lead", "from_user_id": "open-viewer-3",
             "content": {"clue_id": "clue-1", "name": "Zhang Wei", "telephone": "13800001111", "city": "Hangzhou",
                         "ad_id": "ad-77"},
             "lead": {"lead_id": "clue-1", "name": "Zhang Wei", "phone": "13800001111", "city": "Hangzhou",
                      "source": "website_contact", "ad_id": "ad-77", "remark": None, "open_id": "open-viewer-3",
                      "create_time": None}},
}

_TITLES = {
    None: ({"en": "Any Douyin event", "zh": "抖音事件"}, "Every subscribed event; `config.types` / `config.events` filter."),
    "comment": ({"en": "New comment", "zh": "新评论"}, "A viewer commented on one of the account's videos."),
    "new_follower": ({"en": "New follower", "zh": "新粉丝"}, "A user followed the account."),
    "private_message": ({"en": "Private message received", "zh": "收到私信"},
                        "A user sent the account a private message (reply with send_im_reply within 24 h)."),
    "lead": ({"en": "New lead", "zh": "新线索"}, "A lead (clue) push, mapped by `config.lead_fields` to a normalised lead."),
}
_PARTS = {None: None, "comment": "comment", "new_follower": "follower", "private_message": "message", "lead": "lead"}


def build_trigger(name: str, wanted: str | None) -> WebhookTrigger:
    """The callback trigger for one event type (None: every event)."""
    title, description = _TITLES[wanted]
    return WebhookTrigger(name=name, title=title, description=description,
                          sample=SAMPLES[wanted or "private_message"], output_schema=_schema(_PARTS[wanted]),
                          verify=verify, handshake=handshake, parse=_parser(wanted), dedupe_key=_msg_id, ack=ack)


TRIGGERS = [build_trigger("event", None), build_trigger("new_comment", "comment"),
            build_trigger("new_follower", "new_follower"), build_trigger("private_message", "private_message"),
            build_trigger("new_lead", "lead")]
