"""Built-in data tables: named tables of JSON rows, each column described by a JSON Schema.

Flows keep customer profiles, tags, segments, counters and round-robin state here when there
is no CRM (like n8n's data tables). A table has columns (name -> JSON Schema of one value, one
JSON type each, e.g. ``{"type": "number", "minimum": 0}``), an optional unique `key` column and
optional `required` columns. Rows live in ``data_rows`` as JSON documents; filters, sorting and
paging run in SQL (JSONB operators on PostgreSQL, JSON1 functions on SQLite).

Rows come back as ``{<every column>: value or None, "_id", "_created_at", "_updated_at"}``
(times in epoch seconds). Every write is validated against the column schemas and fails with
:class:`~engine.errors.InvalidInput` naming the column; an unknown table or row is
:class:`~engine.errors.NotFound`; a duplicate key is :class:`Conflict`. Writing ``None`` to a
column clears it. Each row write also appends a change (inserted/updated/deleted, with the row)
to ``data_row_changes``, read by the ``tables.row_changed`` trigger and kept
:data:`CHANGE_RETENTION` seconds.

`increment` and `next_in_rotation` are atomic across concurrent runs and processes: they run in
a transaction that holds the row (``FOR UPDATE`` / a PostgreSQL advisory lock for a key not
inserted yet) or, on SQLite, the database write lock (``BEGIN IMMEDIATE``).
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import jsonschema
import orjson
import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from connectors.sdk.ratelimit import db_now, lock_row, locked_transaction
from engine.errors import InvalidInput, NotFound
from engine.store import audit
from engine.store.tables import data_row_changes, data_rotations, data_rows, data_tables

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
COLUMN_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
ROTATION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
COLUMN_TYPES = ("string", "number", "integer", "boolean", "array", "object")
#: Columns every row has; flows filter and sort on them like on their own columns.
META_COLUMNS = {"_id": "integer", "_created_at": "number", "_updated_at": "number"}
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "like", "exists")
EVENTS = ("inserted", "updated", "deleted")
MAX_COLUMNS = 200
MAX_ROW_BYTES = 64 * 1024
MAX_LIMIT = 1000
#: Seconds row changes are kept for the row-changed trigger.
CHANGE_RETENTION = 7 * 86400
_PRUNE_EVERY = 600.0

T = TypeVar("T")
log = logging.getLogger("flowlink.tables")


class Conflict(InvalidInput):
    """The write would duplicate a unique value (a table name, a key)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, code=code, connector="tables")


def _fail(message: str, details: Any = None) -> InvalidInput:
    return InvalidInput(message, details=details)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class TableDef:
    """A table's definition: columns (name -> JSON Schema), key and required columns."""

    name: str
    title: dict[str, str]
    key: str | None
    columns: dict[str, dict[str, Any]]
    required: tuple[str, ...]
    created_by: str = "system"
    created_at: float = 0.0
    updated_at: float = 0.0

    def column_type(self, column: str, where: str = "column") -> str:
        """The JSON type of a column (meta columns included); InvalidInput for an unknown one."""
        if column in META_COLUMNS:
            return META_COLUMNS[column]
        schema = self.columns.get(column)
        if schema is None:
            raise _fail(f"table '{self.name}': unknown {where} '{column}' (columns: {', '.join(self.columns)})",
                        [{"column": column, "message": "unknown column"}])
        return _single_type(schema)

    def validator(self) -> jsonschema.Draft202012Validator:
        """The validator of a whole row (unknown columns rejected)."""
        schema = {"type": "object", "properties": self.columns, "required": list(self.required),
                  "additionalProperties": False}
        return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        """`data` without cleared (None) columns, checked against the schemas; InvalidInput naming each bad column."""
        if not isinstance(data, dict):
            raise _fail(f"table '{self.name}': a row must be an object, got {_type_name(data)}")
        row = {k: v for k, v in data.items() if v is not None}
        problems = []
        for error in sorted(self.validator().iter_errors(row), key=lambda e: list(map(str, e.absolute_path))):
            if error.validator == "required":
                for column in [c for c in self.required if c not in row]:
                    problems.append({"column": column, "message": f"column '{column}' is required"})
            elif error.validator == "additionalProperties":
                for column in [c for c in row if c not in self.columns]:
                    problems.append({"column": column, "message": f"unknown column '{column}' "
                                                                  f"(columns: {', '.join(self.columns)})"})
            else:
                column = str(error.absolute_path[0]) if error.absolute_path else ""
                inner = "".join(f"[{p!r}]" for p in list(error.absolute_path)[1:])
                problems.append({"column": column, "message": f"column '{column}'{inner}: {error.message}"})
        if problems:
            unique = list({p["message"]: p for p in problems}.values())
            raise _fail(f"table '{self.name}': " + "; ".join(p["message"] for p in unique), unique)
        if len(orjson.dumps(row)) > MAX_ROW_BYTES:
            raise _fail(f"table '{self.name}': a row is at most {MAX_ROW_BYTES:,} bytes of JSON")
        if self.key is not None and self.key not in row:
            raise _fail(f"table '{self.name}': column '{self.key}' is required (it is the key)",
                        [{"column": self.key, "message": "the key is required"}])
        return row

    def key_text(self, row: dict[str, Any]) -> str | None:
        """The key column's value as stored in ``key_value`` (None without a key column)."""
        return None if self.key is None else str(row[self.key])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": dict(self.title), "key": self.key, "columns": dict(self.columns),
                "required": list(self.required), "created_by": self.created_by, "created_at": self.created_at,
                "updated_at": self.updated_at}


