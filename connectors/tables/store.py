"""Which database a `tables` action or trigger works on."""
from __future__ import annotations

from typing import Any

from engine.errors import ConnectorError
from engine.store.datatables import DataTables


def database_of(ctx: Any) -> Any:
    """Flowlink's database behind `ctx` (an ActionContext or a poll context): its ``db``,
    else the engine of its shared token cache, which lives in the same database; None if neither."""
    db = getattr(ctx, "db", None)
    if db is None:
        db = getattr(getattr(ctx, "token_cache", None), "engine", None)
    return db


def tables_of(ctx: Any) -> DataTables:
    """The data tables an action works on.

    An interpreter without Flowlink's database (the contract kit runs examples that way) gets
    the sandbox, a fresh in-memory database holding the shipped tables and sample rows; the
    run log says so, since nothing written there is kept.
    """
    db = database_of(ctx)
    if db is not None:
        return DataTables(db)
    from connectors.tables.sandbox import sandbox_tables

    ctx.log("tables: no Flowlink database in this context; using a fresh sandbox database (nothing is kept)")
    return sandbox_tables()


def require_tables(ctx: Any) -> DataTables:
    """The data tables of a trigger's context; ConnectorError when it has no database."""
    db = database_of(ctx)
    if db is None:
        raise ConnectorError("tables: this context has no Flowlink database (poll triggers run in `flowlink serve`)")
    return DataTables(db)
