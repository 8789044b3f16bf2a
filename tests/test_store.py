"""Persistence on SQLite and PostgreSQL: migrations, versions, run history, blobs, audit, secrets."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from engine.credentials import ConnectionStore, KeyringError, load_keyring
from engine.interpreter import Interpreter
from engine.records import dumps
from engine.runtime import FlowEngine
from engine.store import audit
from engine.store.db import make_engine, migrate
from engine.store.flows import FlowStore, VersionConflict
from engine.store.recorder import SqlRecorder
from engine.store.runs import RunStore
from engine.store.tables import BLOB_THRESHOLD
from engine.validation import load_flow

FLOW = {
    "id": "store-demo",
    "name": "store demo",
    "trigger": {"type": "manual"},
    "steps": [
        {"id": "a", "type": "set", "value": {"$expr": "trigger"}},
        {"id": "b", "type": "set", "value": {"$expr": "trigger"}},
        {"id": "c", "type": "fail", "error": "Stop", "message": "stopped after {{ length(steps.a.output.blob) }} chars"},
    ],
}


@pytest.fixture()
def db(database_url: str):
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)  # idempotent
    yield engine
    engine.dispose()


def test_flow_versions_are_immutable_and_conflicts_detected(db) -> None:
    store = FlowStore(db)
    v1 = store.save(FLOW, "alice", "first")
    v2 = store.save({**FLOW, "name": "renamed"}, "bob", "rename", expected_version=1)
    assert (v1.version, v2.version) == (1, 2)
    with pytest.raises(VersionConflict) as conflict:
        store.save({**FLOW, "name": "stale"}, "carol", "stale edit", expected_version=1)
    assert conflict.value.current == 2
    assert store.get("store-demo").definition["name"] == "renamed"
    assert store.get("store-demo", 1).definition["name"] == "store demo"
    assert [v["version"] for v in store.versions("store-demo")] == [2, 1]
    entries = audit.entries(db, target_id="store-demo")
    assert [(e["action"], e["actor"]) for e in entries] == [("flow.update", "bob"), ("flow.create", "alice")]
    assert entries[0]["before"]["name"] == "store demo" and entries[0]["after"]["name"] == "renamed"


def test_audit_log_is_append_only(db) -> None:
    with db.begin() as conn:
        audit.record(conn, "alice", "test.action", "thing", "1", after={"password": "hunter2", "x": 1})
    row = audit.entries(db, actor="alice")[0]
    assert row["after"] == {"password": "***", "x": 1}
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with db.begin() as conn:
                conn.execute(sa.text(statement))


async def test_run_history_with_large_payload_stored_once(db) -> None:
    recorder = SqlRecorder(db)
    flow = load_flow(FLOW).flow
    big = {"blob": "x" * (BLOB_THRESHOLD * 3)}
    run = await Interpreter(recorder).execute(flow, big)
    recorder.flush()
    recorder.close()
    stored = RunStore(db).get(run.id)
    assert stored.status == "failed"
    assert stored.error["type"] == "Stop" and stored.error["step"] == "c"
    assert stored.error["message"] == f"stopped after {BLOB_THRESHOLD * 3} chars"
    assert [(s.step_id, s.status) for s in stored.steps] == [("a", "succeeded"), ("b", "succeeded"), ("c", "failed")]
    assert stored.steps[0].output_json == dumps(big)
    with db.connect() as conn:
        # trigger + two identical step outputs: one blob
        assert conn.execute(sa.text("select count(*) from blobs")).scalar() == 1
        inline = conn.execute(sa.text("select count(*) from step_runs where output_json is not null and length(output_json) > :n"),
                              {"n": BLOB_THRESHOLD}).scalar()
        assert inline == 0
    listed = RunStore(db).list(flow_id="store-demo", status="failed")
    assert [r.id for r in listed] == [run.id]


async def test_many_runs_are_batched(db) -> None:
    recorder = SqlRecorder(db, linger=0.05)
    flow = load_flow({**FLOW, "steps": FLOW["steps"][:2]}).flow
    interpreter = Interpreter(recorder)
    for i in range(300):
        await interpreter.execute(flow, {"i": i})
    recorder.flush()
    assert recorder.batches_written < 300
    with db.connect() as conn:
        assert conn.execute(sa.text("select count(*) from runs where status = 'succeeded'")).scalar() == 300
        assert conn.execute(sa.text("select count(*) from step_runs")).scalar() == 600
    recorder.close()


def test_connection_secrets_are_encrypted_and_rotatable(db, monkeypatch) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("FLOWLINK_SECRET_KEY", old_key)
    ConnectionStore(db).put("crm", "http", {"auth": "bearer", "token": "s3cr3t-token-value"})
    with db.connect() as conn:
        raw = conn.execute(sa.text("select secret, public from connections")).one()
    assert b"s3cr3t-token-value" not in bytes(raw[0]) and "s3cr3t" not in raw[1]
    monkeypatch.setenv("FLOWLINK_SECRET_KEY", f"{new_key},{old_key}")
    store = ConnectionStore(db)
    assert store.fields("crm")["token"] == "s3cr3t-token-value"
    assert store.rotate() == 1
    monkeypatch.setenv("FLOWLINK_SECRET_KEY", new_key)
    assert ConnectionStore(db).fields("crm")["token"] == "s3cr3t-token-value"
    monkeypatch.setenv("FLOWLINK_SECRET_KEY", old_key)
    with pytest.raises(KeyringError):
        ConnectionStore(db).fields("crm")
    assert store.list()[0]["public"] == {"fields": ["auth", "token"]}
    assert "s3cr3t" not in str(audit.entries(db, target_type="connection"))


def test_generated_key_file_is_private(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("FLOWLINK_SECRET_KEY", raising=False)
    monkeypatch.setenv("FLOWLINK_HOME", str(tmp_path))
    load_keyring()
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


async def test_engine_end_to_end(database_url: str, http) -> None:
    engine = FlowEngine(database_url)
    try:
        flow = engine.compile({"id": "e2e", "name": "e2e", "trigger": {"type": "manual"}, "steps": [
            {"id": "call", "type": "action", "action": "http.request", "connection": "echo-auth",
             "args": {"url": f"{http.base_url}/echo", "method": "POST", "json": {"n": {"$expr": "trigger.n"}}}}]},
            check_connections=False)
        engine.connection_store.put("echo-auth", "http", {"auth": "bearer", "token": "tok-123"})
        run = await engine.run(flow, {"n": 7})
        assert run.status == "succeeded", run.error
        assert run.output["body"]["body"] == {"n": 7}
        assert run.output["body"]["headers"]["authorization"] == "Bearer tok-123"
        engine.flush()
        stored = engine.runs.get(run.id)
        assert stored.steps[0].to_dict()["input"] == {"url": f"{http.base_url}/echo", "method": "POST", "json": {"n": 7}}
    finally:
        engine.close()


def test_records_written_by_the_loop_timer_and_across_event_loops(tmp_path) -> None:
    """SQLite mode writes on the event loop after `linger`, also when a later asyncio.run uses a new loop."""
    import asyncio

    db = make_engine(f"sqlite:///{tmp_path / 'loops.db'}")
    migrate(db)
    recorder = SqlRecorder(db, linger=0.01)
    assert recorder.mode == "loop"
    flow = load_flow({**FLOW, "steps": FLOW["steps"][:1]}).flow

    def count() -> int:
        with db.connect() as conn:
            return conn.execute(sa.text("select count(*) from runs")).scalar()

    async def one_run_then_idle() -> None:
        await Interpreter(recorder).execute(flow, {"blob": "x"})
        await asyncio.sleep(0.1)  # the timer fires while the loop idles: no flush() call

    for expected in (1, 2):
        asyncio.run(one_run_then_idle())
        assert count() == expected
    recorder.close()


def test_postgres_uses_the_writer_thread(postgres_url: str) -> None:
    db = make_engine(postgres_url)
    migrate(db)
    recorder = SqlRecorder(db)
    assert recorder.mode == "thread"
    recorder.close()
