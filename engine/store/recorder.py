"""Batched persistence of run and step records.

The interpreter hands records over without waiting; whatever has gathered is written as
one transaction of bulk inserts. A run that starts and ends within one batch is inserted
once with its final state. Two ways to write, chosen by the database:

- SQLite (`mode="loop"`): batches are written on the event loop's own thread, `linger`
  seconds after the first record of a batch (or at once when `max_batch` records wait).
  A local insert costs ~5 µs a row; a writer thread cost more than that in GIL hand-offs,
  because the sqlite3 driver releases and re-takes the GIL around every row
  (docs/architecture.md).
- PostgreSQL (`mode="thread"`): a writer thread, so that network round trips never block
  the event loop (the driver releases the GIL while it waits).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from typing import Any

import orjson
from sqlalchemy import Engine, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.records import RunRecord, StepRecord
from engine.store.tables import BLOB_THRESHOLD, blobs, runs, step_runs

log = logging.getLogger("flowlink.store")

_FLUSH = object()
_DURABLE = object()
_STOP = object()
_MAX_WRITE_ATTEMPTS = 5


def split_payload(data: bytes | None, blob_rows: dict[str, dict[str, Any]]) -> tuple[str | None, str | None]:
    """Inline JSON text for small payloads; a blob reference (and a blob row) for large ones."""
    if data is None:
        return None, None
    if len(data) <= BLOB_THRESHOLD:
        return data.decode(), None
    digest = hashlib.sha256(data).hexdigest()
    blob_rows.setdefault(digest, {"sha256": digest, "size": len(data), "data": data, "created_at": time.time()})
    return None, digest


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _set_done(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


def _run_of(item: tuple[str, Any]) -> str:
    """The run id of a queued record ("start"/"end" carry the run, "step" a step of it)."""
    return item[1].run_id if item[0] == "step" else item[1].id


def _set_all_done(futures: list["asyncio.Future[None]"]) -> None:
    for future in futures:
        _set_done(future)


def _release(waiters: list["asyncio.Future[None]"]) -> None:
    """Resolve durable() waiters from any thread (flush() may drain from a worker thread):
    one wake-up per event loop, not one per waiter (each call_soon_threadsafe writes a byte
    into the loop's self-pipe; hundreds per commit filled it on a busy worker)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for future in waiters:
        by_loop.setdefault(future.get_loop(), []).append(future)
    for loop, futures in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_all_done, futures)
        except RuntimeError:  # the waiters' loop has closed
            pass


