"""Retention and the right to erasure for run history.

- :func:`prune` deletes finished runs (with their steps), finished webhook events and
  unreferenced payload blobs older than the retention age, in small transactions so that the
  service keeps writing meanwhile. The default age is `FLOWLINK_RETENTION_DAYS` (30); a flow's
  `execution.retention_days` can only shorten it. On SQLite, freed pages go back to the file
  system with `PRAGMA incremental_vacuum` (new databases are created with
  `auto_vacuum=INCREMENTAL`); :func:`vacuum` rewrites the whole file (offline maintenance).
- :func:`erase_subject` removes a person's data from run history: every run whose trigger,
  output or step data contains the subject (a phone number, an external user id ...) loses its
  payloads, as does every webhook event carrying it; the runs themselves (ids, statuses, times)
  stay for the statistics. With ``tables`` (the default) it also deletes the data-table rows in
  which a top-level field equals the subject (:func:`engine.store.datatables.erase_subject_rows`).
  `dry_run` only counts. The erasure is audited with a keyed hash of the subject (:func:`subject_hash`), not the subject.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson
from sqlalchemy import Engine, and_, delete, func, or_, select, text, update

from engine.credentials import derived_key
from engine.store import audit
from engine.store.datatables import erase_subject_rows
from engine.store.tables import blobs, flow_versions, flows, runs, step_runs, webhook_events

DAY = 86400.0
FINISHED = ("succeeded", "failed", "cancelled")
ERASED = '{"erased": true}'


def default_retention_days() -> float:
    """`FLOWLINK_RETENTION_DAYS` (default 30)."""
    try:
        return max(float(os.environ.get("FLOWLINK_RETENTION_DAYS", "30")), 0.0)
    except ValueError:
        return 30.0


@dataclass
class PruneResult:
    """How much one prune removed."""

    runs: int = 0
    steps: int = 0
    events: int = 0
    blobs: int = 0
    per_flow: dict[str, float] = field(default_factory=dict)  # flows with a shorter retention

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "steps": self.steps, "events": self.events, "blobs": self.blobs, "per_flow_days": self.per_flow}


def flow_retention(engine: Engine) -> dict[str, float]:
    """Flows whose current definition sets `execution.retention_days`."""
    found: dict[str, float] = {}
    with engine.connect() as conn:
        rows = conn.execute(select(flows.c.id, flow_versions.c.definition).join(
            flow_versions, and_(flow_versions.c.flow_id == flows.c.id, flow_versions.c.version == flows.c.current_version))).all()
    for flow_id, definition in rows:
        days = ((orjson.loads(definition) or {}).get("execution") or {}).get("retention_days")
        if isinstance(days, (int, float)) and days > 0:
            found[flow_id] = float(days)
    return found


def _delete_runs(engine: Engine, condition: Any, batch: int, result: PruneResult) -> None:
    while True:
        with engine.begin() as conn:
            ids = conn.execute(select(runs.c.id).where(condition).limit(batch)).scalars().all()
            if not ids:
                return
            result.steps += conn.execute(delete(step_runs).where(step_runs.c.run_id.in_(ids))).rowcount
            result.runs += conn.execute(delete(runs).where(runs.c.id.in_(ids))).rowcount
        time.sleep(0)  # let other threads take the database between batches


def prune(engine: Engine, days: float | None = None, *, now: float | None = None, batch: int = 500) -> PruneResult:
    """Delete finished runs, finished events and orphaned blobs older than the retention."""
    now = time.time() if now is None else now
    days = default_retention_days() if days is None else days
    result = PruneResult(per_flow={k: v for k, v in flow_retention(engine).items() if v < days})
    for flow_id, flow_days in result.per_flow.items():
        _delete_runs(engine, and_(runs.c.flow_id == flow_id, runs.c.started_at < now - flow_days * DAY,
                                  runs.c.status.in_(FINISHED)), batch, result)
    _delete_runs(engine, and_(runs.c.started_at < now - days * DAY, runs.c.status.in_(FINISHED)), batch, result)
    cutoff = now - days * DAY
    while True:
        with engine.begin() as conn:
            ids = conn.execute(select(webhook_events.c.id).where(
                webhook_events.c.updated_at < cutoff, webhook_events.c.status.in_(("done", "dead"))).limit(batch)).scalars().all()
            if not ids:
                break
            result.events += conn.execute(delete(webhook_events).where(webhook_events.c.id.in_(ids))).rowcount
    result.blobs = _delete_orphan_blobs(engine, now - 3600, batch)
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(text("PRAGMA incremental_vacuum(2000)"))
    return result


def _referenced(conn: Any, digests: list[str]) -> set[str]:
    used: set[str] = set()
    for column in (runs.c.trigger_blob, runs.c.output_blob, step_runs.c.input_blob, step_runs.c.output_blob):
        used.update(conn.execute(select(column).where(column.in_(digests)).distinct()).scalars().all())
    return used


def _delete_orphan_blobs(engine: Engine, older_than: float, batch: int) -> int:
    removed, after = 0, ""
    while True:
        with engine.begin() as conn:
            digests = conn.execute(select(blobs.c.sha256).where(blobs.c.created_at < older_than, blobs.c.sha256 > after)
                                   .order_by(blobs.c.sha256).limit(batch)).scalars().all()
            if not digests:
                return removed
            orphans = [d for d in digests if d not in _referenced(conn, digests)]
            if orphans:
                removed += conn.execute(delete(blobs).where(blobs.c.sha256.in_(orphans))).rowcount
            after = digests[-1]


def vacuum(engine: Engine) -> None:
    """Rewrite a SQLite database file to its live size (locks it while it runs); PostgreSQL: VACUUM ANALYZE."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM" if engine.dialect.name == "sqlite" else "VACUUM ANALYZE"))


