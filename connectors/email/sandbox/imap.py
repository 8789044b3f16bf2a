"""The sandbox's IMAP4rev1 server (RFC 3501 subset) over implicit TLS, on its own event loop.

Commands: CAPABILITY, NOOP, LOGIN, SELECT/EXAMINE (FLAGS, EXISTS, RECENT, UIDVALIDITY, UIDNEXT),
UID SEARCH (ALL, UID <set>, SINCE/BEFORE/ON <date>, FROM/TO/SUBJECT <string>, SEEN/UNSEEN),
UID FETCH <set> (UID, FLAGS, INTERNALDATE, RFC822.SIZE, BODY[]/BODY.PEEK[]/RFC822, BODY[HEADER]/
BODY.PEEK[HEADER]), CLOSE, LOGOUT. Anything else answers BAD; commands in the wrong state BAD
as well, a wrong password ``NO [AUTHENTICATIONFAILED]``, an unknown mailbox ``NO [NONEXISTENT]``.
"""
from __future__ import annotations

import asyncio
import re
import threading
from datetime import datetime, timezone
from email import message_from_bytes, policy
from typing import Any

from connectors.email.sandbox.store import Folder, MailStore, StoredMessage

_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\()|(\))|([^\s()"]+)')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class BadCommand(Exception):
    """A command the server answers with BAD."""


def tokens(line: str) -> list[Any]:
    """Atoms and quoted strings; parenthesised lists as nested lists."""
    stack: list[list[Any]] = [[]]
    for quoted, opening, closing, atom in _TOKEN.findall(line):
        if opening:
            stack.append([])
        elif closing:
            if len(stack) == 1:
                raise BadCommand("unbalanced parenthesis")
            inner = stack.pop()
            stack[-1].append(inner)
        elif atom:
            stack[-1].append(atom)
        else:
            stack[-1].append(re.sub(r"\\(.)", r"\1", quoted))
    if len(stack) != 1:
        raise BadCommand("unbalanced parenthesis")
    return stack[0]


def _imap_date(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return f'{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment.year} {moment:%H:%M:%S} +0000'


def _parse_date(text: str) -> Any:
    try:
        return datetime.strptime(text, "%d-%b-%Y").date()
    except ValueError:
        raise BadCommand(f"invalid date {text}") from None


def uid_set(spec: str, highest: int) -> set[int]:
    """The UIDs a sequence set names (``*`` is the highest UID; ``a:b`` is unordered)."""
    found: set[int] = set()
    for part in spec.split(","):
        bounds = [highest if b == "*" else int(b) if b.isdigit() else -1 for b in part.split(":")]
        if len(bounds) > 2 or min(bounds) < 0:
            raise BadCommand(f"invalid sequence set {spec}")
        low, high = min(bounds), max(bounds)
        found.update(range(low, high + 1))
    return found


class Session:
    """One client connection's state: authenticated user and selected folder."""

    def __init__(self, server: "ImapServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.user: str | None = None
        self.folder: Folder | None = None
        self.read_only = True

    def send(self, line: str | bytes) -> None:
        self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")

    async def run(self) -> None:
        self.send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Flowlink sandbox IMAP ready")
        try:
            while line := await self.reader.readline():
                text = line.decode(errors="replace").rstrip("\r\n")
                tag, _, rest = text.partition(" ")
                try:
                    done = self.dispatch(tag, rest)
                except BadCommand as exc:
                    self.send(f"{tag} BAD {exc}")
                    done = False
                await self.writer.drain()
                if done:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writer.close()

    def dispatch(self, tag: str, rest: str) -> bool:
        """Run one command; True when the connection ends."""
        words = tokens(rest)
        if not tag or not words or not isinstance(words[0], str):
            raise BadCommand("missing command")
        command, args = words[0].upper(), words[1:]
        if command == "UID" and args and isinstance(args[0], str):
            command, args = f"UID {args[0].upper()}", args[1:]
        if command == "CAPABILITY":
            self.send("* CAPABILITY IMAP4rev1 AUTH=PLAIN")
        elif command == "NOOP":
            pass
        elif command == "LOGOUT":
            self.send("* BYE logging out")
            self.send(f"{tag} OK LOGOUT completed")
            return True
        elif command == "LOGIN":
            if len(args) != 2:
                raise BadCommand("LOGIN needs a user name and a password")
            if self.server.store.users.get(args[0]) != args[1]:
                self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
                return False
            self.user = args[0]
        elif self.user is None:
            raise BadCommand(f"{command} needs LOGIN first")
        elif command in ("SELECT", "EXAMINE"):
            return self.select(tag, command, args)
        elif self.folder is None:
            raise BadCommand(f"{command} needs SELECT first")
        elif command == "CLOSE":
            self.folder = None
        elif command == "UID SEARCH":
            with self.server.store.lock:
                found = [m.uid for m in self.folder.messages if self.matches(m, list(args))]
            self.send("* SEARCH" + "".join(f" {uid}" for uid in found))
        elif command == "UID FETCH":
            self.fetch(args)
        else:
            raise BadCommand(f"command {command} is not supported")
        self.send(f"{tag} OK {command} completed")
        return False

    def select(self, tag: str, command: str, args: list[Any]) -> bool:
        if len(args) != 1 or not isinstance(args[0], str):
            raise BadCommand(f"{command} needs one mailbox name")
        folder = self.server.store.folder(args[0])
        if folder is None:
            self.folder = None
            self.send(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist: {args[0]}")
            return False
        with self.server.store.lock:
            self.folder, self.read_only = folder, command == "EXAMINE"
            self.send(r"* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)")
            self.send(f"* {len(folder.messages)} EXISTS")
            self.send("* 0 RECENT")
            self.send(f"* OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid")
            self.send(f"* OK [UIDNEXT {folder.uidnext}] Predicted next UID")
        self.send(f"{tag} OK [{'READ-ONLY' if self.read_only else 'READ-WRITE'}] {command} completed")
        return False

    def matches(self, message: StoredMessage, criteria: list[Any]) -> bool:
        """Whether the message satisfies every criterion (consumes `criteria`)."""
        assert self.folder is not None
        while criteria:
            key = criteria.pop(0)
            if isinstance(key, list):
                if not self.matches(message, list(key)):
                    return False
                continue
            key = key.upper()
            if key == "ALL":
                continue
            if key in ("SEEN", "UNSEEN"):
                if (r"\Seen" in message.flags) != (key == "SEEN"):
                    return False
                continue
            if not criteria:
                raise BadCommand(f"search key {key} needs an argument")
            value = criteria.pop(0)
            day = datetime.fromtimestamp(message.internal_date, timezone.utc).date()
            if key == "UID":
                highest = self.folder.messages[-1].uid if self.folder.messages else 0
                ok = message.uid in uid_set(value, highest)
            elif key == "SINCE":
                ok = day >= _parse_date(value)
            elif key == "BEFORE":
                ok = day < _parse_date(value)
            elif key == "ON":
                ok = day == _parse_date(value)
            elif key in ("FROM", "TO", "SUBJECT"):
                header = message_from_bytes(message.raw, policy=policy.default).get(key, "")
                ok = str(value).lower() in str(header).lower()
            else:
                raise BadCommand(f"search key {key} is not supported")
            if not ok:
                return False
        return True

    def fetch(self, args: list[Any]) -> None:
        assert self.folder is not None
        if len(args) != 2:
            raise BadCommand("UID FETCH needs a set and items")
        items = [i.upper() for i in (args[1] if isinstance(args[1], list) else [args[1]])]
        known = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODY[]", "BODY.PEEK[]", "RFC822", "BODY[HEADER]",
                 "BODY.PEEK[HEADER]"}
        if not all(isinstance(i, str) and i in known for i in items):
            raise BadCommand(f"unsupported fetch items {args[1]}")
        with self.server.store.lock:
            highest = self.folder.messages[-1].uid if self.folder.messages else 0
            wanted = uid_set(args[0], highest)
            for seq, message in enumerate(self.folder.messages, start=1):
                if message.uid in wanted:
                    self.send(self._fetch_line(seq, message, items))

    def _fetch_line(self, seq: int, message: StoredMessage, items: list[str]) -> bytes:
        parts: list[bytes] = [f"UID {message.uid}".encode()]
        for item in items:
            if item in ("BODY[]", "RFC822") and not self.read_only:
                message.flags.add(r"\Seen")
            if item == "FLAGS":
                parts.append(f"FLAGS ({' '.join(sorted(message.flags))})".encode())
            elif item == "INTERNALDATE":
                parts.append(f'INTERNALDATE "{_imap_date(message.internal_date)}"'.encode())
            elif item == "RFC822.SIZE":
                parts.append(f"RFC822.SIZE {len(message.raw)}".encode())
            elif item in ("BODY[]", "BODY.PEEK[]", "RFC822"):
                name = "RFC822" if item == "RFC822" else "BODY[]"
                parts.append(f"{name} {{{len(message.raw)}}}\r\n".encode() + message.raw)
            elif item in ("BODY[HEADER]", "BODY.PEEK[HEADER]"):
                header = message.raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
                parts.append(f"BODY[HEADER] {{{len(header)}}}\r\n".encode() + header)
        return f"* {seq} FETCH (".encode() + b" ".join(parts) + b")"


class ImapServer:
    """Serves the store over implicit TLS on 127.0.0.1:`port` from a daemon thread."""

    def __init__(self, store: MailStore, port: int, ssl_context: Any) -> None:
        self.store, self.port, self.ssl_context = store, port, ssl_context
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"sandbox-imap-{port}", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> "ImapServer":
        """Start listening (returns once the port is open)."""
        self.thread.start()

        async def serve() -> None:
            self._server = await asyncio.start_server(
                lambda r, w: Session(self, r, w).run(), "127.0.0.1", self.port, ssl=self.ssl_context)

        asyncio.run_coroutine_threadsafe(serve(), self.loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop listening and end the loop's thread."""
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
