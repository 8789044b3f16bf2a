"""The database schema (SQLAlchemy Core). Alembic migrations in `migrations/` create it.

Times are UNIX epoch seconds (float) so SQLite and PostgreSQL store and compare them alike.
JSON is stored as text written by orjson. Payloads over `BLOB_THRESHOLD` bytes go to
`blobs`, addressed by their SHA-256, so a large trigger payload that several steps
receive is stored once.
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Payloads larger than this (bytes of JSON) are stored once in `blobs`.
BLOB_THRESHOLD = 4096

_Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

flows = Table(
    "flows",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("current_version", Integer, nullable=False),
    Column("active", Boolean, nullable=False, default=False),
    Column("owner", String(100)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("deleted_at", Float),
)

flow_versions = Table(
    "flow_versions",
    metadata,
    Column("flow_id", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", Text, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("message", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("flow_id", "version"),
    ForeignKeyConstraint(["flow_id"], ["flows.id"]),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("flow_id", String(100), nullable=False),
    Column("flow_version", Integer),
    Column("lane", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("trigger_json", Text),
    Column("trigger_blob", String(64)),
    Column("output_json", Text),
    Column("output_blob", String(64)),
    Column("error", Text),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("prefect_flow_run_id", String(36)),
    Column("resumed_from", String(36)),
    Index("ix_runs_flow_started", "flow_id", "started_at"),
    Index("ix_runs_status_started", "status", "started_at"),
    Index("ix_runs_started", "started_at"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("run_id", String(36), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("path", String(500), nullable=False),
    Column("type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("input_json", Text),
    Column("input_blob", String(64)),
    Column("output_json", Text),
    Column("output_blob", String(64)),
    Column("error", Text),
    Column("attempts", Text),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=False),
    Index("ix_step_runs_run_seq", "run_id", "seq"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target_type", String(32), nullable=False),
    Column("target_id", String(200), nullable=False),
    Column("before", Text),
    Column("after", Text),
    Column("details", Text),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_target", "target_type", "target_id"),
)

connections = Table(
    "connections",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("connector", String(64), nullable=False),
    Column("secret", LargeBinary, nullable=False),
    Column("public", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: Cached platform access tokens (app token, OAuth2), shared by every worker process.
#: `key` is a SHA-256 of (connector, tenant, app id, secret); `token` is Fernet-encrypted.
#: `lease_until` lets one process refresh while the others wait (single-flight refresh).
connector_tokens = Table(
    "connector_tokens",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("connector", String(64), nullable=False),
    Column("token", LargeBinary),
    Column("expires_at", Float),
    Column("lease_until", Float),
    Column("lease_owner", String(64)),
    Column("updated_at", Float, nullable=False),
)

#: Shared rate budgets (token buckets) per connector/connection/API, across processes.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: Poll trigger state: cursor and recently seen item keys, per flow and trigger.
trigger_state = Table(
    "trigger_state",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("cursor", Text),
    Column("seen", Text),
    Column("updated_at", Float, nullable=False),
)

#: The webhook inbox: every accepted event is committed here before the HTTP answer, then run.
#: status: accepted -> running -> done | failed (will retry) | dead (retries exhausted, replayable).
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("flow_id", String(100), nullable=False),
    Column("flow_version", Integer),
    Column("path", String(200), nullable=False),
    Column("dedupe_key", String(200)),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("run_id", String(36)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("received_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("claimed_by", String(64)),
    Column("claimed_until", Float),
    Index("ix_webhook_events_status_received", "status", "received_at"),
    Index("ix_webhook_events_dedupe", "flow_id", "dedupe_key", unique=True),
)

#: People who log in; `role` is admin | editor | operator | viewer; `team` scopes run data.
users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("team", String(100)),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: Machine credentials: only a SHA-256 of the key is stored; `prefix` identifies it in lists.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), nullable=False),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
)

#: Login sessions (bearer tokens): only a SHA-256 of the token is stored.
sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(36), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# ---------------------------------------------------------------------------- data tables
# Built-in data tables (engine/store/datatables.py): named tables whose rows are JSON
# documents validated against each table's column schemas. Rows are queried in SQL through
# SQLAlchemy's JSON operators (JSONB on PostgreSQL, JSON1 functions on SQLite).
from sqlalchemy import JSON  # noqa: E402
from sqlalchemy.dialects.postgresql import JSONB  # noqa: E402

_RowData = JSON().with_variant(JSONB(), "postgresql")

#: One row per data table: its columns (name -> JSON Schema), key column and required columns.
data_tables = Table(
    "data_tables",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("title", Text, nullable=False, default="{}"),
    Column("key", String(64)),
    Column("columns", Text, nullable=False),
    Column("required", Text, nullable=False, default="[]"),
    Column("created_by", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: The rows of every data table; `key_value` is the key column's value as text (unique per table).
data_rows = Table(
    "data_rows",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("table_name", String(64), nullable=False),
    Column("key_value", String(255)),
    Column("data", _RowData, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_data_rows_table_id", "table_name", "id"),
    Index("ix_data_rows_table_key", "table_name", "key_value", unique=True),
    Index("ix_data_rows_table_updated", "table_name", "updated_at"),
)

#: Round-robin state: the last row handed out by each named rotation of a table.
data_rotations = Table(
    "data_rotations",
    metadata,
    Column("key", String(200), primary_key=True),  # "<table>:<rotation>"
    Column("last_id", BigInteger),
    Column("turns", BigInteger, nullable=False, default=0),
    Column("updated_at", Float, nullable=False),
)

#: Row changes (inserted, updated, deleted) with the row as it became, for the row-changed trigger.
data_row_changes = Table(
    "data_row_changes",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("table_name", String(64), nullable=False),
    Column("row_id", BigInteger, nullable=False),
    Column("event", String(16), nullable=False),
    Column("row", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_data_row_changes_table_at", "table_name", "at"),
    Index("ix_data_row_changes_at", "at"),
)