# --------------------------------------------------------------------------- erasure


#: Shorter subjects would match too much of the history (it is searched as a substring).
MIN_SUBJECT_LENGTH = 4


@dataclass
class EraseResult:
    """What an erasure touched (or, in a dry run, would touch)."""

    runs: int = 0
    steps: int = 0
    events: int = 0
    blobs: int = 0
    table_rows: dict[str, int] = field(default_factory=dict)  # data table -> rows deleted
    table_changes: int = 0  # row-change history entries deleted
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "steps": self.steps, "events": self.events, "blobs": self.blobs,
                "table_rows": dict(self.table_rows), "table_rows_total": sum(self.table_rows.values()),
                "table_changes": self.table_changes, "dry_run": self.dry_run}


def subject_hash(subject: str) -> str:
    """How the audit log names an erased subject (never the subject itself): a keyed hash
    (HMAC-SHA256 with a key derived from the instance's secret key). A plain hash of a phone
    number could be reversed by hashing every phone number; this one only with the key."""
    return hmac.new(derived_key("erasure-subject"), subject.encode(), hashlib.sha256).hexdigest()[:16]


def check_subject(subject: str) -> None:
    """ValueError unless `subject` is specific enough to erase by."""
    if len(subject.strip()) < MIN_SUBJECT_LENGTH:
        raise ValueError(f"the subject must have at least {MIN_SUBJECT_LENGTH} characters "
                         "(a phone number, an id, an e-mail address)")


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _json_forms(subject: str) -> list[str]:
    """The subject as it appears inside JSON text (raw, and escaped when it needs escaping)."""
    quoted = orjson.dumps(subject).decode()[1:-1]
    return list(dict.fromkeys([subject, quoted]))


def erase_subject(engine: Engine, subject: str, actor: str, *, dry_run: bool = False, tables: bool = True) -> EraseResult:
    """Remove every recorded payload that contains `subject` (case-sensitive substring) and, with
    `tables`, every data-table row with a top-level field equal to it; audited as `subject.erase`
    with :func:`subject_hash`. `dry_run` only counts and records nothing."""
    check_subject(subject)
    result = EraseResult(dry_run=dry_run)
    _erase_history(engine, subject, dry_run, result)
    if dry_run:
        if tables:
            found = erase_subject_rows(engine, subject, dry_run=True)
            result.table_rows, result.table_changes = found.rows, found.changes
        return result
    complete = False
    try:
        if tables:
            done = erase_subject_rows(engine, subject)
            result.table_rows, result.table_changes = done.rows, done.changes
        complete = True
    finally:  # also when the tables failed half-way after the history was erased: audit what was done
        with engine.begin() as conn:
            audit.record(conn, actor, "subject.erase", "subject", subject_hash(subject),
                         details={**result.to_dict(), "tables": tables, "complete": complete})
    return result


def _erase_history(engine: Engine, subject: str, dry_run: bool, result: EraseResult) -> None:
    """Runs, steps, webhook events and blobs carrying the subject, in one transaction."""
    patterns = [_like(form) for form in _json_forms(subject)]
    needle_forms = [form.encode() for form in _json_forms(subject)]

    def matches(*columns: Any) -> Any:
        return or_(*[column.like(p, escape="\\") for column in columns for p in patterns])

    with engine.begin() as conn:
        # payloads stored as blobs (over 4 KB) are searched in Python, a batch at a time
        tainted: list[str] = []
        after = ""
        while True:
            rows = conn.execute(select(blobs.c.sha256, blobs.c.data).where(blobs.c.sha256 > after)
                                .order_by(blobs.c.sha256).limit(200)).all()
            if not rows:
                break
            tainted += [d for d, data in rows if any(n in bytes(data) for n in needle_forms)]
            after = rows[-1][0]
        step_hit = or_(matches(step_runs.c.input_json, step_runs.c.output_json, step_runs.c.error),
                       step_runs.c.input_blob.in_(tainted), step_runs.c.output_blob.in_(tainted))
        run_hit = or_(matches(runs.c.trigger_json, runs.c.output_json, runs.c.error),
                      runs.c.trigger_blob.in_(tainted), runs.c.output_blob.in_(tainted),
                      runs.c.id.in_(select(step_runs.c.run_id).where(step_hit)))
        run_ids = conn.execute(select(runs.c.id).where(run_hit)).scalars().all()
        event_hit = matches(webhook_events.c.payload)
        if dry_run:
            result.runs, result.blobs = len(run_ids), len(tainted)
            for chunk in _chunks(run_ids, 500):
                result.steps += conn.execute(select(func.count()).select_from(step_runs)
                                             .where(step_runs.c.run_id.in_(chunk))).scalar_one()
            result.events = conn.execute(select(func.count()).select_from(webhook_events).where(event_hit)).scalar_one()
            return
        for chunk in _chunks(run_ids, 500):
            result.steps += conn.execute(update(step_runs).where(step_runs.c.run_id.in_(chunk)).values(
                input_json=None, input_blob=None, output_json=None, output_blob=None, error=None)).rowcount
            result.runs += conn.execute(update(runs).where(runs.c.id.in_(chunk)).values(
                trigger_json=ERASED, trigger_blob=None, output_json=None, output_blob=None)).rowcount
            conn.execute(update(runs).where(runs.c.id.in_(chunk), matches(runs.c.error)).values(
                error='{"type": "Erased", "message": "the error named an erased subject"}'))
        result.events = conn.execute(update(webhook_events).where(event_hit).values(payload=ERASED)).rowcount
        if tainted:
            result.blobs = conn.execute(delete(blobs).where(blobs.c.sha256.in_(tainted))).rowcount


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

