"""Building a MIME message: checked addresses, text and/or HTML, attachments."""
from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, make_msgid

from engine.errors import InvalidInput

# local@domain.tld: no spaces, one @, a dot in the domain; the server has the final word
_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9\u00a1-\uffff](?:[A-Za-z0-9\u00a1-\uffff-]*[A-Za-z0-9\u00a1-\uffff])?"
                      r"(?:\.[A-Za-z0-9\u00a1-\uffff](?:[A-Za-z0-9\u00a1-\uffff-]*[A-Za-z0-9\u00a1-\uffff])?)+$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")


@dataclass(frozen=True)
class Mailbox:
    """A checked address with an optional display name."""

    name: str
    address: str

    def header(self) -> str:
        """``Name <address>`` (encoded by the message policy when not ASCII)."""
        return formataddr((self.name, self.address)) if self.name else self.address


@dataclass(frozen=True)
class Attachment:
    """A file to attach: name, bytes and MIME type."""

    filename: str
    content: bytes
    content_type: str | None = None


def parse_mailbox(value: str, field: str) -> Mailbox:
    """One address (``a@b.cn`` or ``Name <a@b.cn>``); InvalidInput naming the field otherwise."""
    if "\r" in value or "\n" in value:
        raise InvalidInput(f"args.{field}: an address may not contain line breaks")
    found = getaddresses([value])
    if len(found) != 1 or not _ADDRESS.match(found[0][1] or ""):
        raise InvalidInput(f"args.{field}: '{value}' is not an email address")
    return Mailbox(found[0][0].strip(), found[0][1])


def parse_mailboxes(values: list[str], field: str) -> list[Mailbox]:
    """Every address of a list (``field[i]`` named in errors)."""
    return [parse_mailbox(value, f"{field}[{i}]") for i, value in enumerate(values)]


def compose(*, sender: Mailbox, to: list[Mailbox], cc: list[Mailbox], reply_to: list[Mailbox], subject: str,
            text: str | None, html: str | None, attachments: list[Attachment], headers: dict[str, str]) -> EmailMessage:
    """The message (Bcc is never a header: it only goes to the SMTP envelope)."""
    message = EmailMessage()
    message["From"] = sender.header()
    if to:
        message["To"] = ", ".join(m.header() for m in to)
    if cc:
        message["Cc"] = ", ".join(m.header() for m in cc)
    if reply_to:
        message["Reply-To"] = ", ".join(m.header() for m in reply_to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.address.rpartition("@")[2])
    for name, value in headers.items():
        if not _HEADER_NAME.match(name) or "\r" in value or "\n" in value:
            raise InvalidInput(f"args.headers: '{name}' is not a valid header")
        message[name] = value
    if text is not None:
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
    elif html is not None:
        message.set_content(html, subtype="html")
    else:
        message.set_content("")
    for item in attachments:
        ctype = item.content_type or mimetypes.guess_type(item.filename)[0] or "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        message.add_attachment(item.content, maintype=maintype, subtype=subtype or "octet-stream", filename=item.filename)
    return message
