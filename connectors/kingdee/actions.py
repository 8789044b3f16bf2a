"""The ``kingdee`` actions: one small function per DynamicFormService operation."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from connectors.kingdee.api import bill_query, call, rows_as_objects
from connectors.kingdee.connector import connector
from connectors.kingdee.errors import response_status
from connectors.kingdee.sandbox import ACCT_ID, APP_ID, APP_SECRET, USERNAME
from connectors.sdk import ActionContext
from connectors.sdk.action import ui

#: The sandbox's credentials, for the examples (the contract kit adds base_url).
SANDBOX = {"acct_id": ACCT_ID, "username": USERNAME, "app_id": APP_ID, "app_secret": APP_SECRET}
#: Reads are safe to repeat.
READ_RETRY = ({"errors": ["RateLimited", "Transient"], "max_attempts": 3, "interval": 1, "backoff_rate": 2, "max_delay": 20},)

FORM_ID = Field(title="Form ID", min_length=1, description="The business object: SAL_SaleOrder (sales order), "
                "BD_Customer (customer), BD_MATERIAL (material) ...", json_schema_extra=ui(placeholder="SAL_SaleOrder", title_zh="表单ID"))

ENTITIES = {"type": "array", "items": {"type": "object", "properties": {
    "id": {"type": ["integer", "string"]}, "number": {"type": ["string", "null"]}, "index": {"type": ["integer", "null"]}}}}


def _entities(answer: Any) -> list[dict[str, Any]]:
    """The ``SuccessEntitys`` of a write operation's answer as ``{id, number, index}``."""
    status = response_status(answer) or {}
    return [{"id": e.get("Id"), "number": e.get("Number"), "index": e.get("DIndex")} for e in status.get("SuccessEntitys") or []]


# ---------------------------------------------------------------------------------------- save

class SaveInput(BaseModel):
    """Arguments of kingdee.save."""

    model_config = {"extra": "forbid"}

    form_id: str = FORM_ID
    model: dict[str, Any] = Field(title="Model", description="The bill's fields (K3Cloud keys: FName, FCustId ...); "
                                  "base data as {\"FNumber\": \"...\"}. Include FID to update an existing bill.",
                                  json_schema_extra=ui(multiline=True))
    need_update_fields: list[str] = Field(default_factory=list, title="Fields to update",
                                          description="On update, only these fields change (empty: every field given).")
    need_return_fields: list[str] = Field(default_factory=list, title="Fields to return")
    is_delete_entry: bool = Field(default=True, title="Delete entry rows not given")
    auto_submit_and_audit: bool = Field(default=False, title="Submit and audit after saving")


