"""The append-only audit log: who did what to which object, with before and after."""
from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select

from engine.store.tables import audit_log

#: Keys whose values are replaced by this marker in audit before/after snapshots.
SECRET_MARK = "***"
SECRET_KEYS = frozenset({"password", "secret", "token", "api_key", "apikey", "access_token", "refresh_token", "client_secret", "value", "private_key", "encoding_aes_key", "aes_key"})


def redact(value: Any) -> Any:
    """A copy of `value` with every secret-looking field masked."""
    if isinstance(value, dict):
        return {k: (SECRET_MARK if k.lower() in SECRET_KEYS and v is not None else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(redact(value)).decode()


def record(
    conn: Connection,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    before: Any = None,
    after: Any = None,
    details: Any = None,
) -> None:
    """Append one audit entry inside the caller's transaction (so it commits with the change)."""
    conn.execute(
        insert(audit_log).values(
            at=time.time(),
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            before=_text(before),
            after=_text(after),
            details=_text(details),
        )
    )


def entries(
    engine: Engine,
    actor: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    action: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit entries newest first, filtered."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    for column, value in ((audit_log.c.actor, actor), (audit_log.c.target_type, target_type), (audit_log.c.target_id, target_id), (audit_log.c.action, action)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        {**row, **{k: orjson.loads(row[k]) if row[k] else None for k in ("before", "after", "details")}}
        for row in rows
    ]
