"""Cross-process wake-ups on PostgreSQL (LISTEN/NOTIFY): new inbox events and finished runs.

In the scaled-out topology an API process commits an event and a worker process runs it.
Without a signal a worker finds new events only at its next poll (FLOWLINK_INBOX_POLL, 0.5 s),
and an API waiting to answer a `respond: last` webhook finds the finished run only at its next
look at the database. With PostgreSQL, the transaction that stores events also sends
`NOTIFY flowlink_inbox`, and the one that marks events done sends `NOTIFY flowlink_done` with
their ids; each process keeps one listening connection on a thread of its own and wakes the
event loop. Notifications are only a hint: polling stays as the safety net (a notification
sent while a listener reconnects is lost, the poll finds the work anyway). SQLite has no
notifications; a single SQLite process wakes itself in memory.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable, Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("flowlink.notify")

INBOX = "flowlink_inbox"
DONE = "flowlink_done"
_MAX_PAYLOAD = 7000  # PostgreSQL's limit is 8000 bytes per notification


def supported(db: Engine) -> bool:
    """Whether the database can notify other processes (PostgreSQL)."""
    return db.dialect.name == "postgresql"


def notify_inbox(conn: Connection) -> None:
    """Inside the transaction that stores events: wake the workers when it commits (no-op on SQLite)."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": INBOX})


def notify_done(conn: Connection, event_ids: Iterable[str]) -> None:
    """Inside the transaction that marks events finished: tell waiting API processes which (no-op on SQLite)."""
    if conn.dialect.name != "postgresql":
        return
    chunk: list[str] = []
    size = 0
    for event_id in event_ids:
        if chunk and size + len(event_id) + 1 > _MAX_PAYLOAD:
            conn.execute(text("SELECT pg_notify(:channel, :ids)"), {"channel": DONE, "ids": ",".join(chunk)})
            chunk, size = [], 0
        chunk.append(event_id)
        size += len(event_id) + 1
    if chunk:
        conn.execute(text("SELECT pg_notify(:channel, :ids)"), {"channel": DONE, "ids": ",".join(chunk)})


class Listener:
    """A LISTEN connection on a daemon thread; calls `on_inbox()` / `on_done(ids)` on the event loop."""

    def __init__(self, db: Engine, on_inbox: Callable[[], None], on_done: Callable[[list[str]], None]) -> None:
        self.conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.on_inbox = on_inbox
        self.on_done = on_done
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._inbox_pending = False
        self._done_pending: list[str] = []
        self._scheduled = False  # a _dispatch is queued on the loop

    def start(self) -> None:
        """Start listening (returns at once; the thread reconnects after errors)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (the thread ends within a second)."""
        self._stop.set()

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {INBOX}")
                    conn.execute(f"LISTEN {DONE}")
                    self.connected.set()
                    self._gather(inbox=True)  # anything stored while we were not listening
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._deliver(note)
            except Exception as exc:  # the database restarted or the network dropped: polling covers the gap
                self.connected.clear()
                if not self._stop.is_set():
                    log.warning("LISTEN connection lost (%s); reconnecting in 1 s", exc)
                    self._stop.wait(1.0)

    def _deliver(self, note: Any) -> None:
        if note.channel == INBOX:
            self._gather(inbox=True)
        elif note.channel == DONE and note.payload:
            self._gather(done=note.payload.split(","))

    def _gather(self, inbox: bool = False, done: list[str] | None = None) -> None:
        """From the listening thread: note what arrived, and wake the loop unless a wake-up is queued.

        Coalesced: one wake-up carries everything that arrived before it ran. One
        call_soon_threadsafe per notification wrote a byte per call into the loop's self-pipe; on
        a busy (niced) worker the pipe filled up, and a SIGTERM's wake-up byte was then dropped
        ("Exception ignored when trying to write to the signal wakeup fd")."""
        with self._lock:
            self._inbox_pending = self._inbox_pending or inbox
            self._done_pending.extend(done or ())
            if self._scheduled:
                return
            self._scheduled = True
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._dispatch)
                return
            except RuntimeError:  # the loop has closed
                pass
        with self._lock:
            self._scheduled = False

    def _dispatch(self) -> None:
        """On the event loop: hand over what gathered since the last wake-up."""
        with self._lock:
            inbox, self._inbox_pending = self._inbox_pending, False
            done, self._done_pending = self._done_pending, []
            self._scheduled = False
        if inbox:
            self.on_inbox()
        if done:
            self.on_done(done)
