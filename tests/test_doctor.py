"""`flowlink doctor`: findings per check, exit 1 on a failure, nothing changed."""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from engine.cli import main
from engine.runtime import FlowEngine
from engine.store.tables import webhook_events


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, str]]]:
    code = main(["doctor", "--json"])
    return code, {c["name"]: c for c in json.loads(capsys.readouterr().out)}


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path))
    monkeypatch.delenv("FLOWLINK_DATABASE_URL", raising=False)
    monkeypatch.delenv("FLOWLINK_SECRET_KEY", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return tmp_path


def test_fresh_home_warns_and_creates_nothing(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = doctor(capsys)
    assert code == 0
    assert checks["secret key"]["status"] == "warn" and checks["database"]["status"] == "warn"
    assert checks["prefect"]["status"] == "warn" and "PREFECT_API_URL" in checks["prefect"]["detail"]
    assert list(home.iterdir()) == []


def test_a_started_deployment_is_ok_and_a_stuck_inbox_is_reported(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = FlowEngine()  # creates the key file and migrates, as `flowlink serve` does
    engine.connection_store.put("c", "http", {"token": "t"})
    code, checks = doctor(capsys)
    assert code == 0
    assert {checks[n]["status"] for n in ("secret key", "database", "migrations", "inbox")} == {"ok"}
    old = time.time() - 3600
    with engine.db.begin() as conn:
        conn.execute(webhook_events.insert().values(id=str(uuid.uuid4()), flow_id="f", path="p", payload="{}", status="running",
                                                    attempts=1, received_at=old, updated_at=old, claimed_by="gone:1:x", claimed_until=old))
    engine.close()
    code, checks = doctor(capsys)
    assert checks["inbox"]["status"] == "warn" and "1 held by stopped processes" in checks["inbox"]["detail"]


def test_failures_exit_1(home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    FlowEngine().close()
    (home / "secret.key").chmod(0o644)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    code, checks = doctor(capsys)
    assert code == 1
    assert checks["secret key"]["status"] == "fail" and "chmod 600" in checks["secret key"]["detail"]
    assert checks["prefect"]["status"] == "fail" and "cannot reach" in checks["prefect"]["detail"]
    monkeypatch.setenv("FLOWLINK_SECRET_KEY", "not-a-key")
    assert doctor(capsys)[1]["secret key"]["status"] == "fail"
    monkeypatch.setenv("FLOWLINK_SECRET_KEY", f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}")
    assert "2 key(s)" in doctor(capsys)[1]["secret key"]["detail"]


@pytest.mark.postgres
def test_postgres_database_at_an_older_revision(postgres_url: str, home: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    FlowEngine(postgres_url).close()
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1) if postgres_url.startswith("postgresql://") else postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("update alembic_version set version_num='0002'"))
    engine.dispose()
    monkeypatch.setenv("FLOWLINK_DATABASE_URL", postgres_url)
    code, checks = doctor(capsys)
    assert checks["database"]["status"] == "ok" and "postgresql" in checks["database"]["detail"]
    assert checks["migrations"]["status"] == "warn" and "schema at 0002" in checks["migrations"]["detail"]
    assert os.environ["FLOWLINK_DATABASE_URL"] == postgres_url
