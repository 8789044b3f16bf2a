"""``kingdee.bills_changed``: a poll trigger for bills created or changed since the last poll.

Each poll runs ExecuteBillQuery with ``FModifyDate >= <cursor>`` (plus the flow's filter),
oldest first, and the SDK's TIME_BASED strategy keeps the cursor and drops bills already
seen at the same modify date. A bill modified again is a new item (its key is id@modify date).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from connectors.kingdee.api import bill_query, rows_as_objects
from connectors.sdk.action import format_validation_error
from connectors.sdk.triggers import PollState, PollStrategy, PollTrigger
from engine.errors import InvalidInput

#: At most this many changed bills per poll; the rest come with the next one.
MAX_PER_POLL = 5000
_SYSTEM_KEYS = ("FID", "FModifyDate", "FDocumentStatus")


class BillsChangedArgs(BaseModel):
    """The trigger's ``args`` in a flow."""

    model_config = {"extra": "forbid"}

    form_id: str = Field(default="SAL_SaleOrder", min_length=1, title="Form ID")
    field_keys: list[str] = Field(default_factory=list, title="Header fields to include", description="e.g. FDate, FCustId.FNumber")
    filter: str = Field(default="", title="Filter", description="K3Cloud filter ANDed with the modify-date condition.")
    number_field: str = Field(default="FBillNo", title="Number field", description="FBillNo for bills, FNumber for base data.")


SAMPLE = {
    "form_id": "SAL_SaleOrder", "id": 100005, "number": "XSDD000001", "modified_at": "2026-11-23T10:15:30.250",
    "status": "C", "fields": {"FDate": "2026-11-23T00:00:00", "FCustId.FNumber": "CUST0001"},
}

OUTPUT_SCHEMA = {
    "type": "object", "required": ["form_id", "id", "number", "modified_at", "status", "fields"],
    "properties": {
        "form_id": {"type": "string", "description": "The form polled."},
        "id": {"type": ["integer", "string"], "description": "The bill's internal id (FID)."},
        "number": {"type": ["string", "null"], "description": "Its number (FBillNo / FNumber)."},
        "modified_at": {"type": "string", "description": "FModifyDate, the server's local time (ISO 8601, no zone)."},
        "status": {"type": ["string", "null"], "description": "FDocumentStatus: Z draft, A created, B submitted, C audited, D re-audit."},
        "fields": {"type": "object", "description": "The requested field keys and their values."},
    },
}


def _args(ctx: Any) -> BillsChangedArgs:
    try:
        return BillsChangedArgs.model_validate(getattr(ctx, "args", None) or {})
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(exc, "trigger.args"), connector="kingdee") from None


def _since_filter(args: BillsChangedArgs, since: float) -> str:
    # K3Cloud times carry no zone: the cursor is read back from them as if UTC, so it is written the same way
    stamp = datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    condition = f"FModifyDate >= '{stamp}'"
    return f"({args.filter}) AND {condition}" if args.filter.strip() else condition


async def fetch_changed_bills(ctx: Any, state: PollState) -> list[dict[str, Any]]:
    """Bills modified at or after the cursor (the newest few when there is none yet)."""
    args = _args(ctx)
    keys = list(dict.fromkeys([*_SYSTEM_KEYS, args.number_field, *args.field_keys]))
    if state.last_time is None:  # the first poll only seeds the cursor: the newest bills are enough
        rows = await bill_query(ctx.client, args.form_id, keys, filter_string=args.filter, order_string="FModifyDate DESC",
                                page_size=100, max_rows=100, stop_at_max=True)
    else:
        rows = await bill_query(ctx.client, args.form_id, keys, filter_string=_since_filter(args, state.last_time),
                                order_string="FModifyDate ASC", max_rows=MAX_PER_POLL, stop_at_max=True)
    items = []
    for row in rows_as_objects(keys, rows):
        items.append({"form_id": args.form_id, "id": row["FID"], "number": row.get(args.number_field),
                      "modified_at": row["FModifyDate"], "status": row.get("FDocumentStatus"),
                      "fields": {k: row[k] for k in args.field_keys}})
    return items


bills_changed = PollTrigger(
    name="bills_changed",
    title={"en": "New or changed bills", "zh": "新增或修改的单据"},
    description="Polls ExecuteBillQuery for bills of a form whose FModifyDate is at or after the last poll. "
                "Args: form_id, field_keys, filter, number_field.",
    sample=SAMPLE,
    output_schema=OUTPUT_SCHEMA,
    fetch=fetch_changed_bills,
    strategy=PollStrategy.TIME_BASED,
    item_key=lambda item: f"{item['id']}@{item['modified_at']}",
    item_time="modified_at",
    interval=300.0,
)
