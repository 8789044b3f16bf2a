"""`email.new_email`: a poll trigger that starts one run per new message in an IMAP mailbox."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from connectors.email.connector import connector
from connectors.email.imap import Cursor, read_new
from connectors.email.parse import to_item
from connectors.email.settings import server_settings
from connectors.sdk import PollTrigger, add_trigger
from connectors.sdk.action import format_validation_error
from connectors.sdk.triggers import PollState
from engine.errors import InvalidInput


class NewEmailArgs(BaseModel):
    """The poll's ``args`` in a flow's trigger."""

    model_config = {"extra": "forbid"}

    mailbox: str = Field(default="INBOX", min_length=1)
    search: str | None = Field(default=None, description='Extra IMAP SEARCH criteria, e.g. FROM "orders@shop.cn" or UNSEEN.')
    limit: int = Field(default=50, ge=1, le=500, description="At most this many messages per poll (the rest next time).")
    include_attachments: bool = Field(default=False, description="Put attachment bytes (base64) in the item.")

    @field_validator("search")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError("search may not contain line breaks")
        return value


SAMPLE: dict[str, Any] = {
    "key": "1732345678:42", "cursor": "1732345678:42:1763879400", "mailbox": "INBOX", "uid": 42, "uidvalidity": 1732345678,
    "message_id": "<20261123080000.1@shop.cn>", "from": {"name": "订单中心", "address": "orders@shop.cn"},
    "to": [{"name": "", "address": "robot@flowlink.test"}], "cc": [], "reply_to": [],
    "subject": "新订单 A-1024", "date": "2026-11-23T16:30:00+08:00", "received_at": "2026-11-23T08:30:00+00:00",
    "text": "客户：张三\n金额：8000", "html": None,
    "attachments": [{"filename": "order.pdf", "content_type": "application/pdf", "size": 18211}], "size": 25873,
}

_PARTY = {"type": "object", "properties": {"name": {"type": "string"}, "address": {"type": "string"}},
          "required": ["name", "address"]}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["key", "uid", "uidvalidity", "mailbox", "message_id", "from", "to", "subject", "text", "html", "attachments"],
    "properties": {
        "key": {"type": "string", "description": "<UIDVALIDITY>:<UID>"}, "cursor": {"type": "string"},
        "mailbox": {"type": "string"}, "uid": {"type": "integer"}, "uidvalidity": {"type": "integer"},
        "message_id": {"type": "string"}, "from": {"anyOf": [_PARTY, {"type": "null"}]},
        "to": {"type": "array", "items": _PARTY}, "cc": {"type": "array", "items": _PARTY},
        "reply_to": {"type": "array", "items": _PARTY}, "subject": {"type": "string"},
        "date": {"type": ["string", "null"]}, "received_at": {"type": "string"},
        "text": {"type": ["string", "null"]}, "html": {"type": ["string", "null"]}, "size": {"type": "integer"},
        "attachments": {"type": "array", "items": {"type": "object", "required": ["filename", "content_type", "size"],
                                                   "properties": {"filename": {"type": "string"},
                                                                  "content_type": {"type": "string"},
                                                                  "size": {"type": "integer"},
                                                                  "content_base64": {"type": "string"}}}},
    },
}


async def fetch_new_email(ctx: Any, state: PollState) -> list[dict[str, Any]]:
    """New messages since the stored cursor, newest first (as the LAST_ITEM strategy wants)."""
    try:
        args = NewEmailArgs.model_validate(getattr(ctx, "args", None) or {})
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(exc, "trigger.args")) from None
    settings = await server_settings("imap", ctx.connection, ctx.http)
    batch = await read_new(settings, args.mailbox, Cursor.parse(state.last_key) if state.seeded else None,
                           args.limit, args.search)
    items = [to_item(batch.uidvalidity, message, args.mailbox, args.include_attachments) for message in batch.messages]
    return items[::-1]


new_email = add_trigger(connector, PollTrigger(
    name="new_email",
    title={"en": "New email", "zh": "收到新邮件"},
    description="Polls an IMAP mailbox; one run per new message, keyed by UIDVALIDITY and UID.",
    sample=SAMPLE,
    output_schema=OUTPUT_SCHEMA,
    fetch=fetch_new_email,
    item_key="cursor",
    interval=60,
))
