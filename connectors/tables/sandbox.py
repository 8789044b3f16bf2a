"""The tables sandbox: a fresh in-memory database with the shipped tables and sample rows.

The `tables` connector talks to no platform, so there is no fake to serve: its examples (the
contract kit) run on the real store over this throwaway SQLite database instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from engine.store.datatables import DataTables, load_definitions
from engine.store.db import migrate

#: The table definitions shipped with the example flows (flows/tables/*.json).
DEFINITIONS = Path(__file__).resolve().parents[2] / "flows" / "tables"

SAMPLE_ROWS: dict[str, list[dict[str, Any]]] = {
    "customers": [
        {"external_userid": "wmA001", "name": "Li Lei", "mobile": "13800000001", "source": "wecom", "state": "active",
         "city": "Shanghai", "tags": ["vip", "repeat"], "owner": "zhangsan", "spend": 12800, "order_count": 6,
         "last_order_at": "2026-10-02T10:00:00+08:00", "birthday": "1990-05-12"},
        {"external_userid": "wmA002", "name": "Han Meimei", "mobile": "13800000002", "source": "douyin", "state": "new",
         "city": "Beijing", "tags": ["new"], "spend": 0, "order_count": 0},
        {"external_userid": "wmA003", "name": "Wang Fang", "mobile": "13800000003", "source": "web", "state": "active",
         "city": "Shanghai", "tags": ["repeat"], "owner": "lisi", "spend": 2300, "order_count": 2},
    ],
    "sales_reps": [
        {"userid": "zhangsan", "name": "Zhang San", "mobile": "13900000001", "wecom_userid": "ZhangSan",
         "dingtalk_userid": "manager7001", "team": "east", "active": True},
        {"userid": "lisi", "name": "Li Si", "mobile": "13900000002", "wecom_userid": "LiSi",
         "dingtalk_userid": "manager7002", "team": "east", "active": True},
        {"userid": "wangwu", "name": "Wang Wu", "mobile": "13900000003", "wecom_userid": "WangWu", "team": "north", "active": False},
    ],
}


def sandbox_tables() -> DataTables:
    """Data tables on a new in-memory SQLite database: the shipped tables plus :data:`SAMPLE_ROWS`."""
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    migrate(engine)
    tables = DataTables(engine)
    load_definitions(tables, DEFINITIONS)
    for table, rows in SAMPLE_ROWS.items():
        for row in rows:
            tables.insert(table, row, actor="sandbox")
    return tables