@connector.action(
    "save", input=SaveInput, title={"en": "Save a bill", "zh": "保存单据"},
    output_schema={"type": "object", "required": ["id", "number"], "properties": {
        "id": {"type": ["integer", "string"]}, "number": {"type": "string"}, "entities": ENTITIES,
        "returned": {"type": "object"}}},
    examples=[
        {"title": "Create a customer", "connection": SANDBOX,
         "input": {"form_id": "BD_Customer", "model": {"FName": "深圳极光电子有限公司"}, "need_return_fields": ["FName"]},
         "expect": {"number": "CUST0003", "returned": {"FName": "深圳极光电子有限公司"}}},
        {"title": "Create a sales order", "connection": SANDBOX,
         "input": {"form_id": "SAL_SaleOrder", "model": {
             "FDate": "2026-11-23", "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": "CUST0001"},
             "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "CH0001"}, "FQty": 5, "FPrice": 120.0}]}},
         "expect": {"number": "XSDD000003"}},
    ])
async def save(ctx: ActionContext, inp: SaveInput) -> dict[str, Any]:
    """Create a bill (no FID) or update one (with its FID); a field the server rejects fails with
    InvalidInput whose details name the field."""
    data = {"NeedUpDateFields": inp.need_update_fields, "NeedReturnFields": inp.need_return_fields,
            "IsDeleteEntry": inp.is_delete_entry, "IsAutoSubmitAndAudit": inp.auto_submit_and_audit, "Model": inp.model}
    answer = await call(ctx.client, "Save", inp.form_id, data)
    result = answer["Result"]
    returned = (result.get("NeedReturnData") or [{}])[0] or {}
    return {"id": result.get("Id"), "number": result.get("Number"), "entities": _entities(answer), "returned": returned}


# ---------------------------------------------------------------------------------------- view

class ViewInput(BaseModel):
    """Arguments of kingdee.view."""

    model_config = {"extra": "forbid"}

    form_id: str = FORM_ID
    number: str | None = Field(default=None, title="Number", description="The bill number (FBillNo / FNumber).")
    id: int | None = Field(default=None, title="Internal ID", description="The bill's FID, instead of its number.")

    @model_validator(mode="after")
    def _one_key(self) -> "ViewInput":
        if (self.number is None) == (self.id is None):
            raise ValueError("give exactly one of number and id")
        return self


@connector.action(
    "view", input=ViewInput, title={"en": "View a bill", "zh": "查看单据"}, default_retry=READ_RETRY,
    output_schema={"type": "object", "required": ["Id"], "properties": {"Id": {"type": ["integer", "string"]}}},
    examples=[{"title": "The seeded sales order", "connection": SANDBOX,
               "input": {"form_id": "SAL_SaleOrder", "number": "XSDD000001"},
               "expect": {"FBillNo": "XSDD000001", "FCustId": {"FNumber": "CUST0001"}}}])
async def view(ctx: ActionContext, inp: ViewInput) -> dict[str, Any]:
    """The whole bill (header fields and entry rows); NotFound when there is no such bill."""
    data = {"CreateOrgId": 0, "Number": inp.number or "", "Id": "" if inp.id is None else str(inp.id)}
    return (await call(ctx.client, "View", inp.form_id, data))["Result"]["Result"]


# ---------------------------------------------------------------------------------------- query

class QueryInput(BaseModel):
    """Arguments of kingdee.query."""

    model_config = {"extra": "forbid"}

    form_id: str = FORM_ID
    field_keys: list[str] = Field(min_length=1, title="Field keys", description="Columns, e.g. FBillNo, FDate, "
                                  "FCustId.FNumber; an entry field (FMaterialId.FNumber, FQty) gives one row per entry row.")
    filter: str = Field(default="", title="Filter", description="K3Cloud filter, e.g. FDocumentStatus = 'C' AND FDate >= '2026-01-01'.")
    order: str = Field(default="", title="Order", description="e.g. FDate DESC, FBillNo")
    page_size: int = Field(default=2000, ge=1, le=10000, title="Rows per request (Limit)")
    max_rows: int = Field(default=100_000, ge=1, title="At most this many rows (more fail rather than truncate)")
    top_row_count: int = Field(default=0, ge=0, title="Top rows (0: all)")


@connector.action(
    "query", input=QueryInput, title={"en": "Query bills (ExecuteBillQuery)", "zh": "单据查询"}, default_retry=READ_RETRY,
    output_schema={"type": "object", "required": ["rows", "raw_rows", "count", "field_keys"], "properties": {
        "rows": {"type": "array", "items": {"type": "object"}}, "raw_rows": {"type": "array", "items": {"type": "array"}},
        "count": {"type": "integer"}, "field_keys": {"type": "array", "items": {"type": "string"}}}},
    examples=[{"title": "Customers by number", "connection": SANDBOX,
               "input": {"form_id": "BD_Customer", "field_keys": ["FNumber", "FName"], "order": "FNumber", "page_size": 1},
               "expect": {"count": 2, "rows": [{"FNumber": "CUST0001", "FName": "上海星辰贸易有限公司"},
                                                {"FNumber": "CUST0002", "FName": "杭州云帆科技有限公司"}]}}])
async def query(ctx: ActionContext, inp: QueryInput) -> dict[str, Any]:
    """Every matching row, fetched page by page (StartRow/Limit), as objects keyed by field key
    (`rows`) and as the platform's arrays (`raw_rows`)."""
    keys = [k.strip() for k in inp.field_keys]
    raw = await bill_query(ctx.client, inp.form_id, keys, filter_string=inp.filter, order_string=inp.order,
                           page_size=inp.page_size, max_rows=inp.max_rows, top_row_count=inp.top_row_count)
    return {"rows": rows_as_objects(keys, raw), "raw_rows": raw, "count": len(raw), "field_keys": keys}


# ---------------------------------------------------------------------------------------- submit / audit / delete

class BillsInput(BaseModel):
    """Arguments of kingdee.submit, kingdee.audit and kingdee.delete."""

    model_config = {"extra": "forbid"}

    form_id: str = FORM_ID
    numbers: list[str] = Field(default_factory=list, title="Numbers")
    ids: list[int] = Field(default_factory=list, title="Internal IDs")

    @model_validator(mode="after")
    def _some(self) -> "BillsInput":
        if not self.numbers and not self.ids:
            raise ValueError("give numbers or ids")
        return self


async def _status_op(ctx: ActionContext, op: str, inp: BillsInput) -> dict[str, Any]:
    data = {"CreateOrgId": 0, "Numbers": inp.numbers, "Ids": ",".join(str(i) for i in inp.ids)}
    return {"entities": _entities(await call(ctx.client, op, inp.form_id, data))}


_BILLS_OUT = {"type": "object", "required": ["entities"], "properties": {"entities": ENTITIES}}


@connector.action("submit", input=BillsInput, title={"en": "Submit bills", "zh": "提交单据"}, output_schema=_BILLS_OUT,
                  examples=[{"title": "Submit the seeded order", "connection": SANDBOX,
                             "input": {"form_id": "SAL_SaleOrder", "numbers": ["XSDD000001"]},
                             "expect": {"entities": [{"number": "XSDD000001"}]}}])
async def submit(ctx: ActionContext, inp: BillsInput) -> dict[str, Any]:
    """Submit created bills for approval (all or none)."""
    return await _status_op(ctx, "Submit", inp)


@connector.action("audit", input=BillsInput, title={"en": "Audit bills", "zh": "审核单据"}, output_schema=_BILLS_OUT,
                  examples=[{"title": "Audit the submitted order", "connection": SANDBOX,
                             "input": {"form_id": "SAL_SaleOrder", "numbers": ["XSDD000002"]},
                             "expect": {"entities": [{"number": "XSDD000002"}]}}])
async def audit(ctx: ActionContext, inp: BillsInput) -> dict[str, Any]:
    """Audit submitted bills (all or none); a bill in another state fails with InvalidInput (MsgCode 12)."""
    return await _status_op(ctx, "Audit", inp)


@connector.action("delete", input=BillsInput, title={"en": "Delete bills", "zh": "删除单据"}, output_schema=_BILLS_OUT,
                  examples=[{"title": "Delete the seeded order", "connection": SANDBOX,
                             "input": {"form_id": "SAL_SaleOrder", "numbers": ["XSDD000001"]},
                             "expect": {"entities": [{"number": "XSDD000001"}]}}])
async def delete(ctx: ActionContext, inp: BillsInput) -> dict[str, Any]:
    """Delete bills that are not submitted or audited (all or none)."""
    return await _status_op(ctx, "Delete", inp)
