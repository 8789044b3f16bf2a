"""The API slice through HTTP: health, validate, flows with versions and conflicts, manual runs."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

FLOW = {"id": "api-demo", "name": "API demo", "trigger": {"type": "manual"},
        "steps": [{"id": "hello", "type": "set", "value": "hi {{ trigger.name }}"}]}


@pytest.fixture()
def client(api_client: TestClient) -> TestClient:
    """Logged in as the first admin (tests/conftest.py); roles and logins are in test_auth.py."""
    return api_client


def test_health_ready_and_openapi(client: TestClient) -> None:
    assert client.get("/api/health").json() == {"status": "ok"}
    assert client.get("/api/ready").json()["database"] == "sqlite"
    assert "/api/flows" in client.get("/api/openapi.json").json()["paths"]


def test_examples_are_loaded(client: TestClient) -> None:
    ids = {f["id"] for f in client.get("/api/flows").json()}
    assert {"lead-intake", "customer-tiers"} <= ids


def test_validate_reports_pointers(client: TestClient) -> None:
    bad = {**FLOW, "steps": [{"id": "x", "type": "set", "value": {"$expr": "a.["}, "next": "nowhere"}]}
    body = client.post("/api/flows/validate", json=bad).json()
    assert body["ok"] is False
    assert {(i["pointer"]) for i in body["issues"]} == {"/steps/0/value/$expr", "/steps/0/next"}
    assert client.post("/api/flows/validate", json=FLOW).json() == {"ok": True, "issues": []}


def test_create_update_conflict_and_versions(client: TestClient) -> None:
    created = client.post("/api/flows", json={"definition": FLOW, "message": "first"})
    assert created.status_code == 201 and created.json()["version"] == 1
    assert client.post("/api/flows", json={"definition": FLOW}).status_code == 409
    changed = {**FLOW, "name": "API demo 2"}
    assert client.put("/api/flows/api-demo", json={"definition": changed}).status_code == 428
    ok = client.put("/api/flows/api-demo", json={"definition": changed, "expected_version": 1, "message": "rename"})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = client.put("/api/flows/api-demo", json={"definition": FLOW, "expected_version": 1})
    assert stale.status_code == 409
    assert stale.json()["error"] == {"type": "VersionConflict", "message": stale.json()["error"]["message"], "current_version": 2}
    assert [v["version"] for v in client.get("/api/flows/api-demo/versions").json()] == [2, 1]
    assert client.get("/api/flows/api-demo", params={"version": 1}).json()["definition"]["name"] == "API demo"
    invalid = client.put("/api/flows/api-demo", json={"definition": {**FLOW, "steps": []}, "expected_version": 2})
    assert invalid.status_code == 422 and invalid.json()["error"]["issues"][0]["pointer"] == "/steps"


def test_manual_run_and_history(client: TestClient) -> None:
    client.post("/api/flows", json={"definition": FLOW})
    run = client.post("/api/flows/api-demo/runs", params={"wait": 10}, json={"name": "Zhou"}).json()
    assert run["status"] == "succeeded" and run["output"] == "hi Zhou"
    detail = client.get(f"/api/runs/{run['id']}").json()
    assert detail["steps"][0]["output"] == "hi Zhou"
    assert [r["id"] for r in client.get("/api/runs", params={"flow_id": "api-demo"}).json()] == [run["id"]]
    assert client.get("/api/runs/nope").status_code == 404
    assert client.get("/api/runs", params={"status": "weird"}).status_code == 422
    assert client.post("/api/flows/missing/runs", json={}).status_code == 404


def test_the_service_runs_schedules_of_active_flows(client: TestClient) -> None:
    """`flowlink serve`'s app starts the scheduler: an activated schedule flow runs on its own."""
    import time

    flow = {"id": "every-second", "name": "every second", "execution": {"lane": "event"},
            "trigger": {"type": "schedule", "cron": "* * * * * *", "timezone": "Asia/Shanghai"},
            "steps": [{"id": "tick", "type": "set", "value": "tick"}]}
    assert client.post("/api/flows", json={"definition": flow}).status_code == 201
    assert client.get("/api/runs", params={"flow_id": "every-second"}).json() == []  # not active yet
    assert client.post("/api/flows/every-second/activate").status_code == 200
    deadline = time.time() + 8
    runs: list = []
    while time.time() < deadline and len(runs) < 2:
        time.sleep(0.25)
        runs = client.get("/api/runs", params={"flow_id": "every-second"}).json()
    assert len(runs) >= 2 and all(r["status"] == "succeeded" for r in runs)
    assert client.post("/api/flows/every-second/deactivate").status_code == 200
