"""The data-tables API (api/routers/tables.py) through the real app: definitions, rows,
filters, errors naming the column, roles, audit, and the shipped tables of flows/tables."""
from __future__ import annotations

import json
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from engine.store import audit
from tests.conftest import bearer, login

LEADS = {
    "name": "leads", "title": {"en": "Leads", "zh": "线索"}, "key": "mobile", "required": ["name"],
    "columns": {"mobile": {"type": "string", "pattern": "^[0-9]{11}$"}, "name": {"type": "string"},
                "score": {"type": "integer", "minimum": 0}, "tags": {"type": "array", "items": {"type": "string"}}},
}


@pytest.fixture()
def client(database_url: str, admin_password: str) -> Iterator[TestClient]:
    """The app with the example flows and tables on SQLite and PostgreSQL, logged in as the first admin."""
    with TestClient(create_app(database_url, load_examples=True)) as test_client:
        test_client.headers.update(bearer(login(test_client)))
        yield test_client


def test_tables_and_rows_round_trip(client: TestClient) -> None:
    names = {t["name"] for t in client.get("/api/tables").json()}
    assert {"customers", "sales_reps", "counters"} <= names  # flows/tables, loaded with the examples
    assert client.post("/api/tables", json=LEADS).status_code == 201
    assert client.post("/api/tables", json=LEADS).status_code == 409

    rows = [{"mobile": f"1380000000{i}", "name": f"Lead {i}", "score": i * 10, "tags": ["hot"] if i % 2 else []} for i in range(6)]
    for row in rows:
        answer = client.post("/api/tables/leads/rows", json=row)
        assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["name"] == "Lead 5" and isinstance(created["_id"], int)

    page = client.get("/api/tables/leads/rows", params={"where": json.dumps({"score": {"gte": 20}, "tags": {"contains": "hot"}}),
                                                        "sort": json.dumps([{"column": "score", "desc": True}]), "limit": 1})
    assert page.status_code == 200 and page.headers["X-Total-Count"] == "2"
    assert [r["name"] for r in page.json()["rows"]] == ["Lead 5"] and page.json()["total"] == 2

    row_url = f"/api/tables/leads/rows/{created['_id']}"
    assert client.get(row_url).json()["score"] == 50
    patched = client.patch(row_url, json={"score": 55, "tags": None})
    assert patched.status_code == 200 and patched.json()["score"] == 55 and patched.json()["tags"] is None
    upserted = client.post("/api/tables/leads/rows", params={"upsert": "true"}, json={"mobile": "13800000005", "name": "Renamed"})
    assert upserted.status_code == 200 and upserted.json()["_id"] == created["_id"] and upserted.json()["score"] == 55
    fresh = client.post("/api/tables/leads/rows", params={"upsert": "true"}, json={"mobile": "13900000000", "name": "New"})
    assert fresh.status_code == 201
    assert client.delete(row_url).status_code == 204
    assert client.get(row_url).status_code == 404

    added = client.patch("/api/tables/leads", json={"columns": {"city": {"type": "string"}}})
    assert added.status_code == 200 and "city" in added.json()["columns"]
    assert client.get("/api/tables/leads").json()["rows"] == 6
    assert client.delete("/api/tables/leads").status_code == 204
    assert client.get("/api/tables/leads").status_code == 404
    assert client.get("/api/tables/leads/rows").status_code == 404


def test_errors_are_json_and_name_the_column(api_client: TestClient) -> None:
    assert api_client.post("/api/tables", json=LEADS).status_code == 201
    bad = api_client.post("/api/tables/leads/rows", json={"mobile": "12", "score": -1, "colour": "red"})
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["type"] == "InvalidInput"
    assert {i["pointer"] for i in error["issues"]} == {"/mobile", "/score", "/colour", "/name"}
    assert "column 'score': -1 is less than the minimum of 0" in error["message"]
    duplicate = api_client.post("/api/tables/leads/rows", json={"mobile": "13800000000", "name": "A"})
    assert duplicate.status_code == 201
    again = api_client.post("/api/tables/leads/rows", json={"mobile": "13800000000", "name": "B"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_key"
    where = api_client.get("/api/tables/leads/rows", params={"where": json.dumps({"score": {"gte": "high"}})})
    assert where.status_code == 422 and "where.score.gte: expected an integer, got string" in where.json()["error"]["message"]
    assert api_client.get("/api/tables/leads/rows", params={"where": "{not json"}).status_code == 422
    unknown = api_client.get("/api/tables/leads/rows", params={"sort": json.dumps([{"column": "height"}])})
    assert unknown.status_code == 422 and unknown.json()["error"]["issues"][0]["pointer"] == "/height"
    assert api_client.post("/api/tables", json={"name": "bad", "columns": {"x": {"type": "date"}}}).status_code == 422
    assert api_client.post("/api/tables/nope/rows", json={"a": 1}).status_code == 404
    assert api_client.get("/api/tables/leads/rows", params={"limit": 5000}).status_code == 422


def test_viewers_read_editors_write_and_writes_are_audited(api_client: TestClient) -> None:
    for username, role in (("vera", "viewer"), ("ed", "editor")):
        made = api_client.post("/api/users", json={"username": username, "role": role, "password": f"{username}-password-1"})
        assert made.status_code == 201, made.text
    viewer = bearer(login(api_client, "vera", "vera-password-1"))
    editor = bearer(login(api_client, "ed", "ed-password-1"))
    assert api_client.get("/api/tables/customers/rows", headers=viewer).status_code == 200
    assert api_client.post("/api/tables/customers/rows", json={"external_userid": "wm1", "name": "Li"}, headers=viewer).status_code == 403
    assert api_client.post("/api/tables", json=LEADS, headers=viewer).status_code == 403
    row = api_client.post("/api/tables/customers/rows", json={"external_userid": "wm1", "name": "Li"}, headers=editor).json()
    assert api_client.patch(f"/api/tables/customers/rows/{row['_id']}", json={"spend": 100}, headers=editor).status_code == 200
    assert api_client.delete(f"/api/tables/customers/rows/{row['_id']}", headers=viewer).status_code == 403
    engine = api_client.app.state.flowlink.engine.db
    entries = audit.entries(engine, target_type="table_row", target_id=f"customers/{row['_id']}")
    assert [(e["action"], e["actor"]) for e in entries] == [("table.row_update", "ed"), ("table.row_insert", "ed")]
    assert entries[0]["before"]["spend"] is None and entries[0]["after"]["spend"] == 100
    assert api_client.post("/api/tables", json=LEADS, headers=editor).status_code == 201
    assert audit.entries(engine, target_type="table", target_id="leads")[0]["actor"] == "ed"


def test_editor_dropdowns_list_tables_and_columns(api_client: TestClient) -> None:
    tables = api_client.post("/api/connectors/tables/options", json={"action": "query", "field": "table"})
    assert tables.status_code == 200, tables.text
    assert {"value": "customers", "label": "Customers"} in tables.json()
    columns = api_client.post("/api/connectors/tables/options",
                              json={"action": "increment", "field": "column", "args": {"table": "counters"}})
    assert columns.status_code == 200, columns.text
    assert columns.json() == [{"value": "name", "label": "Name"}, {"value": "value", "label": "Value"}]