class SqlRecorder:
    """A Recorder that writes runs and steps to the database in batches."""

    def __init__(self, engine: Engine, max_batch: int = 2000, linger: float = 0.02, mode: str = "auto",
                 durable_interval: float = 0.01) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.linger = linger
        # loop mode: durable() waiters are committed at most this long after the previous write
        # (at once when idle), not after a whole `linger`: a checkpoint costs a lone run ~0 ms and
        # at most `durable_interval` under load, while commits stay grouped (<= 1/interval per s)
        self.durable_interval = min(durable_interval, linger)
        self._last_write = 0.0
        self._durable_timer: asyncio.TimerHandle | None = None
        if mode == "auto":
            mode = "loop" if engine.dialect.name == "sqlite" else "thread"
        if mode not in ("loop", "thread"):
            raise ValueError(f"mode must be auto, loop or thread, not {mode!r}")
        self.mode = mode
        self.batches_written = 0
        self._closed = False
        self._run_sql = self._insert_sql(runs.name, RUN_COLUMNS)
        self._step_sql = self._insert_sql(step_runs.name, STEP_COLUMNS)
        # loop mode: a buffer (guarded, since flush() may come from another thread) and a timer
        self._lock = threading.Lock()
        self._buffer: list[tuple[str, Any]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._failures = 0
        self._waiters: list[asyncio.Future[None]] = []  # loop mode: durable() callers of the next write
        self._buffered_runs: set[str] = set()  # loop mode: runs with records in the buffer
        # thread mode: a queue and the writer thread
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if mode == "thread":
            self._thread = threading.Thread(target=self._thread_loop, name="flowlink-recorder", daemon=True)
            self._thread.start()

    # Recorder interface: called on the event loop.
    def run_started(self, run: RunRecord) -> None:
        self._put(("start", run))

    def step_finished(self, step: StepRecord) -> None:
        self._put(("step", step))

    def run_finished(self, run: RunRecord) -> None:
        self._put(("end", run))

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything handed over so far is committed."""
        if self.mode == "loop":
            self._drain()
            return
        done = threading.Event()
        self._queue.put((_FLUSH, done))
        if not done.wait(timeout):
            raise TimeoutError("the run recorder did not flush in time")

    async def durable(self) -> None:
        """Wait (without blocking the loop) until everything handed over so far is committed.

        Concurrent callers share one commit (group commit): a checkpoint costs a wait of at
        most `linger`, not a transaction of its own.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if self.mode == "thread":
            self._queue.put((_DURABLE, done))
        else:
            with self._lock:
                self._waiters.append(done)
            if self._durable_timer is None or self._timer_loop is not loop:
                self._timer_loop = loop
                # only this run has records waiting: nothing to group with, commit now (a lone
                # run's second checkpoint would otherwise wait out the interval after its first)
                alone = len(self._buffered_runs) <= 1
                delay = 0.0 if alone else max(0.0, self._last_write + self.durable_interval - time.monotonic())
                self._durable_timer = loop.call_later(delay, self._on_durable_timer)
        await done

    def close(self) -> None:
        """Flush and stop."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "loop":
            self._drain()
            return
        self._queue.put((_STOP, None))
        self._thread.join(timeout=60)

    # ------------------------------------------------------------------ loop mode

    def _put(self, item: tuple[str, Any]) -> None:
        if self.mode == "thread":
            self._queue.put(item)
            return
        with self._lock:
            self._buffer.append(item)
            self._buffered_runs.add(_run_of(item))
            full = len(self._buffer) >= self.max_batch
        if full:
            self._drain()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a plain call): write now
            self._drain()
            return
        if self._timer is None or self._timer_loop is not loop:  # a timer of an ended loop never fires
            self._timer_loop = loop
            self._timer = loop.call_later(self.linger, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._drain()

    def _on_durable_timer(self) -> None:
        self._durable_timer = None
        self._drain()

    def _drain(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._buffered_runs.clear()
            waiters, self._waiters = self._waiters, []
            if not batch:
                _release(waiters)
                return
            if self._write_once(batch):
                self._last_write = time.monotonic()
                self._failures = 0
                _release(waiters)
                return
            self._waiters = waiters + self._waiters
            self._failures += 1
            if self._failures >= _MAX_WRITE_ATTEMPTS:
                self._write_each_run(batch)
                self._failures = 0
                _release(self._waiters)
                self._waiters = []
                return
            self._buffer = batch + self._buffer  # keep them for the next write
            self._buffered_runs.update(_run_of(item) for item in batch)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer is None or self._timer_loop is not loop:
            self._timer_loop = loop
            self._timer = loop.call_later(0.2 * self._failures, self._on_timer)

    # ------------------------------------------------------------------ thread mode

    def _thread_loop(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            deadline = time.monotonic() + self.linger
            # someone waits for this commit (durable): write what is queued now, without
            # lingering; what arrives during the write forms the next group. A flush or stop that
            # comes first has nothing before it to write: answered at once. (It used to linger:
            # 20 ms on every synchronous webhook an API process answered for a worker's run,
            # since the API flushes before reading the run.)
            urgent = first[0] is _DURABLE
            while len(batch) < self.max_batch and first[0] is not _FLUSH and first[0] is not _STOP:
                try:
                    item = self._queue.get_nowait() if urgent else self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                batch.append(item)
                if item[0] is _FLUSH or item[0] is _STOP:
                    break
                urgent = urgent or item[0] is _DURABLE
            records = [item for item in batch if item[0] not in (_FLUSH, _DURABLE, _STOP)]
            if records:
                self._write(records)
            for kind, arg in batch:
                if kind is _FLUSH:
                    arg.set()
            _release([arg for kind, arg in batch if kind is _DURABLE])
            if any(kind is _STOP for kind, _ in batch):
                return

    def _write(self, records: list[tuple[str, Any]]) -> None:
        """Write with retries (thread mode: sleeping here blocks nobody)."""
        for attempt in range(_MAX_WRITE_ATTEMPTS):
            if self._write_once(records):
                return
            time.sleep(0.2 * (attempt + 1))
        self._write_each_run(records)

    def _write_each_run(self, records: list[tuple[str, Any]]) -> None:
        """A batch keeps failing (e.g. one run's row conflicts): write each run's records on
        their own, so that only the run at fault is lost, not every run of the batch."""
        groups: dict[str, list[tuple[str, Any]]] = {}
        for kind, record in records:
            groups.setdefault(record.run_id if kind == "step" else record.id, []).append((kind, record))
        lost = [run_id for run_id, group in groups.items() if not self._write_once(group)]
        if lost:
            log.error("dropping the records of %d run(s) that cannot be written: %s", len(lost), ", ".join(lost[:10]))

    # ------------------------------------------------------------------ writing

    def _write_once(self, records: list[tuple[str, Any]]) -> bool:
        """One transaction for a batch; False (logged) if it failed."""
        inserts: dict[str, RunRecord] = {}
        updates: dict[str, RunRecord] = {}
        steps: list[StepRecord] = []
        for kind, record in records:
            if kind == "start":
                inserts[record.id] = record
            elif kind == "end":
                if record.id not in inserts:
                    updates[record.id] = record
            else:
                steps.append(record)
        blob_rows: dict[str, dict[str, Any]] = {}
        run_rows = [self._run_row(r, blob_rows) for r in inserts.values()]
        update_rows = [self._run_row(r, blob_rows) for r in updates.values()]
        step_rows = [self._step_row(s, blob_rows) for s in steps]
        try:
            with self.engine.begin() as conn:
                if blob_rows:
                    conn.execute(self._insert_ignore(), list(blob_rows.values()))
                if run_rows:
                    conn.exec_driver_sql(self._run_sql, [tuple(r.values()) for r in run_rows])
                if update_rows:
                    conn.execute(
                        update(runs)
                        .where(runs.c.id == bindparam("b_id"))
                        .values({k: bindparam(k) for k in update_rows[0] if k != "id"}),
                        [{**{k: v for k, v in row.items() if k != "id"}, "b_id": row["id"]} for row in update_rows],
                    )
                if step_rows:
                    # the driver's own executemany: a third of SQLAlchemy's per-row cost here
                    conn.exec_driver_sql(self._step_sql, step_rows)
        except Exception:  # keep the service up; a failed history batch is logged loudly
            log.exception("writing %d run records failed", len(records))
            return False
        self.batches_written += 1
        return True

    def _insert_sql(self, table: str, columns: tuple[str, ...]) -> str:
        style = self.engine.dialect.paramstyle
        marks = ", ".join("?" if style == "qmark" else "%s" for _ in columns)
        if style not in ("qmark", "format", "pyformat"):
            raise RuntimeError(f"unsupported DB-API paramstyle {style}")
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"

    def _insert_ignore(self):
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(blobs).on_conflict_do_nothing(index_elements=["sha256"])
        if dialect == "sqlite":
            return sqlite.insert(blobs).on_conflict_do_nothing(index_elements=["sha256"])
        return insert(blobs).prefix_with("IGNORE")

    @staticmethod
    def _run_row(run: RunRecord, blob_rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
        trigger_json, trigger_blob = split_payload(run.trigger_json, blob_rows)
        output_json, output_blob = split_payload(run.output_json, blob_rows)
        return {
            "id": run.id,
            "flow_id": run.flow_id,
            "flow_version": run.flow_version,
            "lane": run.lane,
            "status": run.status,
            "trigger_json": trigger_json,
            "trigger_blob": trigger_blob,
            "output_json": output_json,
            "output_blob": output_blob,
            "error": _json_text(run.error),
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "prefect_flow_run_id": run.prefect_flow_run_id,
            "resumed_from": run.resumed_from,
        }

    @staticmethod
    def _step_row(step: StepRecord, blob_rows: dict[str, dict[str, Any]]) -> tuple[Any, ...]:
        """One step_runs row in STEP_COLUMNS order."""
        input_json, input_blob = split_payload(step.input_json, blob_rows)
        output_json, output_blob = split_payload(step.output_json, blob_rows)
        return (
            step.run_id, step.seq, step.step_id, step.path, step.type, step.status,
            input_json, input_blob, output_json, output_blob,
            _json_text(step.error), _json_text(step.attempts) if step.attempts else None,
            step.started_at, step.ended_at,
        )


RUN_COLUMNS = ("id", "flow_id", "flow_version", "lane", "status", "trigger_json", "trigger_blob", "output_json",
               "output_blob", "error", "started_at", "ended_at", "prefect_flow_run_id", "resumed_from")
STEP_COLUMNS = ("run_id", "seq", "step_id", "path", "type", "status", "input_json", "input_blob", "output_json",
                "output_blob", "error", "attempts", "started_at", "ended_at")
