"""The `tables` actions: small functions over :class:`engine.store.datatables.DataTables`.

Store calls are blocking database work, so each runs in a worker thread (``asyncio.to_thread``)
and never stalls the event loop that runs other flows.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, TypeVar

from pydantic import BaseModel, Field, model_validator

from connectors.sdk import ActionContext
from connectors.sdk.action import ui
from connectors.tables.manifest import connector
from connectors.tables.store import tables_of
from engine.store.datatables import ROTATION_PATTERN, DataTables

T = TypeVar("T")

#: The editor fills the `table` field with the tables that exist.
TABLE_OPTIONS = {"action": "list_tables", "items": "tables", "value": "name", "label": "title.en"}


def _table_field() -> Any:
    return Field(min_length=1, max_length=64, title="Table", description="The data table's name.",
                 json_schema_extra=ui(options=TABLE_OPTIONS, title_zh="数据表"))


def _column_field(title: str, description: str) -> Any:
    return Field(min_length=1, max_length=64, title=title, description=description,
                 json_schema_extra=ui(options={"action": "list_columns", "args": {"table": "{{ table }}"}, "items": "columns",
                                               "value": "name", "label": "title"}, depends_on=["table"]))


WHERE_DESCRIPTION = ('Filter: {"column": value} or {"column": {"op": value}} with op eq, ne, gt, gte, lt, lte, in, '
                     'contains (array item or substring), like (% and _, case-insensitive), exists; '
                     'also on _id, _created_at, _updated_at.')


def _actor(ctx: ActionContext) -> str:
    return f"flow:{ctx.flow_id} run:{ctx.run_id}"


async def _run(ctx: ActionContext, call: Callable[[DataTables], T]) -> T:
    """`call` on the step's data tables, in a worker thread."""
    return await asyncio.to_thread(lambda: call(tables_of(ctx)))


ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The row's columns (null when empty) plus _id, _created_at and _updated_at (epoch seconds).",
    "properties": {"_id": {"type": "integer"}, "_created_at": {"type": "number"}, "_updated_at": {"type": "number"}},
    "required": ["_id", "_created_at", "_updated_at"],
}
ROWS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"rows": {"type": "array", "items": ROW_SCHEMA}, "total": {"type": "integer"}},
    "required": ["rows", "total"],
}


class SortColumn(BaseModel):
    model_config = {"extra": "forbid"}

    column: str = Field(min_length=1, max_length=64)
    desc: bool = False


class _ById(BaseModel):
    """Inputs that target one row by `id` or many by `where` (exactly one of them)."""

    model_config = {"extra": "forbid"}

    table: str = _table_field()
    id: int | None = Field(default=None, ge=1, title="Row ID", description="The row's _id.")
    where: dict[str, Any] | None = Field(default=None, title="Where", description=WHERE_DESCRIPTION)

    @model_validator(mode="after")
    def _one_target(self) -> "_ById":
        if (self.id is None) == (self.where is None):
            raise ValueError("give exactly one of id and where")
        return self


class ListTablesInput(BaseModel):
    model_config = {"extra": "forbid"}


class ListColumnsInput(BaseModel):
    model_config = {"extra": "forbid"}

    table: str = _table_field()


class InsertInput(BaseModel):
    model_config = {"extra": "forbid"}

    table: str = _table_field()
    row: dict[str, Any] = Field(title="Row", description="Column values; each is checked against its column's schema.")


class UpsertInput(BaseModel):
    model_config = {"extra": "forbid"}

    table: str = _table_field()
    row: dict[str, Any] = Field(title="Row", description="Column values, merged into the matching row if there is one.")
    key: str | None = Field(default=None, max_length=64, title="Match on column",
                            description="The column identifying the row (default: the table's key).")


class GetInput(BaseModel):
    model_config = {"extra": "forbid"}

    table: str = _table_field()
    id: int | None = Field(default=None, ge=1, title="Row ID", description="The row's _id.")
    key: str | int | None = Field(default=None, title="Key", description="The value of the table's key column.")

    @model_validator(mode="after")
    def _one_target(self) -> "GetInput":
        if (self.id is None) == (self.key is None):
            raise ValueError("give exactly one of id and key")
        return self


class QueryInput(BaseModel):
    model_config = {"extra": "forbid"}

    table: str = _table_field()
    where: dict[str, Any] | None = Field(default=None, title="Where", description=WHERE_DESCRIPTION)
    sort: list[SortColumn] | None = Field(default=None, title="Sort", description='[{"column": "spend", "desc": true}]')
    limit: int = Field(default=100, ge=1, le=1000, title="Limit")
    offset: int = Field(default=0, ge=0, title="Offset")


