"""Right to erasure through `POST /api/erasures` (admin only) and `flowlink erase`: run history,
webhook events and data-table rows of one subject go, other customers' data stays, the audit
log names the subject only by its hash; a dry run changes nothing."""
from __future__ import annotations

import hashlib
import time
from typing import Any, Iterator

import orjson
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from api.main import create_app
from engine.cli import main as cli_main
from engine.store import audit
from engine.store.datatables import DataTables
from engine.store.retention import subject_hash
from engine.store.tables import runs, webhook_events
from tests.conftest import bearer, login

MOBILE = "13800001111"
OTHER = "13900002222"
FLOW = {"id": "signup", "name": "signup", "trigger": {"type": "manual"},
        "steps": [{"id": "profile", "type": "set", "value": {"mobile": {"$expr": "trigger.mobile"}}}]}
LEADS = {"name": "leads", "key": "mobile", "columns": {
    "mobile": {"type": "string"}, "note": {"type": "string"}, "profile": {"type": "object"}}}
ORDERS = {"name": "orders", "columns": {"phone": {"type": "integer"}, "item": {"type": "string"}}}


@pytest.fixture()
def client(database_url: str, admin_password: str) -> Iterator[TestClient]:
    """The app on SQLite and PostgreSQL, logged in as the first admin."""
    with TestClient(create_app(database_url)) as test_client:
        test_client.headers.update(bearer(login(test_client)))
        yield test_client


def db(client: TestClient) -> sa.Engine:
    return client.app.state.flowlink.engine.db


def seed(client: TestClient) -> dict[str, Any]:
    """Runs, webhook events and table rows of MOBILE and of OTHER; returns the ids to check."""
    assert client.post("/api/flows", json={"definition": FLOW}).status_code == 201
    made = {who: client.post("/api/flows/signup/runs", params={"wait": 10}, json={"mobile": who}).json() for who in (MOBILE, OTHER)}
    assert {run["status"] for run in made.values()} == {"succeeded"}
    now = time.time()
    with db(client).begin() as conn:
        for who in (MOBILE, OTHER):
            conn.execute(webhook_events.insert().values(id=f"ev-{who}", flow_id="signup", path="p", status="done", attempts=1,
                                                        payload=orjson.dumps({"body": {"mobile": who}}).decode(),
                                                        received_at=now, updated_at=now))
    for table in (LEADS, ORDERS):
        assert client.post("/api/tables", json=table).status_code == 201
    rows = {
        "subject": {"mobile": MOBILE, "note": "vip"},
        "other": {"mobile": OTHER, "note": "vip"},
        "nested": {"mobile": "13700003333", "profile": {"mobile": MOBILE}},  # not a top-level field: stays
        "substring": {"mobile": "13700004444", "note": f"called {MOBILE} twice"},  # not equal: stays
        "renamed": {"mobile": "13700005555", "note": MOBILE},  # changed below: only its history holds the subject
    }
    ids = {name: client.post("/api/tables/leads/rows", json=row).json()["_id"] for name, row in rows.items()}
    assert client.patch(f"/api/tables/leads/rows/{ids['renamed']}", json={"note": "moved"}).status_code == 200
    for phone in (int(MOBILE), int(MOBILE), int(OTHER)):  # a number equals the subject by its text form
        assert client.post("/api/tables/orders/rows", json={"phone": phone, "item": "tea"}).status_code == 201
    return {"runs": {who: run["id"] for who, run in made.items()}, "rows": ids}


def run_trigger(client: TestClient, run_id: str) -> str:
    with db(client).connect() as conn:
        return conn.execute(sa.select(runs.c.trigger_json).where(runs.c.id == run_id)).scalar_one()


def event_payloads(client: TestClient) -> dict[str, str]:
    with db(client).connect() as conn:
        return dict(conn.execute(sa.select(webhook_events.c.id, webhook_events.c.payload)).all())


def leads(client: TestClient) -> set[str]:
    return {row["mobile"] for row in client.get("/api/tables/leads/rows").json()["rows"]}


