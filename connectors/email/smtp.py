"""Sending over SMTP (stdlib smtplib in a worker thread) and typing its failures.

- 4xx replies and network trouble -> Transient (try again later);
- an authentication failure (535, 534, 530...) -> PermissionDenied;
- a refused recipient -> InvalidInput naming the address (when every recipient is refused;
  a partial refusal is reported in the output, the others already got the mail);
- other 5xx replies -> ConnectorError. The SMTP reply code is the error's code (``email.550``).
"""
from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Iterator

from connectors.email.settings import ServerSettings
from engine.errors import ConnectorError, InvalidInput, PermissionDenied, StepError, Transient

CONNECTOR = "email"


@dataclass(frozen=True)
class SendOutcome:
    """Who the server accepted and who it refused (``{address: "550 reason"}``)."""

    accepted: list[str]
    refused: dict[str, str]


def _reply(code: int, text: bytes | str) -> str:
    return f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}".strip()


def _typed(exc: smtplib.SMTPResponseException, what: str) -> StepError:
    reply = _reply(exc.smtp_code, exc.smtp_error)
    if 400 <= exc.smtp_code < 500:
        return Transient(f"email: {what} was deferred: {reply}", code=exc.smtp_code, connector=CONNECTOR)
    return ConnectorError(f"email: {what} failed: {reply}", code=exc.smtp_code, connector=CONNECTOR)


def _connect(settings: ServerSettings) -> smtplib.SMTP:
    if settings.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                                context=settings.tls_context())
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        client.ehlo()
        if settings.security == "starttls":
            if not client.has_extn("starttls"):
                raise ConnectorError(f"email: {settings.host} does not offer STARTTLS (set smtp_security to ssl or none)",
                                     connector=CONNECTOR)
            client.starttls(context=settings.tls_context())
            client.ehlo()
        if settings.username and settings.password:
            client.login(settings.username, settings.password)
    except BaseException:
        client.close()
        raise
    return client


@contextmanager
def _typed_failures(settings: ServerSettings) -> Iterator[None]:
    """Turn smtplib, socket and TLS exceptions into typed step errors (see the module docstring)."""
    try:
        yield
    except smtplib.SMTPAuthenticationError as exc:
        raise PermissionDenied(f"email: {settings.host} refused the login of {settings.username}: "
                               f"{_reply(exc.smtp_code, exc.smtp_error)}", code=exc.smtp_code, connector=CONNECTOR) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = {address: code for address, (code, _) in exc.recipients.items()}
        detail = "; ".join(f"{address}: {_reply(*reply)}" for address, reply in exc.recipients.items())
        if all(400 <= code < 500 for code in codes.values()):
            raise Transient(f"email: every recipient was deferred ({detail})", code=max(codes.values()),
                            connector=CONNECTOR) from None
        raise InvalidInput(f"email: the server refused {', '.join(exc.recipients)} ({detail})",
                           code=max(codes.values()), connector=CONNECTOR, details={"refused": list(exc.recipients)}) from None
    except smtplib.SMTPSenderRefused as exc:
        if 400 <= exc.smtp_code < 500:
            raise _typed(exc, f"the sender {exc.sender}") from None
        raise InvalidInput(f"email: the server refused the sender {exc.sender}: {_reply(exc.smtp_code, exc.smtp_error)}",
                           code=exc.smtp_code, connector=CONNECTOR) from None
    except smtplib.SMTPResponseException as exc:
        raise _typed(exc, "sending") from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectorError(f"email: the TLS certificate of {settings.host} was not trusted ({exc.verify_message}); "
                             "add its CA as ca_cert", code="tls", connector=CONNECTOR) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise ConnectorError(f"email: {settings.host}: {exc}", connector=CONNECTOR) from None
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, socket.timeout, ConnectionError, ssl.SSLError,
            OSError) as exc:
        raise Transient(f"email: cannot talk to {settings.host}:{settings.port} ({type(exc).__name__}: {exc})",
                        connector=CONNECTOR) from None


def _send(settings: ServerSettings, message: EmailMessage, sender: str, recipients: list[str]) -> SendOutcome:
    with _typed_failures(settings), _connect(settings) as client:
        refused = client.send_message(message, from_addr=sender, to_addrs=recipients)
    accepted = [r for r in recipients if r not in refused]
    return SendOutcome(accepted, {address: _reply(*reply) for address, reply in refused.items()})


def _check(settings: ServerSettings) -> str:
    with _typed_failures(settings), _connect(settings) as client:
        client.noop()
    how = {"starttls": "STARTTLS", "ssl": "TLS", "none": "no encryption"}[settings.security]
    who = f"logged in as {settings.username}" if settings.username and settings.password else "connected without login"
    return f"SMTP {settings.host}:{settings.port} ({how}): {who}"


async def check_smtp(settings: ServerSettings) -> str:
    """Connect, secure and log in without sending; a one-line summary, or a typed error."""
    return await asyncio.to_thread(_check, settings)


async def send_message(settings: ServerSettings, message: EmailMessage, sender: str, recipients: list[str]) -> SendOutcome:
    """Deliver `message` to `recipients` (the envelope; Bcc included) as `sender`."""
    return await asyncio.to_thread(_send, settings, message, sender, recipients)