def _single_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    kinds = [k for k in kind if k != "null"] if isinstance(kind, list) else [kind]
    return kinds[0] if len(kinds) == 1 else ""


def _check_columns(table: str, columns: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(columns, dict) or not columns:
        raise _fail(f"table '{table}': columns must be a non-empty object of column name -> JSON Schema")
    if len(columns) > MAX_COLUMNS:
        raise _fail(f"table '{table}': at most {MAX_COLUMNS} columns")
    checked = {}
    for name, schema in columns.items():
        if not re.match(COLUMN_PATTERN, name):
            raise _fail(f"table '{table}': column name '{name}' must match {COLUMN_PATTERN} (names starting with _ are reserved)",
                        [{"column": name, "message": "invalid column name"}])
        if not isinstance(schema, dict) or _single_type(schema) not in COLUMN_TYPES:
            raise _fail(f"table '{table}': column '{name}' needs a JSON Schema with one \"type\" of "
                        f"{', '.join(COLUMN_TYPES)} (optionally with \"null\")", [{"column": name, "message": "invalid type"}])
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise _fail(f"table '{table}': column '{name}': invalid JSON Schema: {exc.message}",
                        [{"column": name, "message": exc.message}]) from None
        checked[name] = dict(schema)
    return checked


def _title(value: str | dict[str, str] | None, name: str) -> dict[str, str]:
    if value is None:
        return {"en": name}
    if isinstance(value, str):
        return {"en": value}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _fail(f"table '{name}': title must be a string or an object of language -> text")
    return dict(value)


def _def_from(row: Any) -> TableDef:
    return TableDef(name=row.name, title=orjson.loads(row.title), key=row.key, columns=orjson.loads(row.columns),
                    required=tuple(orjson.loads(row.required)), created_by=row.created_by,
                    created_at=row.created_at, updated_at=row.updated_at)


# ---------------------------------------------------------------------------- filters


def _column_expr(column: str, kind: str) -> Any:
    if column in META_COLUMNS:
        return {"_id": data_rows.c.id, "_created_at": data_rows.c.created_at, "_updated_at": data_rows.c.updated_at}[column]
    element = data_rows.c.data[column]
    if kind in ("number", "integer"):
        return element.as_float()
    if kind == "boolean":
        return element.as_boolean()
    return element.as_string()


def _check_value(where: str, kind: str, value: Any) -> Any:
    ok = {
        "string": isinstance(value, str),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "integer": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }.get(kind, False)
    if not ok:
        expected = f"expected {'an' if kind == 'integer' else 'a'} {kind}"
        raise _fail(f"{where}: {expected}, got {_type_name(value)}", [{"column": where.split(".")[1], "message": expected}])
    return value


class Filters:
    """Compiles a `where` object and a `sort` list of a table into SQL clauses."""

    def __init__(self, table: TableDef, dialect: str) -> None:
        self.table = table
        self.dialect = dialect

    def where(self, where: dict[str, Any] | None) -> list[Any]:
        """One clause per column test: ``{"city": "Shanghai", "spend": {"gte": 1000}, ...}``."""
        if where is None:
            return []
        if not isinstance(where, dict):
            raise _fail(f"where must be an object of column -> value or {{operator: value}}, got {_type_name(where)}")
        clauses = []
        for column, test in where.items():
            kind = self.table.column_type(column, "where column")
            tests = test if isinstance(test, dict) else {"eq": test}
            if not tests:
                raise _fail(f"where.{column}: give at least one operator ({', '.join(OPERATORS)})")
            for op, value in tests.items():
                if op not in OPERATORS:
                    raise _fail(f"where.{column}: unknown operator '{op}' (use {', '.join(OPERATORS)})",
                                [{"column": column, "message": f"unknown operator '{op}'"}])
                clauses.append(self._test(column, kind, op, value))
        return clauses

    def _test(self, column: str, kind: str, op: str, value: Any) -> Any:
        at = f"where.{column}.{op}"
        scalar = kind in ("string", "number", "integer", "boolean")
        if op == "exists" or (op == "eq" and value is None):
            present = value if op == "exists" else False
            if not isinstance(present, bool):
                raise _fail(f"{at}: expected true or false, got {_type_name(value)}")
            raw = _column_expr(column, kind) if column in META_COLUMNS else data_rows.c.data[column].as_string()
            return raw.is_not(None) if present else raw.is_(None)
        if op == "contains":
            return self._contains(column, kind, value, at)
        if not scalar:
            raise _fail(f"{at}: a {kind} column supports only contains and exists" if kind == "array"
                        else f"{at}: an object column supports only exists", [{"column": column, "message": f"operator '{op}' not supported"}])
        expr = _column_expr(column, kind)
        if op == "in":
            if not isinstance(value, list):
                raise _fail(f"{at}: expected a list, got {_type_name(value)}")
            return expr.in_([_check_value(at, kind, v) for v in value]) if value else sa.false()
        if op == "like":
            if kind != "string":
                raise _fail(f"{at}: like works on string columns, '{column}' is a {kind}")
            return expr.ilike(_check_value(at, "string", value))
        if op in ("gt", "gte", "lt", "lte") and kind == "boolean":
            raise _fail(f"{at}: a boolean column supports eq, ne, in and exists")
        value = _check_value(at, kind, value)
        if op == "eq":
            return expr == value
        if op == "ne":  # rows where the column is empty differ from any value too
            return sa.or_(expr != value, expr.is_(None))
        return {"gt": expr > value, "gte": expr >= value, "lt": expr < value, "lte": expr <= value}[op]

    def _contains(self, column: str, kind: str, value: Any, at: str) -> Any:
        if kind == "string":
            text = _check_value(at, "string", value)
            expr = _column_expr(column, kind)
            position = sa.func.strpos(expr, text) if self.dialect == "postgresql" else sa.func.instr(expr, text)
            return position > 0
        if kind != "array":
            raise _fail(f"{at}: contains works on string and array columns, '{column}' is a {kind}")
        if isinstance(value, (dict, list)) or value is None:
            raise _fail(f"{at}: expected a string, number or boolean item, got {_type_name(value)}")
        if self.dialect == "postgresql":
            return sa.type_coerce(data_rows.c.data, JSONB())[column].contains([value])
        items = sa.func.json_each(data_rows.c.data, f'$."{column}"').table_valued("value", "type")
        if isinstance(value, bool):  # JSON1 gives true/false as 1/0 with type 'true'/'false'
            match = items.c.type == ("true" if value else "false")
        else:
            match = sa.and_(items.c.value == value, items.c.type.in_(("text",) if isinstance(value, str) else ("integer", "real")))
        return sa.exists(sa.select(sa.literal(1)).select_from(items).where(match))

    def order(self, sort: Any) -> list[Any]:
        """ORDER BY clauses of ``[{"column": "spend", "desc": true}, ...]`` (empty values last), then `_id`."""
        if sort is None:
            sort = []
        if isinstance(sort, dict):
            sort = [sort]
        if not isinstance(sort, list):
            raise _fail(f"sort must be a list of {{\"column\", \"desc\"}}, got {_type_name(sort)}")
        clauses = []
        for index, entry in enumerate(sort):
            if not isinstance(entry, dict) or not isinstance(entry.get("column"), str) or set(entry) - {"column", "desc"}:
                raise _fail(f"sort[{index}]: expected {{\"column\": name, \"desc\": true|false}}")
            column = entry["column"]
            kind = self.table.column_type(column, "sort column")
            if kind in ("array", "object"):
                raise _fail(f"sort[{index}]: cannot sort by the {kind} column '{column}'")
            expr = _column_expr(column, kind)
            clauses.append((expr.desc() if entry.get("desc") else expr.asc()).nulls_last())
        return [*clauses, data_rows.c.id.asc()]


# ---------------------------------------------------------------------------- the store

_prune_lock = threading.Lock()
_last_prune: dict[str, float] = {}


class DataTables:
    """Named data tables in Flowlink's database (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ tables

    def create_table(
        self,
        name: str,
        columns: dict[str, dict[str, Any]],
        key: str | None = None,
        title: str | dict[str, str] | None = None,
        *,
        required: Iterable[str] = (),
        actor: str = "system",
    ) -> dict[str, Any]:
        """Create a table; Conflict if the name is taken, InvalidInput for a bad definition."""
        if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
            raise _fail(f"table name '{name}' must match {NAME_PATTERN}")
        checked = _check_columns(name, columns)
        required = tuple(dict.fromkeys(required))
        for column in (*required, *([key] if key else [])):
            if column not in checked:
                raise _fail(f"table '{name}': '{column}' is not one of its columns ({', '.join(checked)})",
                            [{"column": column, "message": "unknown column"}])
        if key is not None and _single_type(checked[key]) not in ("string", "integer"):
            raise _fail(f"table '{name}': the key column '{key}' must be a string or an integer",
                        [{"column": key, "message": "a key is a string or an integer"}])
        try:
            with locked_transaction(self.engine) as conn:
                if conn.execute(sa.select(data_tables.c.name).where(data_tables.c.name == name)).first():
                    raise Conflict(f"table '{name}' exists", "table_exists")
                now = db_now(conn)
                values = {"name": name, "title": orjson.dumps(_title(title, name)).decode(), "key": key,
                          "columns": orjson.dumps(checked).decode(), "required": orjson.dumps(list(required)).decode(),
                          "created_by": actor, "created_at": now, "updated_at": now}
                conn.execute(data_tables.insert().values(**values))
                table = _def_from(_Record(values))
                audit.record(conn, actor, "table.create", "table", name, after=table.to_dict())
        except IntegrityError:
            raise Conflict(f"table '{name}' exists", "table_exists") from None
        return table.to_dict()

    def get_table(self, name: str) -> dict[str, Any]:
        """A table's definition with its row count; NotFound if there is none."""
        with self.engine.connect() as conn:
            table = self._table(conn, name)
            count = conn.execute(sa.select(sa.func.count()).select_from(data_rows).where(data_rows.c.table_name == name)).scalar_one()
        return {**table.to_dict(), "rows": count}

    def list_tables(self) -> list[dict[str, Any]]:
        """Every table's definition with its row count, by name."""
        counts = sa.select(data_rows.c.table_name, sa.func.count().label("n")).group_by(data_rows.c.table_name).subquery()
        query = (sa.select(data_tables, sa.func.coalesce(counts.c.n, 0).label("rows"))
                 .outerjoin(counts, counts.c.table_name == data_tables.c.name).order_by(data_tables.c.name))
        with self.engine.connect() as conn:
            return [{**_def_from(row).to_dict(), "rows": row.rows} for row in conn.execute(query)]

    def table(self, name: str) -> TableDef:
        """A table's definition as a :class:`TableDef`; NotFound if there is none."""
        with self.engine.connect() as conn:
            return self._table(conn, name)

    def update_table(
        self,
        name: str,
        columns: dict[str, dict[str, Any]] | None = None,
        title: str | dict[str, str] | None = None,
        *,
        actor: str = "system",
    ) -> dict[str, Any]:
        """Add columns (optional: existing rows have none) and change the title.

        A column that exists may be given again unchanged; changing its schema is refused,
        since rows already stored were validated against it.
        """
        with locked_transaction(self.engine) as conn:
            table = self._table(conn, name, lock=True)
            merged = dict(table.columns)
            added = _check_columns(name, columns) if columns else {}
            for column, schema in added.items():
                if column in merged and merged[column] != schema:
                    raise _fail(f"table '{name}': column '{column}' exists with another schema; "
                                "columns can be added, not changed", [{"column": column, "message": "column exists"}])
                merged[column] = schema
            if len(merged) > MAX_COLUMNS:
                raise _fail(f"table '{name}': at most {MAX_COLUMNS} columns")
            new_title = _title(title, name) if title is not None else table.title
            conn.execute(data_tables.update().where(data_tables.c.name == name).values(
                columns=orjson.dumps(merged).decode(), title=orjson.dumps(new_title).decode(), updated_at=db_now(conn)))
            updated = self._table(conn, name)
            audit.record(conn, actor, "table.update", "table", name, before=table.to_dict(), after=updated.to_dict())
        return updated.to_dict()

    def drop_table(self, name: str, *, actor: str = "system") -> None:
        """Delete a table with its rows, rotations and change history; NotFound if there is none."""
        with locked_transaction(self.engine) as conn:
            table = self._table(conn, name, lock=True)
            rows = conn.execute(sa.delete(data_rows).where(data_rows.c.table_name == name)).rowcount
            conn.execute(sa.delete(data_row_changes).where(data_row_changes.c.table_name == name))
            conn.execute(sa.delete(data_rotations).where(data_rotations.c.key.startswith(f"{name}:", autoescape=True)))
            conn.execute(sa.delete(data_tables).where(data_tables.c.name == name))
            audit.record(conn, actor, "table.drop", "table", name, before=table.to_dict(), details={"rows": rows})

    # ------------------------------------------------------------------ reading rows

    def get(self, table: str, id: int | None = None, key_value: Any = None) -> dict[str, Any]:
        """One row by `_id` or by key value; NotFound if it does not exist."""
        with self.engine.connect() as conn:
            tdef = self._table(conn, table)
            return _row_out(tdef, self._one(conn, tdef, id, key_value))

    def query(
        self,
        table: str,
        where: dict[str, Any] | None = None,
        sort: list[dict[str, Any]] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """``{"rows": [...], "total": n}``: a page of the rows matching `where`, in `sort` order."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise _fail(f"limit must be an integer from 1 to {MAX_LIMIT}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise _fail("offset must be a non-negative integer")
        with self.engine.connect() as conn:
            tdef = self._table(conn, table)
            filters = Filters(tdef, conn.dialect.name)
            conditions = [data_rows.c.table_name == table, *filters.where(where)]
            order = filters.order(sort)
            total = conn.execute(sa.select(sa.func.count()).select_from(data_rows).where(*conditions)).scalar_one()
            rows = conn.execute(sa.select(data_rows).where(*conditions).order_by(*order).limit(limit).offset(offset)).all()
        return {"rows": [_row_out(tdef, r) for r in rows], "total": total}

    # ------------------------------------------------------------------ writing rows

    def insert(self, table: str, row: dict[str, Any], *, actor: str = "system", audited: bool = False) -> dict[str, Any]:
        """Insert a row; Conflict if its key exists."""
        def write(conn: Connection) -> dict[str, Any]:
            tdef = self._table(conn, table)
            data = tdef.validate(row)
            key = tdef.key_text(data)
            if key is not None and self._by_key(conn, tdef, key) is not None:
                raise Conflict(f"table '{table}': a row with {tdef.key} = {key!r} exists (use upsert to update it)", "duplicate_key")
            created = self._insert(conn, tdef, data, actor)
            if audited:
                audit.record(conn, actor, "table.row_insert", "table_row", f"{table}/{created['_id']}", after=created)
            return created

        return self._write(table, write)

    def upsert(
        self, table: str, row: dict[str, Any], key: str | None = None, *, actor: str = "system", audited: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """Update the row whose `key` column (default: the table's key) equals the row's, or insert it.

        Returns ``(row, created)``. The given columns are merged into the stored row. Keyed by
        another column, that column's value must identify at most one row.
        """
        def write(conn: Connection) -> tuple[dict[str, Any], bool]:
            tdef = self._table(conn, table)
            column = key or tdef.key
            if column is None:
                raise _fail(f"table '{table}' has no key column: give the column to match rows on (key)")
            kind = tdef.column_type(column, "key column")
            if not isinstance(row, dict) or row.get(column) is None:
                raise _fail(f"table '{table}': the row needs a value in column '{column}' to upsert on it",
                            [{"column": column, "message": "required to upsert"}])
            if kind not in ("string", "number", "integer", "boolean"):
                raise _fail(f"table '{table}': cannot upsert on the {kind} column '{column}'")
            value = _check_value(f"row.{column}", kind, row[column])
            self._lock_value(conn, table, column, value)
            if column == tdef.key:
                existing = self._by_key(conn, tdef, str(_typed_key(tdef, value)), lock=True)
            else:
                matches = conn.execute(_locking(conn, sa.select(data_rows).where(
                    data_rows.c.table_name == table, *Filters(tdef, conn.dialect.name).where({column: value})).limit(2))).all()
                if len(matches) > 1:
                    raise _fail(f"table '{table}': several rows have {column} = {value!r}; upsert needs a column that identifies one row")
                existing = matches[0] if matches else None
            if existing is None:
                created = self._insert(conn, tdef, tdef.validate(row), actor)
                if audited:
                    audit.record(conn, actor, "table.row_insert", "table_row", f"{table}/{created['_id']}", after=created)
                return created, True
            updated = self._update_row(conn, tdef, existing, row, actor, audited)
            return updated, False

        return self._write(table, write)

    def update(
        self,
        table: str,
        id: int | None = None,
        where: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        *,
        actor: str = "system",
        audited: bool = False,
    ) -> dict[str, Any]:
        """Merge `values` into the row `id` (NotFound if missing) or every row matching `where`.

        Returns ``{"updated": n, "rows": [the rows as updated]}``; ``None`` clears a column.
        """
        if not isinstance(values, dict) or not values:
            raise _fail("values: give at least one column to set")

        def write(conn: Connection) -> dict[str, Any]:
            tdef = self._table(conn, table)
            rows = self._targets(conn, tdef, id, where)
            updated = [self._update_row(conn, tdef, r, values, actor, audited) for r in rows]
            return {"updated": len(updated), "rows": updated}

        return self._write(table, write)

    def delete(
        self, table: str, id: int | None = None, where: dict[str, Any] | None = None, *, actor: str = "system", audited: bool = False
    ) -> dict[str, Any]:
        """Delete the row `id` (NotFound if missing) or every row matching `where`: ``{"deleted": n}``."""
        def write(conn: Connection) -> dict[str, Any]:
            tdef = self._table(conn, table)
            rows = self._targets(conn, tdef, id, where)
            now = db_now(conn)
            for r in rows:
                before = _row_out(tdef, r)
                conn.execute(sa.delete(data_rows).where(data_rows.c.id == r.id))
                self._change(conn, tdef, r.id, "deleted", before, actor, now)
                if audited:
                    audit.record(conn, actor, "table.row_delete", "table_row", f"{table}/{r.id}", before=before)
            return {"deleted": len(rows)}

        return self._write(table, write)

    def increment(self, table: str, key_value: Any, column: str, by: int | float = 1, *, actor: str = "system") -> int | float:
        """Add `by` to a number column of the row with that key (created with the column = `by`
        when missing) and return the new value; atomic across concurrent runs and processes."""
        def write(conn: Connection) -> int | float:
            tdef = self._table(conn, table)
            if tdef.key is None:
                raise _fail(f"table '{table}' has no key column: increment finds its row by key")
            kind = tdef.column_type(column)
            if kind not in ("number", "integer"):
                raise _fail(f"table '{table}': column '{column}' is a {kind}; increment needs a number column",
                            [{"column": column, "message": "not a number column"}])
            if isinstance(by, bool) or not isinstance(by, (int, float)) or (kind == "integer" and not float(by).is_integer()):
                raise _fail(f"by: expected {'an integer' if kind == 'integer' else 'a number'} for column '{column}', got {by!r}")
            step = int(by) if kind == "integer" else by
            key = _typed_key(tdef, key_value)
            self._lock_value(conn, table, tdef.key, key)
            existing = self._by_key(conn, tdef, str(key), lock=True)
            if existing is None:
                self._insert(conn, tdef, tdef.validate({tdef.key: key, column: step}), actor)
                return step
            current = existing.data.get(column) or 0
            new = current + step
            self._update_row(conn, tdef, existing, {column: new}, actor, False)
            return new

        return self._write(table, write)

    def next_in_rotation(self, table: str, rotation: str = "default", where: dict[str, Any] | None = None,
                         *, actor: str = "system") -> dict[str, Any]:
        """The next row matching `where` after the one this rotation handed out last, in `_id`
        order, wrapping around: round-robin assignment. Atomic across concurrent runs and
        processes (each call gets its own turn). The row carries ``_turn``, this rotation's
        count of rows handed out so far (this one included). NotFound when no row matches."""
        if not isinstance(rotation, str) or not re.match(ROTATION_PATTERN, rotation):
            raise _fail(f"rotation '{rotation}' must match {ROTATION_PATTERN}")
        with locked_transaction(self.engine) as conn:
            tdef = self._table(conn, table)
            conditions = [data_rows.c.table_name == table, *Filters(tdef, conn.dialect.name).where(where)]
            now = db_now(conn)
            state = lock_row(conn, data_rotations, f"{table}:{rotation}", {"last_id": None, "turns": 0, "updated_at": now})
            first = sa.select(data_rows).where(*conditions).order_by(data_rows.c.id).limit(1)
            row = conn.execute(first.where(data_rows.c.id > state.last_id)).first() if state.last_id is not None else None
            row = row or conn.execute(first).first()
            if row is None:
                raise NotFound(f"table '{table}': no row matches {json.dumps(where or {}, ensure_ascii=False)} for rotation '{rotation}'")
            turns = state.turns + 1
            conn.execute(data_rotations.update().where(data_rotations.c.key == state.key)
                         .values(last_id=row.id, turns=turns, updated_at=now))
            return {**_row_out(tdef, row), "_turn": turns}

    # ------------------------------------------------------------------ changes

    def changes(self, table: str, since: float | None = None, events: Iterable[str] | None = None,
                limit: int = 500) -> list[dict[str, Any]]:
        """Row changes of `table` oldest first, each the row plus ``_event`` and ``_changed_at``.

        With `since`, those at or after it (at most `limit`); without, the newest ones (those
        sharing the latest time), which is what a poll trigger seeds its cursor from.
        """
        wanted = list(events or EVENTS)
        if unknown := [e for e in wanted if e not in EVENTS]:
            raise _fail(f"events: unknown event {unknown[0]!r} (use {', '.join(EVENTS)})")
        with self.engine.connect() as conn:
            self._table(conn, table)
            conditions = [data_row_changes.c.table_name == table, data_row_changes.c.event.in_(wanted)]
            if since is None:
                newest = sa.select(sa.func.max(data_row_changes.c.at)).where(*conditions).scalar_subquery()
                conditions.append(data_row_changes.c.at == newest)
            else:
                conditions.append(data_row_changes.c.at >= since)
            rows = conn.execute(sa.select(data_row_changes).where(*conditions)
                                .order_by(data_row_changes.c.at, data_row_changes.c.id).limit(limit)).all()
        return [{**orjson.loads(r.row), "_event": r.event, "_changed_at": r.at} for r in rows]

    # ------------------------------------------------------------------ internals

    def _write(self, table: str, write: Callable[[Connection], T]) -> T:
        """Run `write` in a locked transaction; a unique-index race (PostgreSQL) is retried, then a Conflict."""
        for attempt in range(3):
            try:
                with locked_transaction(self.engine) as conn:
                    result = write(conn)
                    self._maybe_prune(conn)
                    return result
            except IntegrityError:
                if attempt == 2:
                    raise Conflict(f"table '{table}': the key is taken by another row", "duplicate_key") from None
        raise AssertionError("unreachable")

    def _table(self, conn: Connection, name: str, lock: bool = False) -> TableDef:
        query = sa.select(data_tables).where(data_tables.c.name == name)
        row = conn.execute(_locking(conn, query) if lock else query).first()
        if row is None:
            raise NotFound(f"no data table '{name}'", code="table_not_found", connector="tables")
        return _def_from(row)

    def _by_key(self, conn: Connection, tdef: TableDef, key: str, lock: bool = False) -> Any:
        query = sa.select(data_rows).where(data_rows.c.table_name == tdef.name, data_rows.c.key_value == key)
        return conn.execute(_locking(conn, query) if lock else query).first()

    def _one(self, conn: Connection, tdef: TableDef, id: int | None, key_value: Any, lock: bool = False) -> Any:
        if (id is None) == (key_value is None):
            raise _fail("give exactly one of id and key")
        if id is not None:
            if isinstance(id, bool) or not isinstance(id, int):
                raise _fail(f"id: expected an integer, got {_type_name(id)}")
            query = sa.select(data_rows).where(data_rows.c.table_name == tdef.name, data_rows.c.id == id)
            row = conn.execute(_locking(conn, query) if lock else query).first()
            what = f"_id {id}"
        else:
            if tdef.key is None:
                raise _fail(f"table '{tdef.name}' has no key column: find rows by id")
            row = self._by_key(conn, tdef, str(_typed_key(tdef, key_value)), lock)
            what = f"{tdef.key} = {key_value!r}"
        if row is None:
            raise NotFound(f"table '{tdef.name}': no row with {what}", code="row_not_found", connector="tables")
        return row

    def _targets(self, conn: Connection, tdef: TableDef, id: int | None, where: dict[str, Any] | None) -> list[Any]:
        if (id is None) == (where is None):
            raise _fail("give exactly one of id and where")
        if id is not None:
            return [self._one(conn, tdef, id, None, lock=True)]
        if not isinstance(where, dict) or not where:
            raise _fail("where must name at least one column (an empty where would change every row)")
        query = sa.select(data_rows).where(data_rows.c.table_name == tdef.name, *Filters(tdef, conn.dialect.name).where(where))
        return list(conn.execute(_locking(conn, query.order_by(data_rows.c.id))).all())

    def _insert(self, conn: Connection, tdef: TableDef, data: dict[str, Any], actor: str) -> dict[str, Any]:
        now = db_now(conn)
        row_id = conn.execute(data_rows.insert().values(table_name=tdef.name, key_value=tdef.key_text(data), data=data,
                                                        created_at=now, updated_at=now).returning(data_rows.c.id)).scalar_one()
        out = _row_out(tdef, _Record({"id": row_id, "data": data, "created_at": now, "updated_at": now}))
        self._change(conn, tdef, row_id, "inserted", out, actor, now)
        return out

    def _update_row(self, conn: Connection, tdef: TableDef, existing: Any, values: dict[str, Any], actor: str,
                    audited: bool) -> dict[str, Any]:
        before = _row_out(tdef, existing)
        data = tdef.validate({**existing.data, **values})
        key = tdef.key_text(data)
        if key is not None and key != existing.key_value and self._by_key(conn, tdef, key) is not None:
            raise Conflict(f"table '{tdef.name}': a row with {tdef.key} = {key!r} exists", "duplicate_key")
        now = db_now(conn)
        conn.execute(data_rows.update().where(data_rows.c.id == existing.id).values(data=data, key_value=key, updated_at=now))
        after = _row_out(tdef, _Record({"id": existing.id, "data": data, "created_at": existing.created_at, "updated_at": now}))
        self._change(conn, tdef, existing.id, "updated", after, actor, now)
        if audited:
            audit.record(conn, actor, "table.row_update", "table_row", f"{tdef.name}/{existing.id}", before=before, after=after)
        return after

    def _change(self, conn: Connection, tdef: TableDef, row_id: int, event: str, row: dict[str, Any], actor: str, at: float) -> None:
        conn.execute(data_row_changes.insert().values(table_name=tdef.name, row_id=row_id, event=event,
                                                      row=orjson.dumps(row).decode(), actor=actor[:200], at=at))

    def _lock_value(self, conn: Connection, table: str, column: str, value: Any) -> None:
        """PostgreSQL: serialise writers of one (table, column, value) until the transaction ends,
        so two runs creating the same missing row do not race (SQLite's write lock already does)."""
        if conn.dialect.name == "postgresql":
            token = f"flowlink.tables:{table}:{column}:{orjson.dumps(value).decode()}"
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:token, 0))"), {"token": token})

    def _maybe_prune(self, conn: Connection) -> None:
        """Drop row changes older than CHANGE_RETENTION, at most every _PRUNE_EVERY s per database."""
        url = str(self.engine.url)
        now = time.monotonic()
        with _prune_lock:
            if now - _last_prune.get(url, -_PRUNE_EVERY) < _PRUNE_EVERY:
                return
            _last_prune[url] = now
        conn.execute(sa.delete(data_row_changes).where(data_row_changes.c.at < db_now(conn) - CHANGE_RETENTION))


class _Record:
    """Attribute access over a dict, shaped like a fetched row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _locking(conn: Connection, query: Any) -> Any:
    return query if conn.dialect.name == "sqlite" else query.with_for_update()


def _typed_key(tdef: TableDef, value: Any) -> Any:
    """A key value in its column's type (``"42"`` for an integer key is 42)."""
    kind = tdef.column_type(tdef.key) if tdef.key else "string"
    if kind == "integer":
        try:
            if isinstance(value, bool):
                raise ValueError
            number = int(value) if not isinstance(value, float) or value.is_integer() else None
            if number is None:
                raise ValueError
            return number
        except (TypeError, ValueError):
            raise _fail(f"key: '{tdef.key}' is an integer column, got {value!r}") from None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise _fail(f"key: expected a string, got {_type_name(value)}")
    return str(value)


def _row_out(tdef: TableDef, row: Any) -> dict[str, Any]:
    data = row.data
    out = {column: data.get(column) for column in tdef.columns}
    out.update(_id=row.id, _created_at=row.created_at, _updated_at=row.updated_at)
    return out


# ---------------------------------------------------------------------------- right to erasure


@dataclass
class RowErasure:
    """What erasing a subject from the data tables removed (or would remove, in a dry run)."""

    rows: dict[str, int]  # table name -> rows
    changes: int  # entries of the row-change history (the row-changed trigger's source)


def _field_equals(document: Any, subject: str, dialect: str) -> Any:
    """SQL: some top-level field of the JSON `document` is the string `subject`, or a number
    whose text form is `subject` (nested values, booleans and null never match)."""
    if dialect == "postgresql":
        # a JSON text column is parsed; the JSONB row data is only retyped
        doc = sa.cast(document, JSONB()) if isinstance(document.type, sa.Text) else sa.type_coerce(document, JSONB())
        fields = sa.func.jsonb_each_text(doc).table_valued("key", "value")
        kind = sa.func.jsonb_typeof(doc.op("->")(fields.c.key))
        match = sa.and_(fields.c.value == subject, kind.in_(("string", "number")))
    else:  # SQLite JSON1: json_each gives text/integer/real for scalars
        fields = sa.func.json_each(document).table_valued("value", "type")
        match = sa.and_(fields.c.type.in_(("text", "integer", "real")), sa.cast(fields.c.value, sa.Text) == subject)
    return sa.exists(sa.select(sa.literal(1)).select_from(fields).where(match))


def erase_subject_rows(engine: Engine, subject: str, *, dry_run: bool = False, batch: int = 500) -> RowErasure:
    """Delete every data-table row in which a top-level field equals `subject` (numbers by their
    text form), with those rows' change history and any other change entry carrying the subject.

    The filter runs in SQL; deletion goes `batch` rows per transaction. Erased rows write no
    ``deleted`` change and no per-row audit entry (both would store the subject again): the
    caller audits the erasure once. `dry_run` only counts.
    """
    dialect = engine.dialect.name
    row_hit = _field_equals(data_rows.c.data, subject, dialect)
    change_hit = _field_equals(data_row_changes.c.row, subject, dialect)
    if dry_run:
        with engine.connect() as conn:
            counts = conn.execute(sa.select(data_rows.c.table_name, sa.func.count()).where(row_hit)
                                  .group_by(data_rows.c.table_name)).all()
            changes = conn.execute(sa.select(sa.func.count()).select_from(data_row_changes).where(sa.or_(
                change_hit, data_row_changes.c.row_id.in_(sa.select(data_rows.c.id).where(row_hit))))).scalar_one()
        return RowErasure({name: n for name, n in sorted(counts)}, changes)
    result = RowErasure({}, 0)
    after = 0
    while True:  # walk the matches in id order so each batch resumes where the last one stopped
        with locked_transaction(engine) as conn:
            found = conn.execute(sa.select(data_rows.c.id, data_rows.c.table_name)
                                 .where(data_rows.c.id > after, row_hit).order_by(data_rows.c.id).limit(batch)).all()
            if not found:
                break
            ids = [row_id for row_id, _ in found]
            conn.execute(sa.delete(data_rows).where(data_rows.c.id.in_(ids)))
            result.changes += conn.execute(sa.delete(data_row_changes).where(data_row_changes.c.row_id.in_(ids))).rowcount
            for _, name in found:
                result.rows[name] = result.rows.get(name, 0) + 1
            after = ids[-1]
        time.sleep(0)  # let other writers take the database between batches
    after = 0
    while True:  # history of rows that no longer hold the subject (updated or deleted since)
        with locked_transaction(engine) as conn:
            ids = conn.execute(sa.select(data_row_changes.c.id).where(data_row_changes.c.id > after, change_hit)
                               .order_by(data_row_changes.c.id).limit(batch)).scalars().all()
            if not ids:
                break
            result.changes += conn.execute(sa.delete(data_row_changes).where(data_row_changes.c.id.in_(ids))).rowcount
            after = ids[-1]
        time.sleep(0)
    result.rows = dict(sorted(result.rows.items()))
    return result


# ---------------------------------------------------------------------------- definition files


def load_definitions(tables: DataTables, folder: Path, actor: str = "system") -> int:
    """Create the tables defined in ``folder/*.json`` that do not exist yet; returns how many.

    A file is ``{"name", "title": {"en", "zh"}, "key"?, "required"?, "columns": {...}, "description"?}``.
    An invalid file is logged and skipped, like an invalid example flow.
    """
    existing = {t["name"] for t in tables.list_tables()}
    added = 0
    for path in sorted(folder.glob("*.json")):
        try:
            spec = orjson.loads(path.read_bytes())
            if not isinstance(spec, dict) or set(spec) - {"name", "title", "key", "required", "columns", "description"}:
                raise _fail("a table definition is an object of name, title, key, required, columns, description")
            if spec.get("name") in existing:
                continue
            tables.create_table(spec.get("name"), spec.get("columns"), key=spec.get("key"), title=spec.get("title"),
                                required=spec.get("required") or (), actor=actor)
        except (InvalidInput, orjson.JSONDecodeError) as exc:
            log.error("table definition %s is invalid: %s", path.name, getattr(exc, "message", exc))
            continue
        added += 1
    return added
