"""Data tables: definitions and rows (the editor's table view). Viewers read, editors write.

Store errors map to JSON answers: an unknown table or row 404, an invalid definition, row or
filter 422 with ``issues`` naming the column (``{"pointer": "/spend", "column", "message"}``),
a duplicate table name or key 409. Every write is audited under the real user.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, TypeVar

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, Field

from api.deps import get_state, user_of
from api.errors import error_body
from api.state import ServiceState
from engine.errors import InvalidInput, NotFound
from engine.store.datatables import COLUMN_PATTERN, MAX_LIMIT, NAME_PATTERN, Conflict, DataTables
from engine.users import User

router = APIRouter(prefix="/api/tables", tags=["tables"])
T = TypeVar("T")


class TableCreate(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(pattern=NAME_PATTERN)
    title: str | dict[str, str] | None = None
    key: str | None = Field(None, pattern=COLUMN_PATTERN, description="The unique key column (optional).")
    required: list[str] = Field(default_factory=list, description="Columns every row must have.")
    columns: dict[str, dict[str, Any]] = Field(description="Column name -> JSON Schema of its value.")


class TableUpdate(BaseModel):
    model_config = {"extra": "forbid"}

    title: str | dict[str, str] | None = None
    columns: dict[str, dict[str, Any]] | None = Field(None, description="Columns to add (existing ones cannot change).")


class TableRead(BaseModel):
    name: str
    title: dict[str, str]
    key: str | None
    columns: dict[str, dict[str, Any]]
    required: list[str]
    created_by: str
    created_at: float
    updated_at: float
    rows: int | None = Field(None, description="How many rows the table has (not in create/update answers).")


class RowsPage(BaseModel):
    rows: list[dict[str, Any]] = Field(description="Rows: every column (null when empty) plus _id, _created_at, _updated_at.")
    total: int = Field(description="How many rows match, over all pages.")


def _issues(details: Any) -> list[dict[str, Any]]:
    if not isinstance(details, list):
        return []
    return [{"pointer": f"/{d['column']}" if d.get("column") else "/", **d} for d in details if isinstance(d, dict)]


async def _call(fn: Callable[[], T]) -> T:
    """Run a blocking store call in a thread; store errors become JSON error answers."""
    try:
        return await asyncio.to_thread(fn)
    except NotFound as exc:
        raise HTTPException(404, error_body("NotFound", exc.message)) from None
    except Conflict as exc:
        raise HTTPException(409, error_body("Conflict", exc.message, code=exc.code)) from None
    except InvalidInput as exc:
        raise HTTPException(422, error_body("InvalidInput", exc.message, issues=_issues(exc.details))) from None


def _json_param(name: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(422, error_body("InvalidInput", f"{name} must be JSON: {exc}",
                                            issues=[{"pointer": f"/query/{name}", "message": str(exc)}])) from None


def _tables(state: ServiceState) -> DataTables:
    return DataTables(state.engine.db)


@router.get("", response_model=list[TableRead])
async def list_tables(state: ServiceState = Depends(get_state)) -> list[dict[str, Any]]:
    """Every table: name, title, key, columns, required columns, row count."""
    return await _call(_tables(state).list_tables)


@router.post("", status_code=201, response_model=TableRead)
async def create_table(body: TableCreate, state: ServiceState = Depends(get_state), actor: User = Depends(user_of)) -> dict[str, Any]:
    """Create a table; 409 if the name is taken."""
    return await _call(lambda: _tables(state).create_table(body.name, body.columns, key=body.key, title=body.title,
                                                          required=body.required, actor=actor.username))


@router.get("/{name}", response_model=TableRead)
async def get_table(name: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """One table's definition and row count."""
    return await _call(lambda: _tables(state).get_table(name))


@router.patch("/{name}", response_model=TableRead)
async def update_table(name: str, body: TableUpdate, state: ServiceState = Depends(get_state),
                       actor: User = Depends(user_of)) -> dict[str, Any]:
    """Add columns and/or change the title."""
    return await _call(lambda: _tables(state).update_table(name, body.columns, body.title, actor=actor.username))


@router.delete("/{name}", status_code=204)
async def drop_table(name: str, state: ServiceState = Depends(get_state), actor: User = Depends(user_of)) -> Response:
    """Delete a table with all its rows."""
    await _call(lambda: _tables(state).drop_table(name, actor=actor.username))
    return Response(status_code=204)


@router.get("/{name}/rows", response_model=RowsPage)
async def list_rows(
    name: str,
    response: Response,
    where: str | None = Query(None, description='JSON filter, e.g. {"city": "Shanghai", "spend": {"gte": 1000}}'),
    sort: str | None = Query(None, description='JSON, e.g. [{"column": "spend", "desc": true}]'),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    """A page of rows: ``{"rows", "total"}`` (the total also in X-Total-Count)."""
    parsed_where, parsed_sort = _json_param("where", where), _json_param("sort", sort)
    page = await _call(lambda: _tables(state).query(name, parsed_where, parsed_sort, limit, offset))
    response.headers["X-Total-Count"] = str(page["total"])
    return page


@router.post("/{name}/rows", status_code=201)
async def insert_row(
    name: str,
    row: dict[str, Any],
    response: Response,
    upsert: bool = Query(False, description="Update the row with the same key instead of failing (200 when updated)."),
    key: str | None = Query(None, description="With upsert: the column to match on (default: the table's key)."),
    state: ServiceState = Depends(get_state),
    actor: User = Depends(user_of),
) -> dict[str, Any]:
    """Insert a row (409 if its key exists), or with ``?upsert=true`` insert or update it."""
    tables = _tables(state)
    if not upsert:
        return await _call(lambda: tables.insert(name, row, actor=actor.username, audited=True))
    stored, created = await _call(lambda: tables.upsert(name, row, key, actor=actor.username, audited=True))
    response.status_code = 201 if created else 200
    return stored


@router.get("/{name}/rows/{row_id}")
async def get_row(name: str, row_id: int, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """One row by its _id."""
    return await _call(lambda: _tables(state).get(name, id=row_id))


@router.patch("/{name}/rows/{row_id}")
async def update_row(name: str, row_id: int, values: dict[str, Any], state: ServiceState = Depends(get_state),
                     actor: User = Depends(user_of)) -> dict[str, Any]:
    """Change columns of one row (null clears a column); the row as updated."""
    result = await _call(lambda: _tables(state).update(name, id=row_id, values=values, actor=actor.username, audited=True))
    return result["rows"][0]


@router.delete("/{name}/rows/{row_id}", status_code=204)
async def delete_row(name: str, row_id: int, state: ServiceState = Depends(get_state), actor: User = Depends(user_of)) -> Response:
    """Delete one row."""
    await _call(lambda: _tables(state).delete(name, id=row_id, actor=actor.username, audited=True))
    return Response(status_code=204)
