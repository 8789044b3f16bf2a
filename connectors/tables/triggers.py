"""`tables.row_changed`: a poll trigger over the change log of one data table.

Every insert, update and delete appends the row as it became (as it was, for a delete) to the
table's change log. The trigger polls it TIME_BASED on the change time, which is the row's
`_updated_at` for inserts and updates; each change starts one run whose trigger is the row plus
``_event`` (inserted, updated, deleted) and ``_changed_at``. The flow's trigger ``args``:
``{"table": "customers", "events": ["inserted", "updated"]}`` (``events`` optional: all).
"""
from __future__ import annotations

import asyncio
from typing import Any

from connectors.sdk import PollTrigger, add_trigger
from connectors.sdk.triggers import PollState, TIME_BASED
from connectors.tables.manifest import connector
from connectors.tables.store import require_tables
from engine.errors import InvalidInput

#: At most this many changes per poll; the next poll goes on from the newest one returned.
BATCH = 500


async def fetch_changes(ctx: Any, state: PollState) -> list[dict[str, Any]]:
    """The table's changes since the trigger's watermark (the newest ones when not seeded yet)."""
    args = dict(getattr(ctx, "args", None) or {})
    table = args.get("table")
    if not isinstance(table, str) or not table:
        raise InvalidInput("tables.row_changed needs args.table, the data table to watch")
    events = args.get("events")
    if events is not None and (not isinstance(events, list) or not all(isinstance(e, str) for e in events)):
        raise InvalidInput("tables.row_changed: args.events must be a list of inserted, updated, deleted")
    if state.last_time is not None:
        since: float | None = state.last_time
    else:  # seeded on an empty log: every change since is new
        since = 0.0 if state.seeded else None
    tables = require_tables(ctx)
    return await asyncio.to_thread(tables.changes, table, since, events, BATCH)


def change_key(item: dict[str, Any]) -> str:
    """A change's identity: row, event and time (a row changed twice is two changes)."""
    return f"{item['_id']}:{item['_event']}:{item['_changed_at']!r}"


ROW_CHANGED_SAMPLE = {
    "external_userid": "wmA001", "name": "Li Lei", "mobile": "13800000001", "source": "wecom", "state": "active",
    "city": "Shanghai", "tags": ["vip", "repeat"], "owner": "zhangsan", "spend": 12800, "order_count": 6,
    "last_order_at": "2026-10-02T10:00:00+08:00", "birthday": "1990-05-12",
    "_id": 1, "_created_at": 1793000000.0, "_updated_at": 1795400000.0, "_event": "updated", "_changed_at": 1795400000.0,
}

row_changed = add_trigger(connector, PollTrigger(
    name="row_changed",
    title={"en": "Row inserted, updated or deleted", "zh": "数据行变化"},
    description="Starts a run for every change to a data table's rows (args: table, events?); the trigger is the "
                "row plus _event (inserted, updated, deleted) and _changed_at.",
    sample=ROW_CHANGED_SAMPLE,
    fetch=fetch_changes,
    strategy=TIME_BASED,
    item_key=change_key,
    item_time="_changed_at",
    interval=30.0,
    seen_limit=BATCH,
    output_schema={
        "type": "object",
        "properties": {"_id": {"type": "integer"}, "_created_at": {"type": "number"}, "_updated_at": {"type": "number"},
                       "_event": {"enum": ["inserted", "updated", "deleted"]}, "_changed_at": {"type": "number"}},
        "required": ["_id", "_created_at", "_updated_at", "_event", "_changed_at"],
    },
))
