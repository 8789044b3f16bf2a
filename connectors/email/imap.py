"""Reading new messages over IMAP (stdlib imaplib in a worker thread).

Messages are addressed by ``UIDVALIDITY`` and ``UID`` (RFC 3501 §2.3.1.1): within one
UIDVALIDITY, UIDs only grow, so "new" is ``UID SEARCH UID <last+1>:*``. When the server
reports another UIDVALIDITY (the mailbox was rebuilt and every UID reassigned) the UIDs
cannot be compared any more, and new means "arrived (INTERNALDATE) after the last message
seen", so a rebuilt mailbox is not replayed.
"""
from __future__ import annotations

import asyncio
import imaplib
import re
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, TypeVar

from connectors.email.settings import ServerSettings
from engine.errors import ConnectorError, InvalidInput, NotFound, PermissionDenied, Transient

CONNECTOR = "email"
_UID = re.compile(rb"\bUID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
T = TypeVar("T")


@dataclass(frozen=True)
class Cursor:
    """Where the last poll stopped: the mailbox's UIDVALIDITY, the newest UID and its INTERNALDATE (epoch)."""

    uidvalidity: int
    uid: int
    internal_date: int

    def key(self) -> str:
        """The poll key ``<uidvalidity>:<uid>:<internaldate>``."""
        return f"{self.uidvalidity}:{self.uid}:{self.internal_date}"

    @classmethod
    def parse(cls, key: str | None) -> "Cursor | None":
        """The cursor of a poll key (None for none or another format)."""
        parts = (key or "").split(":")
        try:
            return cls(int(parts[0]), int(parts[1]), int(parts[2])) if len(parts) == 3 else None
        except ValueError:
            return None


@dataclass(frozen=True)
class RawMessage:
    """One fetched message: its UID, INTERNALDATE (epoch), flags and RFC 5322 bytes."""

    uid: int
    internal_date: float
    raw: bytes


@dataclass(frozen=True)
class Batch:
    """The mailbox's UIDVALIDITY and new messages, oldest first."""

    uidvalidity: int
    messages: list[RawMessage]


def _connect(settings: ServerSettings) -> imaplib.IMAP4:
    if settings.security == "ssl":
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(settings.host, settings.port, ssl_context=settings.tls_context(),
                                                  timeout=settings.timeout)
    else:
        client = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
        if settings.security == "starttls":
            client.starttls(ssl_context=settings.tls_context())
    return client


def _ok(result: tuple[str, list], what: str) -> list:
    status, data = result
    if status != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        raise ConnectorError(f"email: IMAP {what} failed: {detail}", connector=CONNECTOR)
    return data


def _search_date(epoch: float) -> str:
    # SINCE compares dates only (RFC 3501): one day earlier is safe, the exact time is checked after
    return time.strftime("%d-%b-%Y", time.gmtime(epoch - 86400))


def _fetch(client: imaplib.IMAP4, uids: list[int]) -> list[RawMessage]:
    if not uids:
        return []
    data = _ok(client.uid("FETCH", ",".join(map(str, uids)), "(UID INTERNALDATE BODY.PEEK[])"), "UID FETCH")
    found: list[RawMessage] = []
    for part in data:
        if not isinstance(part, tuple):
            continue
        head, raw = part
        uid, stamp = _UID.search(head), _INTERNALDATE.search(head)
        if uid is None or stamp is None:
            raise ConnectorError(f"email: unexpected IMAP FETCH answer {head[:80]!r}", connector=CONNECTOR)
        moment = datetime.strptime(stamp.group(1).decode(), "%d-%b-%Y %H:%M:%S %z")
        found.append(RawMessage(int(uid.group(1)), moment.astimezone(timezone.utc).timestamp(), raw))
    return sorted(found, key=lambda m: m.uid)


def _internal_dates(client: imaplib.IMAP4, uids: list[int]) -> dict[int, float]:
    if not uids:
        return {}
    data = _ok(client.uid("FETCH", ",".join(map(str, uids)), "(UID INTERNALDATE)"), "UID FETCH")
    dates: dict[int, float] = {}
    for part in data:
        line = part[0] if isinstance(part, tuple) else part
        uid, stamp = _UID.search(line or b""), _INTERNALDATE.search(line or b"")
        if uid and stamp:
            dates[int(uid.group(1))] = datetime.strptime(stamp.group(1).decode(), "%d-%b-%Y %H:%M:%S %z").timestamp()
    return dates


def _read(settings: ServerSettings, mailbox: str, cursor: Cursor | None, limit: int, criteria: str | None) -> Batch:
    with _connect(settings) as client:
        if settings.username:
            try:
                client.login(settings.username, settings.password or "")
            except imaplib.IMAP4.error as exc:
                raise PermissionDenied(f"email: IMAP login of {settings.username} refused: {exc}", connector=CONNECTOR) from None
        status, data = client.select(_quote(mailbox), readonly=True)
        if status != "OK":
            raise NotFound(f"email: no mailbox {mailbox!r} ({b' '.join(data).decode(errors='replace')})", connector=CONNECTOR)
        validity = client.response("UIDVALIDITY")[1]
        if not validity or validity[0] is None:
            raise ConnectorError("email: the IMAP server sent no UIDVALIDITY", connector=CONNECTOR)
        uidvalidity = int(validity[0])
        extra = [criteria] if criteria else []
        same = cursor is not None and cursor.uidvalidity == uidvalidity
        if same:
            search = ["UID", f"{cursor.uid + 1}:*", *extra]  # type: ignore[union-attr]
        elif cursor is not None:
            search = ["SINCE", _search_date(cursor.internal_date), *extra]
        else:
            search = extra or ["ALL"]
        uids = sorted(int(u) for u in b" ".join(_ok(client.uid("SEARCH", *search), "UID SEARCH")).split())
        if cursor is None:
            return Batch(uidvalidity, _fetch(client, uids[-1:]))  # first poll: the newest message seeds the cursor
        if same:
            uids = [u for u in uids if u > cursor.uid]  # "n:*" always matches the highest UID, even below n
        else:
            dates = _internal_dates(client, uids)
            uids = [u for u in uids if dates.get(u, 0) > cursor.internal_date]
        return Batch(uidvalidity, _fetch(client, uids[:limit]))


def _quote(mailbox: str) -> str:
    if any(c in mailbox for c in "\r\n\""):
        raise InvalidInput(f"email: {mailbox!r} is not a mailbox name")
    return f'"{mailbox}"'


def _check(settings: ServerSettings) -> str:
    with _connect(settings) as client:
        if settings.username:
            try:
                client.login(settings.username, settings.password or "")
            except imaplib.IMAP4.error as exc:
                raise PermissionDenied(f"email: IMAP login of {settings.username} refused: {exc}", connector=CONNECTOR) from None
        _ok(client.select('"INBOX"', readonly=True), "EXAMINE INBOX")
    return f"IMAP {settings.host}:{settings.port}: INBOX readable"


async def check_imap(settings: ServerSettings) -> str:
    """Log in and open INBOX read-only; a one-line summary, or a typed error."""
    return await _typed(asyncio.to_thread(_check, settings), settings)


async def read_new(settings: ServerSettings, mailbox: str, cursor: Cursor | None, limit: int = 50,
                   criteria: str | None = None) -> Batch:
    """Messages after `cursor` (at most `limit`, oldest first); the newest one alone when there is no cursor."""
    return await _typed(asyncio.to_thread(_read, settings, mailbox, cursor, limit, criteria), settings)


async def _typed(work: Awaitable[T], settings: ServerSettings) -> T:
    """`work`'s result, with imaplib, socket and TLS exceptions turned into typed step errors."""
    try:
        return await work
    except ssl.SSLCertVerificationError as exc:
        raise ConnectorError(f"email: the TLS certificate of {settings.host} was not trusted ({exc.verify_message}); "
                             "add its CA as ca_cert", code="tls", connector=CONNECTOR) from None
    except imaplib.IMAP4.abort as exc:
        raise Transient(f"email: the IMAP connection to {settings.host} broke: {exc}", connector=CONNECTOR) from None
    except imaplib.IMAP4.error as exc:
        raise ConnectorError(f"email: IMAP error from {settings.host}: {exc}", connector=CONNECTOR) from None
    except (socket.timeout, ConnectionError, ssl.SSLError, OSError) as exc:
        raise Transient(f"email: cannot talk to {settings.host}:{settings.port} ({type(exc).__name__}: {exc})",
                        connector=CONNECTOR) from None
