"""A fetched message as a flow's trigger item: decoded headers, bodies, attachment list."""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from connectors.email.imap import Cursor, RawMessage

MAX_INLINE_ATTACHMENT = 5 * 1024 * 1024


def _addresses(message: EmailMessage, header: str) -> list[dict[str, str]]:
    return [{"name": name, "address": address} for name, address in getaddresses([str(v) for v in message.get_all(header, [])])
            if address]


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    return part.get_content()


def _date(message: EmailMessage) -> str | None:
    try:
        value = parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
    except (TypeError, ValueError):
        return None
    return value.isoformat() if value else None


def to_item(uidvalidity: int, fetched: RawMessage, mailbox: str, include_attachments: bool) -> dict[str, Any]:
    """The trigger item of one message (attachment bytes, base64, only when asked and under 5 MiB each)."""
    message: EmailMessage = message_from_bytes(fetched.raw, policy=policy.default)  # type: ignore[assignment]
    attachments = []
    for part in message.iter_attachments():
        content = part.get_payload(decode=True) or b""
        entry: dict[str, Any] = {"filename": part.get_filename() or "", "content_type": part.get_content_type(),
                                 "size": len(content)}
        if include_attachments and len(content) <= MAX_INLINE_ATTACHMENT:
            entry["content_base64"] = base64.b64encode(content).decode()
        attachments.append(entry)
    senders = _addresses(message, "From")
    return {
        "key": f"{uidvalidity}:{fetched.uid}",
        "cursor": Cursor(uidvalidity, fetched.uid, int(fetched.internal_date)).key(),
        "mailbox": mailbox,
        "uid": fetched.uid,
        "uidvalidity": uidvalidity,
        "message_id": str(message["Message-ID"] or ""),
        "from": senders[0] if senders else None,
        "to": _addresses(message, "To"),
        "cc": _addresses(message, "Cc"),
        "reply_to": _addresses(message, "Reply-To"),
        "subject": str(message["Subject"] or ""),
        "date": _date(message),
        "received_at": datetime.fromtimestamp(fetched.internal_date, timezone.utc).isoformat(),
        "text": _body(message, "plain"),
        "html": _body(message, "html"),
        "attachments": attachments,
        "size": len(fetched.raw),
    }
