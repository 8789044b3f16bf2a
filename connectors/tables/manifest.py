"""The `tables` connector's manifest: built-in data tables kept in Flowlink's own database."""
from __future__ import annotations

from connectors.sdk import Connector

connector = Connector(
    name="tables",
    version="1.0.0",
    title={"en": "Data tables", "zh": "数据表"},
    description="Named tables in Flowlink's database: customer profiles, tags, segments, counters and "
                "round-robin assignment, with no external CRM. Insert, upsert by key, get, query, update, "
                "delete, atomic increment and rotation; a trigger on row changes.",
    categories=("core", "data"),
)
