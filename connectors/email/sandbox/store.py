"""The sandbox's mail store: the users, and one IMAP folder per mailbox name with UIDs."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class StoredMessage:
    """A message in a folder: UID, INTERNALDATE (epoch seconds), flags and bytes."""

    uid: int
    internal_date: float
    raw: bytes
    flags: set[str] = field(default_factory=set)


@dataclass
class Folder:
    """One mailbox: UIDVALIDITY, the next UID, messages in UID order."""

    uidvalidity: int
    uidnext: int = 1
    messages: list[StoredMessage] = field(default_factory=list)


class MailStore:
    """Thread-safe: the SMTP server appends, the IMAP server reads, tests poke."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = dict(users)
        self.lock = threading.RLock()
        self._validity = int(time.time())
        self.folders: dict[str, Folder] = {"INBOX": Folder(self._next_validity())}

    def _next_validity(self) -> int:
        self._validity += 1
        return self._validity

    def folder(self, name: str) -> Folder | None:
        """The folder (INBOX is case-insensitive, as RFC 3501 says)."""
        return self.folders.get("INBOX" if name.upper() == "INBOX" else name)

    def append(self, raw: bytes, internal_date: float | None = None, folder: str = "INBOX") -> int:
        """Store a message (INTERNALDATE default: now, whole seconds); its UID."""
        with self.lock:
            box = self.folders.setdefault(folder, Folder(self._next_validity()))
            uid = box.uidnext
            box.uidnext += 1
            box.messages.append(StoredMessage(uid, float(int(internal_date if internal_date is not None else time.time())), raw))
            return uid

    def rebuild(self, folder: str = "INBOX") -> int:
        """Renumber a folder as a server does after a rebuild: a new UIDVALIDITY, UIDs from 1; the new UIDVALIDITY."""
        with self.lock:
            box = self.folders[folder]
            box.uidvalidity = self._next_validity()
            for uid, message in enumerate(box.messages, start=1):
                message.uid = uid
            box.uidnext = len(box.messages) + 1
            return box.uidvalidity
