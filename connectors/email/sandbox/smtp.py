"""The sandbox's SMTP servers (aiosmtpd): submission with STARTTLS on one port, implicit TLS on another.

Both require AUTH (PLAIN/LOGIN, only over TLS), accept MAIL FROM only for the logged-in
user's own address (``553 5.7.1``), refuse unknown recipients (``550 5.1.1``) and deliver
what they accept into the store's INBOX, so the IMAP side sees it.
"""
from __future__ import annotations

import logging
import ssl
import warnings
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from connectors.email.sandbox.store import MailStore


@dataclass
class Delivered:
    """One accepted message: the envelope and the bytes."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes


@dataclass
class SmtpBehaviour:
    """Test hooks: refused and deferred recipients, and replies forced on the next DATA commands."""

    unknown_recipients: set[str] = field(default_factory=lambda: {"nobody@flowlink.test"})
    full_mailboxes: set[str] = field(default_factory=set)
    data_replies: list[str] = field(default_factory=list)


class Handler:
    """aiosmtpd hooks: authentication, sender ownership, recipients, delivery."""

    def __init__(self, store: MailStore, behaviour: SmtpBehaviour, delivered: list[Delivered]) -> None:
        self.store, self.behaviour, self.delivered = store, behaviour, delivered

    def authenticate(self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        """Check LOGIN/PLAIN credentials against the store's users."""
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        if self.store.users.get(user) != password:
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8
        return AuthResult(success=True, auth_data=user)

    async def handle_MAIL(self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        if address.lower() != str(session.auth_data).lower():
            return f"553 5.7.1 <{address}>: Sender address rejected: not owned by user {session.auth_data}"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        if address.lower() in self.behaviour.unknown_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.lower() in self.behaviour.full_mailboxes:
            return f"452 4.2.2 <{address}>: Mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.behaviour.data_replies:
            return self.behaviour.data_replies.pop(0)
        raw = envelope.original_content or b""
        self.delivered.append(Delivered(str(envelope.mail_from), list(envelope.rcpt_tos), raw))
        self.store.append(raw)
        return "250 2.0.0 OK: queued"


class _Implicit(Controller):
    """A controller for SMTP over implicit TLS: aiosmtpd's "AUTH without STARTTLS" warning does not apply."""

    def factory(self) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return super().factory()


class _KnownNoise(logging.Filter):
    """Drops aiosmtpd's log lines about its own deprecated attribute and the implicit-TLS AUTH case."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "login_data is deprecated" not in text and "auth_require_tls == False" not in text


logging.getLogger("mail.log").addFilter(_KnownNoise())


def start_smtp(handler: Handler, port: int, certificates: Any, *, implicit_tls: bool) -> Controller:
    """Start one SMTP server on 127.0.0.1:`port` (STARTTLS required, or implicit TLS)."""
    context: ssl.SSLContext = certificates.server_context()
    options: dict[str, Any] = {"authenticator": handler.authenticate, "auth_required": True}
    if implicit_tls:
        controller: Controller = _Implicit(handler, hostname="127.0.0.1", port=port, ssl_context=context,
                                           auth_require_tls=False, **options)
    else:
        controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                                auth_require_tls=True, **options)
    controller.start()
    return controller