class UpdateInput(_ById):
    values: dict[str, Any] = Field(alias="set", min_length=1, title="Set",
                                   description="Columns to change; null clears a column.")

    model_config = {"extra": "forbid", "populate_by_name": True}


class DeleteInput(_ById):
    pass


class IncrementInput(BaseModel):
    model_config = {"extra": "forbid"}

    table: str = _table_field()
    key: str | int = Field(title="Key", description="The key of the row (created when missing).")
    column: str = _column_field("Column", "A number column.")
    by: int | float = Field(default=1, title="By", description="How much to add (negative to subtract).")


class NextInRotationInput(BaseModel):
    model_config = {"extra": "forbid"}

    table: str = _table_field()
    rotation: str = Field(default="default", pattern=ROTATION_PATTERN, title="Rotation",
                          description="The rotation's name: one table can serve several independent rotations.")
    where: dict[str, Any] | None = Field(default=None, title="Where", description="Only rows matching this take turns. " + WHERE_DESCRIPTION)


@connector.action("list_tables", input=ListTablesInput, title={"en": "List tables", "zh": "列出数据表"},
                  output_schema={"type": "object", "properties": {"tables": {"type": "array", "items": {"type": "object"}}},
                                 "required": ["tables"]},
                  examples=[{"title": "Every table", "input": {}}])
async def list_tables(ctx: ActionContext, inp: ListTablesInput) -> dict[str, Any]:
    """Every data table with its title, key, columns and row count."""
    return {"tables": await _run(ctx, lambda t: t.list_tables())}


@connector.action("list_columns", input=ListColumnsInput, title={"en": "List columns", "zh": "列出字段"},
                  output_schema={"type": "object", "properties": {"columns": {"type": "array", "items": {"type": "object"}}},
                                 "required": ["columns"]},
                  examples=[{"title": "Columns of the counters table", "input": {"table": "counters"},
                             "expect": {"columns": [{"name": "name", "type": "string", "key": True},
                                                    {"name": "value", "type": "integer", "key": False}]}}])
async def list_columns(ctx: ActionContext, inp: ListColumnsInput) -> dict[str, Any]:
    """A table's columns: name, JSON type, title and whether it is the key."""
    table = await _run(ctx, lambda t: t.table(inp.table))
    return {"columns": [{"name": name, "type": table.column_type(name), "title": schema.get("title", name),
                         "key": name == table.key} for name, schema in table.columns.items()]}


@connector.action("insert", input=InsertInput, title={"en": "Insert row", "zh": "新增行"}, output_schema=ROW_SCHEMA,
                  examples=[{"title": "A new customer", "input": {"table": "customers", "row": {
                      "external_userid": "wmB100", "name": "Zhao Lei", "source": "web", "tags": ["trial"], "spend": 0}},
                      "expect": {"external_userid": "wmB100", "name": "Zhao Lei", "tags": ["trial"], "owner": None}}])
async def insert(ctx: ActionContext, inp: InsertInput) -> dict[str, Any]:
    """Insert a row; a row whose key exists fails with tables.duplicate_key."""
    return await _run(ctx, lambda t: t.insert(inp.table, inp.row, actor=_actor(ctx)))


@connector.action("upsert", input=UpsertInput, title={"en": "Insert or update row", "zh": "新增或更新行"},
                  output_schema={"type": "object", "properties": {"row": ROW_SCHEMA, "created": {"type": "boolean"}},
                                 "required": ["row", "created"]},
                  examples=[{"title": "Update a known customer's state", "input": {"table": "customers", "row": {
                      "external_userid": "wmA002", "name": "Han Meimei", "state": "contacted"}},
                      "expect": {"created": False, "row": {"external_userid": "wmA002", "state": "contacted", "city": "Beijing"}}},
                      {"title": "Create a customer matched on mobile", "input": {"table": "customers", "key": "mobile", "row": {
                          "external_userid": "wmB200", "name": "Sun Li", "mobile": "13700000000"}},
                       "expect": {"created": True, "row": {"external_userid": "wmB200", "mobile": "13700000000"}}}])
async def upsert(ctx: ActionContext, inp: UpsertInput) -> dict[str, Any]:
    """Update the row matching the key column (the given columns are merged in), or insert it."""
    row, created = await _run(ctx, lambda t: t.upsert(inp.table, inp.row, inp.key, actor=_actor(ctx)))
    return {"row": row, "created": created}


@connector.action("get", input=GetInput, title={"en": "Get row", "zh": "获取行"}, output_schema=ROW_SCHEMA,
                  examples=[{"title": "A customer by external_userid", "input": {"table": "customers", "key": "wmA001"},
                             "expect": {"name": "Li Lei", "owner": "zhangsan", "tags": ["vip", "repeat"]}}])
