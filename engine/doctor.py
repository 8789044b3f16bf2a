"""`flowlink doctor`: check a deployment's configuration without changing anything.

Each check answers ok, warn or fail with a sentence saying what was found and what to do.
The database is inspected, never migrated; the secret key is read, never created.
"""
from __future__ import annotations

import os
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy.engine import make_url

from engine.store.db import alembic_config, default_database_url, make_engine, normalize_url

OK, WARN, FAIL = "ok", "warn", "fail"
UI_DIST = Path(__file__).resolve().parent.parent / "ui" / "dist" / "index.html"


@dataclass
class Check:
    """One finding."""

    name: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def check_secret_key() -> Check:
    """The credential key: FLOWLINK_SECRET_KEY, or a 0600 key file under FLOWLINK_HOME."""
    raw = os.environ.get("FLOWLINK_SECRET_KEY")
    source = "FLOWLINK_SECRET_KEY"
    if not raw:
        path = Path(os.environ.get("FLOWLINK_HOME", ".flowlink")) / "secret.key"
        if not path.exists():
            return Check("secret key", WARN, f"no FLOWLINK_SECRET_KEY and no key file at {path}: one is created on first "
                                             "start; with several processes or hosts set FLOWLINK_SECRET_KEY for all of them")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            return Check("secret key", FAIL, f"{path} is readable by others (mode {mode:o}): chmod 600 it")
        raw, source = path.read_text().strip(), str(path)
    try:
        keys = [Fernet(k.strip().encode()) for k in raw.split(",") if k.strip()]
        MultiFernet(keys)
    except (ValueError, TypeError) as exc:
        return Check("secret key", FAIL, f"{source} is not a valid Fernet key list: {exc}")
    return Check("secret key", OK, f"{len(keys)} key(s) from {source}" + (" (the first encrypts, the others still decrypt)" if len(keys) > 1 else ""))


def check_database(engine: sa.Engine) -> Check:
    """The database answers, and which one it is."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # the reason is what the operator needs
        return Check("database", FAIL, f"cannot connect to {engine.url.render_as_string(hide_password=True)}: {exc.__class__.__name__}: {exc}")
    backend = engine.dialect.name
    if backend == "sqlite":
        return Check("database", OK, f"SQLite at {engine.url.database} (fine for one process; use PostgreSQL to scale out)")
    return Check("database", OK, f"{backend} at {engine.url.render_as_string(hide_password=True)}")


def check_migrations(engine: sa.Engine) -> Check:
    """The schema revision against the newest one this version ships."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:
        return Check("migrations", FAIL, f"cannot read the schema revision: {exc}")
    if current == head:
        return Check("migrations", OK, f"schema at the newest revision {head}")
    if current is None:
        return Check("migrations", WARN, f"empty database: `flowlink serve` or `flowlink worker` creates the schema (revision {head})")
    return Check("migrations", WARN, f"schema at {current}, this version ships {head}: the next start migrates it")


def check_prefect() -> Check:
    """The Prefect server tracked-lane runs report to."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return Check("prefect", WARN, "PREFECT_API_URL is not set: tracked-lane runs start a temporary local Prefect "
                                      "server; in production run `prefect server start` on PostgreSQL and point PREFECT_API_URL at it")
    try:
        answer = httpx.get(url.rstrip("/") + "/health", timeout=5)
    except httpx.HTTPError as exc:
        return Check("prefect", FAIL, f"cannot reach the Prefect server at {url}: {exc}")
    if answer.status_code != 200:
        return Check("prefect", FAIL, f"the Prefect server at {url} answered {answer.status_code} to /health")
    return Check("prefect", OK, f"Prefect server at {url} is healthy")


def check_inbox(engine: sa.Engine) -> Check:
    """Webhook events waiting, failed, or held by a process that stopped renewing its lease."""
    from engine.store.tables import webhook_events as events

    now = time.time()
    try:
        with engine.connect() as conn:
            counts = dict(conn.execute(sa.select(events.c.status, sa.func.count()).group_by(events.c.status)).all())
            stale = conn.execute(sa.select(sa.func.count()).where(events.c.status == "running", events.c.claimed_until < now - 60)).scalar()
            oldest = conn.execute(sa.select(sa.func.min(events.c.received_at)).where(events.c.status == "accepted")).scalar()
    except Exception as exc:
        return Check("inbox", FAIL, f"cannot read the webhook inbox: {exc}")
    waiting, dead = counts.get("accepted", 0), counts.get("dead", 0)
    detail = f"{waiting} waiting, {counts.get('running', 0)} running, {dead} failed (replayable)"
    if stale or (oldest is not None and now - oldest > 300):
        return Check("inbox", WARN, detail + f"; {stale} held by stopped processes, oldest waiting "
                                             f"{0 if oldest is None else round(now - oldest)} s: is a worker (or a dispatching API) running?")
    return Check("inbox", OK, detail)


def check_connectors() -> Check:
    """Every installed connector loads and its manifest is valid."""
    import logging

    from connectors.sdk.manifest import validate_manifest
    from connectors.sdk.registry import ConnectorRegistry

    failures: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            failures.append(record.getMessage())

    handler = _Collect(level=logging.ERROR)
    logger = logging.getLogger("flowlink.connectors")
    logger.addHandler(handler)
    try:
        registry = ConnectorRegistry.discover()
    finally:
        logger.removeHandler(handler)
    for name, connector in sorted(registry.connectors.items()):
        issues = validate_manifest(connector.manifest())
        if issues:
            failures.append(f"{name}: manifest {issues[0]}")
    if failures:
        return Check("connectors", FAIL, f"{len(registry.connectors)} loaded; problems: " + "; ".join(failures))
    return Check("connectors", OK, f"{len(registry.connectors)} loaded: {', '.join(sorted(registry.connectors))}")


def check_ui() -> Check:
    """The editor's built files that `flowlink serve` serves at /."""
    if UI_DIST.exists():
        return Check("ui", OK, f"built editor at {UI_DIST.parent}")
    return Check("ui", WARN, f"no built editor at {UI_DIST.parent}: run `make run` (or `npm ci && npm run build` in ui/)")


def run_checks(database_url: str | None = None) -> list[Check]:
    """Every check, in order; a database that cannot be reached skips the checks that need it."""
    checks: list[Check] = [check_secret_key()]
    url = make_url(normalize_url(database_url or default_database_url()))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and not Path(url.database).exists():
        checks.append(Check("database", WARN, f"no SQLite database at {url.database} yet: the first start creates it"))
    else:
        engine = make_engine(url.render_as_string(hide_password=False))
        try:
            database = check_database(engine)
            checks.append(database)
            if database.status == OK:
                migrations = check_migrations(engine)
                checks.append(migrations)
                if migrations.status == OK:
                    checks.append(check_inbox(engine))
        finally:
            engine.dispose()
    checks += [check_prefect(), check_connectors(), check_ui()]
    return checks
