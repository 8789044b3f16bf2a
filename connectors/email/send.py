"""`email.send_email`: one message over SMTP (text and/or HTML, attachments, cc/bcc)."""
from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx
from pydantic import BaseModel, Field, model_validator

from connectors.email.compose import Attachment, Mailbox, compose, parse_mailbox, parse_mailboxes
from connectors.email.connector import connector
from connectors.email.settings import server_settings
from connectors.email.smtp import send_message
from connectors.sdk import ActionContext
from connectors.sdk.action import ui
from engine.errors import InvalidInput, PayloadTooLarge, Transient

MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
SANDBOX_CONNECTION = {"username": "robot@flowlink.test", "password": "sandbox-password"}


class AttachmentInput(BaseModel):
    model_config = {"extra": "forbid"}

    filename: str = Field(min_length=1, max_length=255)
    content_base64: str | None = Field(default=None, description="The file's bytes, base64.")
    url: str | None = Field(default=None, pattern=r"^https?://", description="Or a URL to download it from.")
    content_type: str | None = Field(default=None, pattern=r"^[\w.+-]+/[\w.+-]+$", description="Default: from the file name.")

    @model_validator(mode="after")
    def _one_source(self) -> "AttachmentInput":
        if (self.content_base64 is None) == (self.url is None):
            raise ValueError("give exactly one of content_base64 and url")
        return self


class SendEmailInput(BaseModel):
    model_config = {"extra": "forbid"}

    to: list[str] = Field(default_factory=list, max_length=500, description="Addresses, e.g. 张三 <zs@example.cn>.")
    cc: list[str] = Field(default_factory=list, max_length=500)
    bcc: list[str] = Field(default_factory=list, max_length=500)
    subject: str = Field(max_length=998, json_schema_extra=ui(title_zh="主题"))
    text: str | None = Field(default=None, description="Plain-text body.", json_schema_extra=ui(multiline=True))
    html: str | None = Field(default=None, description="HTML body (sent with the text as an alternative).",
                             json_schema_extra=ui(multiline=True))
    from_address: str | None = Field(default=None, title="From", description="Default: the connection's sender.")
    reply_to: list[str] = Field(default_factory=list, max_length=10)
    attachments: list[AttachmentInput] = Field(default_factory=list, max_length=50)
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers, e.g. List-Unsubscribe.")

    @model_validator(mode="after")
    def _recipients_and_body(self) -> "SendEmailInput":
        if not (self.to or self.cc or self.bcc):
            raise ValueError("give at least one recipient in to, cc or bcc")
        if "\r" in self.subject or "\n" in self.subject:
            raise ValueError("subject may not contain line breaks")
        return self


class SendEmailResult(BaseModel):
    message_id: str = Field(description="The Message-ID header, for threading and lookups.")
    sender: str
    accepted: list[str] = Field(description="Recipients the server accepted.")
    refused: dict[str, str] = Field(description="Recipients the server refused, with its reply.")
    subject: str


async def _attachment(ctx: ActionContext, index: int, item: AttachmentInput) -> Attachment:
    where = f"args.attachments[{index}]"
    if item.content_base64 is not None:
        try:
            content = base64.b64decode(item.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{where}.content_base64 is not base64") from None
    else:
        try:
            answer = await ctx.http.get(item.url, follow_redirects=True, timeout=60)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise Transient(f"{where}: cannot download {item.url} ({type(exc).__name__})") from None
        if answer.status_code != 200:
            kind = Transient if answer.status_code >= 500 else InvalidInput
            raise kind(f"{where}: {item.url} answered HTTP {answer.status_code}", status=answer.status_code)
        content = answer.content
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise PayloadTooLarge(f"{where}: {item.filename} is {len(content)} bytes, over {MAX_ATTACHMENT_BYTES}")
    return Attachment(item.filename, content, item.content_type)


def _sender(ctx: ActionContext, inp: SendEmailInput) -> Mailbox:
    if inp.from_address:
        return parse_mailbox(inp.from_address, "from_address")
    fields = ctx.connection or {}
    address = fields.get("from_address") or fields.get("username")
    if not address:
        raise InvalidInput("args.from_address: give one, or set from_address on the connection")
    mailbox = parse_mailbox(address, "from_address")
    return Mailbox(mailbox.name or fields.get("from_name") or "", mailbox.address)


@connector.action(
    "send_email", input=SendEmailInput, output_schema=SendEmailResult, title={"en": "Send email", "zh": "发送邮件"},
    examples=[{"title": "An order confirmation with a PDF", "connection": SANDBOX_CONNECTION,
               "input": {"to": ["张三 <zhangsan@example.cn>"], "subject": "订单 A-1024 已确认",
                         "text": "您好，您的订单 A-1024 已确认。", "html": "<p>您好，您的订单 <b>A-1024</b> 已确认。</p>",
                         "attachments": [{"filename": "invoice.pdf", "content_base64": "JVBERi0xLjQKJcTl8uXrCg=="}]},
               "expect": {"accepted": ["zhangsan@example.cn"], "refused": {}, "sender": "robot@flowlink.test"}}],
)
async def send_email(ctx: ActionContext, inp: SendEmailInput) -> dict[str, Any]:
    """Send one message; the subject and bodies arrive already rendered by the flow's templates."""
    sender = _sender(ctx, inp)
    to, cc, bcc = parse_mailboxes(inp.to, "to"), parse_mailboxes(inp.cc, "cc"), parse_mailboxes(inp.bcc, "bcc")
    attachments = [await _attachment(ctx, i, item) for i, item in enumerate(inp.attachments)]
    message = compose(sender=sender, to=to, cc=cc, reply_to=parse_mailboxes(inp.reply_to, "reply_to"), subject=inp.subject,
                      text=inp.text, html=inp.html, attachments=attachments, headers=inp.headers)
    recipients = list(dict.fromkeys(m.address for m in [*to, *cc, *bcc]))
    settings = await server_settings("smtp", ctx.connection, ctx.http)
    outcome = await send_message(settings, message, sender.address, recipients)
    if outcome.refused:
        ctx.log(f"refused: {', '.join(outcome.refused)}")
    return {"message_id": message["Message-ID"], "sender": sender.address, "accepted": outcome.accepted,
            "refused": outcome.refused, "subject": inp.subject}