async def get(ctx: ActionContext, inp: GetInput) -> dict[str, Any]:
    """One row by _id or key; a missing row fails with tables.row_not_found (NotFound)."""
    return await _run(ctx, lambda t: t.get(inp.table, inp.id, inp.key))


@connector.action("query", input=QueryInput, title={"en": "Find rows", "zh": "查询行"}, output_schema=ROWS_SCHEMA,
                  examples=[{"title": "Shanghai customers who spent 1000 or more, biggest first", "input": {
                      "table": "customers", "where": {"city": "Shanghai", "spend": {"gte": 1000}},
                      "sort": [{"column": "spend", "desc": True}], "limit": 10},
                      "expect": {"total": 2, "rows": [{"name": "Li Lei"}, {"name": "Wang Fang"}]}},
                      {"title": "VIP customers", "input": {"table": "customers", "where": {"tags": {"contains": "vip"}}},
                       "expect": {"total": 1, "rows": [{"external_userid": "wmA001"}]}}])
async def query(ctx: ActionContext, inp: QueryInput) -> dict[str, Any]:
    """A page of the rows matching `where`, in `sort` order, with the total count."""
    sort = [s.model_dump() for s in inp.sort] if inp.sort is not None else None
    return await _run(ctx, lambda t: t.query(inp.table, inp.where, sort, inp.limit, inp.offset))


@connector.action("update", input=UpdateInput, title={"en": "Update rows", "zh": "更新行"},
                  output_schema={"type": "object", "properties": {"updated": {"type": "integer"},
                                                                  "rows": {"type": "array", "items": ROW_SCHEMA}},
                                 "required": ["updated", "rows"]},
                  examples=[{"title": "Hand Shanghai customers to a rep", "input": {
                      "table": "customers", "where": {"city": "Shanghai"}, "set": {"owner": "wangwu"}},
                      "expect": {"updated": 2, "rows": [{"owner": "wangwu"}, {"owner": "wangwu"}]}}])
async def update(ctx: ActionContext, inp: UpdateInput) -> dict[str, Any]:
    """Set columns of the row `id` (NotFound when missing) or of every row matching `where`."""
    return await _run(ctx, lambda t: t.update(inp.table, inp.id, inp.where, inp.values, actor=_actor(ctx)))


@connector.action("delete", input=DeleteInput, title={"en": "Delete rows", "zh": "删除行"},
                  output_schema={"type": "object", "properties": {"deleted": {"type": "integer"}}, "required": ["deleted"]},
                  examples=[{"title": "Remove new customers who never bought", "input": {"table": "customers", "where": {"state": "new", "spend": 0}},
                             "expect": {"deleted": 1}}])
async def delete(ctx: ActionContext, inp: DeleteInput) -> dict[str, Any]:
    """Delete the row `id` (NotFound when missing) or every row matching `where`."""
    return await _run(ctx, lambda t: t.delete(inp.table, inp.id, inp.where, actor=_actor(ctx)))


@connector.action("increment", input=IncrementInput, title={"en": "Increment counter", "zh": "计数加一"},
                  output_schema={"type": "object", "properties": {"value": {"type": "number"}}, "required": ["value"]},
                  examples=[{"title": "Count today's leads", "input": {"table": "counters", "key": "leads:2026-11-23", "column": "value"},
                             "expect": {"value": 1}},
                            {"title": "Add an order to a customer", "input": {"table": "customers", "key": "wmA001",
                                                                              "column": "order_count", "by": 1},
                             "expect": {"value": 7}}])
async def increment(ctx: ActionContext, inp: IncrementInput) -> dict[str, Any]:
    """Add `by` to a number column of the row with that key, atomically; returns the new value.
    A missing row is created with the column set to `by`."""
    value = await _run(ctx, lambda t: t.increment(inp.table, inp.key, inp.column, inp.by, actor=_actor(ctx)))
    return {"value": value}


@connector.action("next_in_rotation", input=NextInRotationInput, title={"en": "Next in rotation (round-robin)", "zh": "轮流分配"},
                  output_schema={**ROW_SCHEMA, "properties": {**ROW_SCHEMA["properties"], "_turn": {"type": "integer"}},
                                 "required": [*ROW_SCHEMA["required"], "_turn"]},
                  examples=[{"title": "Assign a lead to the next active rep", "input": {
                      "table": "sales_reps", "rotation": "leads", "where": {"active": True}},
                      "expect": {"userid": "zhangsan", "_turn": 1}}])
async def next_in_rotation(ctx: ActionContext, inp: NextInRotationInput) -> dict[str, Any]:
    """The next row (by _id, wrapping around) of a named rotation over the rows matching `where`;
    concurrent runs never get the same turn. NotFound when no row matches."""
    return await _run(ctx, lambda t: t.next_in_rotation(inp.table, inp.rotation, inp.where, actor=_actor(ctx)))

