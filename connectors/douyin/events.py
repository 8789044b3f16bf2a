"""Douyin webhook events as flows see them: one clean JSON shape per event type.

Douyin pushes ``{"event", "client_key", "from_user_id", "to_user_id", "content" (a JSON
string), "log_id"}`` with a ``Msg-Id`` header. :func:`normalise` turns that into::

    {"event": "im_receive_msg", "type": "private_message", "msg_id", "client_key",
     "from_user_id", "to_user_id", "log_id", "content": {...parsed...},
     "message": {...}}          # or "comment", "follower", "lead"

Lead (clue) pushes are not confirmed by Douyin's open-platform docs, so their fields are
read with JMESPath mappings: :data:`DEFAULT_LEAD_FIELDS`, overridden per flow by the
trigger's ``config.lead_fields`` (and ``config.lead_events`` for the event names).
"""
from __future__ import annotations

from typing import Any, Mapping

import orjson

from engine.errors import InvalidInput
from engine.expressions import ExpressionSyntaxError, compile_expression

COMMENT_EVENTS = ("item_comment_reply",)
FOLLOW_EVENTS = ("new_follow_action",)
MESSAGE_EVENTS = ("im_receive_msg",)
#: lead pushes named in the platform reference (website form, profile tab, phone call)
DEFAULT_LEAD_EVENTS = ("website_contact", "personal_tab_contact", "dial_phone")

#: The normalised lead: field -> JMESPath over ``{event, msg_id, from_user_id, to_user_id, client_key, log_id, content}``.
DEFAULT_LEAD_FIELDS: dict[str, str] = {
    "lead_id": "content.clue_id || content.lead_id || msg_id",
    "name": "content.name || content.nick_name",
    "phone": "content.telephone || content.phone || content.mobile",
    "city": "content.city || content.location.city",
    "source": "event",
    "ad_id": "content.ad_id || content.promotion_id",
    "remark": "content.remark || content.message",
    "open_id": "from_user_id || content.open_id",
    "create_time": "content.create_time",
}


def parse_envelope(body: bytes) -> dict[str, Any]:
    """The delivery's JSON object with ``content`` decoded; InvalidInput when malformed."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Douyin webhook body is not JSON: {exc}") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("event"), str):
        raise InvalidInput("Douyin webhook body must be a JSON object with an `event`")
    content = envelope.get("content")
    if isinstance(content, str):
        try:
            content = orjson.loads(content) if content.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"Douyin webhook `content` is not JSON: {exc}") from None
    envelope["content"] = content if isinstance(content, dict) else {}
    return envelope


def event_type(event: str, lead_events: tuple[str, ...] = DEFAULT_LEAD_EVENTS) -> str:
    """``comment``, ``new_follower``, ``private_message``, ``lead`` or ``other``."""
    if event in COMMENT_EVENTS:
        return "comment"
    if event in FOLLOW_EVENTS:
        return "new_follower"
    if event in MESSAGE_EVENTS:
        return "private_message"
    if event in lead_events:
        return "lead"
    return "other"


def normalise(envelope: Mapping[str, Any], msg_id: str | None, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The flow's view of one parsed delivery (see the module docstring)."""
    config = config or {}
    lead_events = tuple(config.get("lead_events") or DEFAULT_LEAD_EVENTS)
    content = dict(envelope.get("content") or {})
    base: dict[str, Any] = {
        "event": envelope["event"],
        "type": event_type(envelope["event"], lead_events),
        "msg_id": msg_id or envelope.get("log_id") or "",
        "client_key": envelope.get("client_key") or "",
        "from_user_id": envelope.get("from_user_id") or "",
        "to_user_id": envelope.get("to_user_id") or "",
        "log_id": envelope.get("log_id") or "",
        "content": content,
    }
    kind = base["type"]
    if kind == "comment":
        base["comment"] = _comment(base, content)
    elif kind == "new_follower":
        base["follower"] = {"open_id": content.get("open_id") or base["from_user_id"], "nickname": content.get("nick_name") or "",
                            "avatar": content.get("avatar") or "", "create_time": content.get("create_time")}
    elif kind == "private_message":
        base["message"] = _message(base, content)
    elif kind == "lead":
        base["lead"] = map_lead(base, config.get("lead_fields"))
    return base


def _comment(base: Mapping[str, Any], content: Mapping[str, Any]) -> dict[str, Any]:
    return {"comment_id": content.get("comment_id") or "", "item_id": content.get("reply_to_item_id") or "",
            "text": content.get("content") or "", "user_open_id": content.get("comment_user_id") or base["from_user_id"],
            "nickname": content.get("nick_name") or "", "create_time": content.get("create_time"),
            "reply_to_comment_id": content.get("reply_to_comment_id") or ""}


def _message(base: Mapping[str, Any], content: Mapping[str, Any]) -> dict[str, Any]:
    users = content.get("user_infos") or []
    sender = next((u for u in users if isinstance(u, dict) and u.get("open_id") == base["from_user_id"]), {})
    return {"conversation_id": content.get("conversation_short_id") or "",
            "server_message_id": content.get("server_message_id") or "",
            "message_type": content.get("message_type") or "", "text": content.get("text") or "",
            "create_time": content.get("create_time"), "sender_open_id": base["from_user_id"],
            "sender_nickname": sender.get("nick_name") or ""}


def lead_mapping(overrides: Mapping[str, Any] | None) -> dict[str, str]:
    """The default lead fields updated with a trigger's ``config.lead_fields`` (a null drops a field)."""
    fields = dict(DEFAULT_LEAD_FIELDS)
    for name, path in (overrides or {}).items():
        if path is None:
            fields.pop(name, None)
        elif isinstance(path, str):
            fields[name] = path
        else:
            raise InvalidInput(f"config.lead_fields.{name} must be a JMESPath string or null")
    return fields


def map_lead(source: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A normalised lead read from `source` with the (default or configured) mappings."""
    lead: dict[str, Any] = {}
    for name, path in lead_mapping(overrides).items():
        try:
            value = compile_expression(path).search(dict(source))
        except ExpressionSyntaxError as exc:
            raise InvalidInput(f"config.lead_fields.{name}: {exc}") from None
        lead[name] = value
    return lead