def test_admin_erases_a_subject_and_a_dry_run_only_counts(client: TestClient) -> None:
    seeded = seed(client)
    preview = client.post("/api/erasures", json={"subject": MOBILE, "dry_run": True})
    assert preview.status_code == 200, preview.text
    counted = preview.json()
    assert counted["dry_run"] is True and counted["runs"] == 1 and counted["events"] == 1
    assert counted["table_rows"] == {"leads": 1, "orders": 2} and counted["table_rows_total"] == 3
    assert counted["table_changes"] == 4  # the inserts of the 3 erased rows + the renamed row's insert
    # the dry run changed and recorded nothing
    assert MOBILE in run_trigger(client, seeded["runs"][MOBILE])
    assert MOBILE in event_payloads(client)[f"ev-{MOBILE}"] and MOBILE in leads(client)
    assert client.get("/api/tables/orders").json()["rows"] == 3
    assert audit.entries(db(client), action="subject.erase") == []

    done = client.post("/api/erasures", json={"subject": MOBILE})
    assert done.status_code == 200, done.text
    erased = done.json()
    assert {k: v for k, v in erased.items() if k != "dry_run"} == {k: v for k, v in counted.items() if k != "dry_run"}
    assert erased["dry_run"] is False and erased["steps"] >= 1
    assert MOBILE not in run_trigger(client, seeded["runs"][MOBILE])
    assert MOBILE not in str(client.get(f"/api/runs/{seeded['runs'][MOBILE]}").json())
    assert OTHER in run_trigger(client, seeded["runs"][OTHER])
    events = event_payloads(client)
    assert MOBILE not in events[f"ev-{MOBILE}"] and OTHER in events[f"ev-{OTHER}"]
    assert leads(client) == {OTHER, "13700003333", "13700004444", "13700005555"}
    assert [r["phone"] for r in client.get("/api/tables/orders/rows").json()["rows"]] == [int(OTHER)]
    history = DataTables(db(client)).changes("leads", since=0) + DataTables(db(client)).changes("orders", since=0)
    kept = {seeded["rows"]["nested"], seeded["rows"]["substring"]}  # the subject is inside them, not a field's value
    assert MOBILE not in str([c for c in history if c["_id"] not in kept])
    assert [c["_event"] for c in history if c["_id"] == seeded["rows"]["renamed"]] == ["updated"]
    assert all(c["_event"] != "deleted" for c in history)  # no change event carrying the erased row

    (entry,) = audit.entries(db(client), action="subject.erase")
    assert entry["actor"] == "admin" and entry["target_id"] == erased["subject_hash"]
    assert MOBILE not in str(entry)
    assert entry["details"]["table_rows"] == {"leads": 1, "orders": 2} and entry["details"]["complete"] is True
    again = client.post("/api/erasures", json={"subject": MOBILE}).json()
    assert (again["runs"], again["events"], again["table_rows_total"], again["table_changes"]) == (0, 0, 0, 0)


def test_tables_false_keeps_table_rows(api_client: TestClient) -> None:
    seed(api_client)
    answer = api_client.post("/api/erasures", json={"subject": MOBILE, "tables": False})
    assert answer.status_code == 200 and answer.json()["runs"] == 1
    assert answer.json()["table_rows"] == {} and MOBILE in leads(api_client)


def test_only_admins_and_bad_bodies_are_json_errors(api_client: TestClient) -> None:
    made = api_client.post("/api/users", json={"username": "ed", "role": "editor", "password": "ed-password-1"})
    assert made.status_code == 201
    editor = bearer(login(api_client, "ed", "ed-password-1"))
    forbidden = api_client.post("/api/erasures", json={"subject": MOBILE}, headers=editor)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["type"] == "Forbidden"
    assert api_client.post("/api/erasures", json={"subject": MOBILE}, headers={"Authorization": "Bearer nope"}).status_code == 401
    for body in ({}, {"subject": ""}, {"subject": "13"}, {"subject": "   "}, {"subject": 13800001111},
                 {"subject": MOBILE, "dry_run": "maybe"}, {"subject": MOBILE, "everything": True}):
        answer = api_client.post("/api/erasures", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert set(answer.json()["error"]) >= {"type", "message"}
    blank = api_client.post("/api/erasures", json={"subject": "    "}).json()["error"]
    assert blank["type"] == "InvalidInput" and blank["issues"][0]["pointer"] == "/body/subject"
    assert audit.entries(api_client.app.state.flowlink.engine.db, action="subject.erase") == []


def test_cli_dry_run_and_no_tables(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLOWLINK_DATABASE_URL", sqlite_url)
    assert cli_main(["erase", "ab"]) == 2  # too short: usage error
    assert cli_main(["erase", MOBILE, "--dry-run"]) == 0
    assert orjson.loads(capsys.readouterr().out)["dry_run"] is True
    from engine.store.db import make_engine

    engine = make_engine(sqlite_url)
    store = DataTables(engine)
    store.create_table("leads", LEADS["columns"], key="mobile")
    store.insert("leads", {"mobile": MOBILE})
    store.insert("leads", {"mobile": OTHER})
    assert cli_main(["erase", MOBILE, "--dry-run"]) == 0
    assert orjson.loads(capsys.readouterr().out)["table_rows"] == {"leads": 1}
    assert cli_main(["erase", MOBILE, "--no-tables"]) == 0
    assert orjson.loads(capsys.readouterr().out)["table_rows"] == {}
    assert store.query("leads")["total"] == 2
    assert cli_main(["erase", MOBILE]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["table_rows"] == {"leads": 1} and [r["mobile"] for r in store.query("leads")["rows"]] == [OTHER]
    entries = audit.entries(engine, action="subject.erase")
    assert len(entries) == 2 and entries[0]["actor"].startswith("cli:") and MOBILE not in str(entries)
    engine.dispose()


def test_the_audited_subject_hash_is_keyed_by_the_instance_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A phone number's plain hash can be reversed by hashing every phone number; the audit log's
    hash needs the instance's secret key (and stays the same for the same key)."""
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("FLOWLINK_SECRET_KEY", first)
    keyed = subject_hash("13800001111")
    assert keyed == subject_hash("13800001111") and len(keyed) == 16
    assert keyed != hashlib.sha256(b"13800001111").hexdigest()[:16]
    assert subject_hash("13800001112") != keyed
    monkeypatch.setenv("FLOWLINK_SECRET_KEY", f"{first},{second}")  # rotation in progress: the first key counts
    assert subject_hash("13800001111") == keyed
    monkeypatch.setenv("FLOWLINK_SECRET_KEY", second)
    assert subject_hash("13800001111") != keyed
