"""Flow history and recovery through HTTP: list filters, diff, rollback, soft delete, export/import,
cancel and retry of runs (single and bulk), and the editor's single-step test."""
from __future__ import annotations

import time
import uuid

from fastapi.testclient import TestClient

from tests.conftest import bearer, login
from tests.fake_http import FakeHttp
from tests.test_auth import make_user

FLOW = {"id": "hist-demo", "name": "History demo", "tags": ["crm", "daily"], "trigger": {"type": "manual"},
        "steps": [{"id": "hello", "type": "set", "value": "hi {{ trigger.name }}"}]}


def audit_actions(client: TestClient, action: str) -> list[dict]:
    return client.get("/api/audit", params={"action": action}).json()


def wait_run(client: TestClient, run_id: str, timeout: float = 10) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = client.get(f"/api/runs/{run_id}").json()
        if run["status"] != "running":
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still running")


def test_list_filters_and_paging(api_client: TestClient) -> None:
    client = api_client
    client.post("/api/flows", json={"definition": FLOW})
    client.post("/api/flows", json={"definition": {**FLOW, "id": "hist-other", "name": "Other thing", "tags": ["crm"]}})
    client.post("/api/flows/hist-other/activate")
    everything = client.get("/api/flows")
    assert int(everything.headers["X-Total-Count"]) == len(everything.json()) >= 4  # the examples too
    assert [f["id"] for f in client.get("/api/flows", params={"q": "HISTORY"}).json()] == ["hist-demo"]
    assert [f["id"] for f in client.get("/api/flows", params={"q": "hist-"}).json()] == ["hist-demo", "hist-other"]
    assert [f["id"] for f in client.get("/api/flows", params={"q": "hist", "active": True}).json()] == ["hist-other"]
    assert [f["id"] for f in client.get("/api/flows", params={"tag": "daily"}).json()] == ["hist-demo"]
    assert {f["id"] for f in client.get("/api/flows", params={"tag": "crm", "q": "hist"}).json()} == {"hist-demo", "hist-other"}
    page = client.get("/api/flows", params={"limit": 2, "offset": 1})
    assert [f["id"] for f in page.json()] == [f["id"] for f in everything.json()][1:3]
    assert page.headers["X-Total-Count"] == everything.headers["X-Total-Count"]
    assert client.get("/api/flows", params={"limit": 0}).status_code == 422


def test_diff_rollback_and_versions(api_client: TestClient) -> None:
    client = api_client
    client.post("/api/flows", json={"definition": FLOW})
    v2 = {**FLOW, "name": "History demo 2"}
    client.put("/api/flows/hist-demo", json={"definition": v2, "expected_version": 1})
    v3 = {**v2, "steps": [{"id": "hello", "type": "set", "value": "hello {{ trigger.name }}"}], "tags": ["crm"]}
    client.put("/api/flows/hist-demo", json={"definition": v3, "expected_version": 2})

    diff = client.get("/api/flows/hist-demo/diff", params={"from": 1, "to": 3}).json()
    assert diff["from"] == 1 and diff["to"] == 3
    assert sorted((op["op"], op["path"]) for op in diff["patch"]) == [
        ("remove", "/tags/1"), ("replace", "/name"), ("replace", "/steps/0/value")]
    assert '-  "name": "History demo",' in diff["text"] and '+  "name": "History demo 2",' in diff["text"]
    assert diff["text"].startswith("--- hist-demo@1\n+++ hist-demo@3\n")
    assert client.get("/api/flows/hist-demo/diff", params={"from": 2}).json()["to"] == 3  # default: current
    assert client.get("/api/flows/hist-demo/diff", params={"from": 1, "to": 9}).status_code == 404
    assert client.get("/api/flows/hist-demo/diff").status_code == 422

    stale = client.post("/api/flows/hist-demo/rollback", json={"to_version": 1, "expected_version": 2})
    assert stale.status_code == 409 and stale.json()["error"]["current_version"] == 3
    back = client.post("/api/flows/hist-demo/rollback", json={"to_version": 1, "expected_version": 3, "message": "undo"})
    assert back.status_code == 200 and back.json()["version"] == 4
    assert client.get("/api/flows/hist-demo/diff", params={"from": 1, "to": 4}).json()["patch"] == []
    assert [(v["version"], v["message"]) for v in client.get("/api/flows/hist-demo/versions").json()][:2] == [(4, "undo"), (3, "")]
    assert client.post("/api/flows/hist-demo/rollback", json={"to_version": 42, "expected_version": 4}).status_code == 404
    entry = audit_actions(client, "flow.rollback")[0]
    assert entry["actor"] == "admin" and entry["details"] == {"to_version": 1, "from_version": 3, "version": 4}


def test_soft_delete_hides_the_flow_and_keeps_runs(api_client: TestClient) -> None:
    client = api_client
    client.post("/api/flows", json={"definition": FLOW})
    client.post("/api/flows/hist-demo/activate")
    run = client.post("/api/flows/hist-demo/runs", params={"wait": 10}, json={"name": "Ada"}).json()
    deleted = client.delete("/api/flows/hist-demo")
    assert deleted.status_code == 200 and deleted.json()["active"] is False and deleted.json()["deleted_at"] > 0
    assert client.get("/api/flows/hist-demo").status_code == 404
    assert "hist-demo" not in {f["id"] for f in client.get("/api/flows").json()}
    assert client.post("/api/flows/hist-demo/runs", json={}).status_code == 404
    assert client.delete("/api/flows/hist-demo").status_code == 404
    assert client.get(f"/api/runs/{run['id']}").json()["status"] == "succeeded"  # history is kept
    assert [r["id"] for r in client.get("/api/runs", params={"flow_id": "hist-demo"}).json()] == [run["id"]]
    entry = audit_actions(client, "flow.delete")[0]
    assert entry["actor"] == "admin" and entry["target_id"] == "hist-demo" and entry["before"]["active"] is True


def test_export_and_import(api_client: TestClient) -> None:
    client = api_client
    client.post("/api/flows", json={"definition": FLOW})
    exported = client.get("/api/flows/hist-demo/export")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/json"
    assert exported.headers["content-disposition"] == 'attachment; filename="hist-demo.v1.json"'
    definition = exported.json()
    assert definition == FLOW  # the store's version stamp is left out

    copy = {**definition, "id": "hist-copy"}
    created = client.post("/api/flows/import", json=copy)
    assert created.status_code == 201 and created.json()["created"] is True and created.json()["version"] == 1
    assert client.post("/api/flows/import", json=copy).status_code == 409  # exists, no expected_version
    changed = {**copy, "name": "Copy 2"}
    updated = client.post("/api/flows/import", json={"definition": changed, "expected_version": 1, "message": "sync"})
    assert updated.status_code == 200 and updated.json()["version"] == 2 and updated.json()["created"] is False
    assert client.post("/api/flows/import", params={"expected_version": 1}, json=changed).status_code == 409
    assert client.post("/api/flows/import", params={"expected_version": 1}, json={**copy, "id": "nowhere"}).status_code == 404
    invalid = client.post("/api/flows/import", json={**copy, "id": "hist-bad", "steps": []})
    assert invalid.status_code == 422 and invalid.json()["error"]["type"] == "FlowInvalid"
    assert client.post("/api/flows/import", json=[1, 2]).status_code == 422
    assert client.get("/api/flows/hist-bad").status_code == 404
    assert [(e["target_id"], e["details"]["created"]) for e in audit_actions(client, "flow.import")] == [
        ("hist-copy", False), ("hist-copy", True)]


def _http(sid: str, url: str, **extra) -> dict:
    return {"id": sid, "type": "action", "action": "http.request", "args": {"url": url}, "retry": [], **extra}


def test_cancel_a_running_run(api_client: TestClient, http: FakeHttp) -> None:
    client = api_client
    slow = {"id": "hist-slow", "name": "Slow", "trigger": {"type": "manual"},
            "steps": [_http("nap", f"{http.base_url}/slow?seconds=5")]}
    client.post("/api/flows", json={"definition": slow})
    run = client.post("/api/flows/hist-slow/runs", json={}).json()
    deadline = time.time() + 5
    while not http.hits["slow"] and time.time() < deadline:
        time.sleep(0.02)
    cancelled = client.post(f"/api/runs/{run['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get(f"/api/runs/{run['id']}").json()["error"]["type"] == "Cancelled"
    again = client.post(f"/api/runs/{run['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["type"] == "Conflict"
    assert client.post("/api/runs/nope/cancel").status_code == 404
    assert audit_actions(client, "run.cancel")[0]["target_id"] == run["id"]


def _failing_flow(http: FakeHttp, key_expr: str) -> dict:
    return {"id": "hist-retry", "name": "Retry", "trigger": {"type": "manual"}, "steps": [
        _http("a", f"{http.base_url}/echo?who={{{{ trigger.key }}}}", next="b"),
        _http("b", f"{http.base_url}/flaky/{key_expr}?fail=1", next="c"),
        {"id": "c", "type": "set", "value": "{{ steps.a.output.body.query.who }}/{{ steps.b.output.body.ok }}"},
    ]}


def test_retry_from_the_failed_step_reuses_earlier_outputs(api_client: TestClient, http: FakeHttp) -> None:
    client = api_client
    key = uuid.uuid4().hex[:8]
    client.post("/api/flows", json={"definition": _failing_flow(http, key)})
    failed = client.post("/api/flows/hist-retry/runs", params={"wait": 10}, json={"key": "k1"}).json()
    assert failed["status"] == "failed" and failed["error"]["step"] == "b"
    assert len(http.hits["echo"]) == 1

    operator = bearer(login(client, make_user(client, "op", "operator", password="operator-pass")["username"], "operator-pass"))
    answer = client.post(f"/api/runs/{failed['id']}/retry", json={"from": "failed_step"}, headers=operator)
    assert answer.status_code == 202 and answer.json()["resumed_from"] == failed["id"] and answer.json()["start_at"] == "b"
    retried = wait_run(client, answer.json()["id"])
    assert retried["status"] == "succeeded" and retried["output"] == "k1/true"
    assert retried["resumed_from"] == failed["id"]
    assert [s["step_id"] for s in retried["steps"]] == ["b", "c"]  # `a` was not called again
    assert len(http.hits["echo"]) == 1
    assert client.post(f"/api/runs/{retried['id']}/retry", json={}).status_code == 409  # only failed runs
    entry = audit_actions(client, "run.retry")[0]
    assert entry["actor"] == "op" and entry["details"]["retry_of"] == failed["id"] and entry["details"]["start_at"] == "b"

    from_start = client.post(f"/api/runs/{failed['id']}/retry", json={"from": "start"}).json()
    again = wait_run(client, from_start["id"])
    assert again["status"] == "succeeded" and [s["step_id"] for s in again["steps"]] == ["a", "b", "c"]
    assert len(http.hits["echo"]) == 2
    assert client.post(f"/api/runs/{failed['id']}/retry", json={"from": "middle"}).status_code == 422
    viewer = bearer(login(client, make_user(client, "vi", "viewer", password="viewer-pass")["username"], "viewer-pass"))
    assert client.post(f"/api/runs/{failed['id']}/retry", json={}, headers=viewer).status_code == 403


def test_bulk_retry_of_failed_runs(api_client: TestClient, http: FakeHttp) -> None:
    client = api_client
    prefix = uuid.uuid4().hex[:8]
    client.post("/api/flows", json={"definition": _failing_flow(http, prefix + "{{ trigger.key }}")})
    ids = [client.post("/api/flows/hist-retry/runs", params={"wait": 10}, json={"key": k}).json() for k in ("x", "y")]
    assert [r["status"] for r in ids] == ["failed", "failed"]
    answer = client.post("/api/runs/retry", json={"flow_id": "hist-retry", "status": "failed", "from": "failed_step",
                                                  "since": ids[0]["started_at"] - 1})
    assert answer.status_code == 202
    body = answer.json()
    assert [r["retry_of"] for r in body["retried"]] == [ids[0]["id"], ids[1]["id"]]  # oldest first
    outputs = sorted(wait_run(client, run_id)["output"] for run_id in body["run_ids"])
    assert outputs == ["x/true", "y/true"]
    second = client.post("/api/runs/retry", json={"flow_id": "hist-retry", "from": "failed_step"}).json()
    assert second["run_ids"] == [] and {s["reason"] for s in second["skipped"]} == {"already retried"}
    assert client.post("/api/runs/retry", json={"flow_id": "nope"}).status_code == 404
    assert client.post("/api/runs/retry", json={"flow_id": "hist-retry", "status": "succeeded"}).status_code == 422


def test_team_scope_of_new_routes(api_client: TestClient) -> None:
    client = api_client
    client.post("/api/flows", json={"definition": FLOW})  # no owner: hidden from team users
    make_user(client, "sales-ed", "editor", team="sales", password="sales-editor")
    editor = bearer(login(client, "sales-ed", "sales-editor"))
    run = client.post("/api/flows/hist-demo/runs", params={"wait": 10}, json={"name": "x"}).json()
    for method, url, body in [
        ("GET", "/api/flows/hist-demo/diff?from=1", None), ("GET", "/api/flows/hist-demo/export", None),
        ("POST", "/api/flows/hist-demo/rollback", {"to_version": 1, "expected_version": 1}),
        ("DELETE", "/api/flows/hist-demo", None), ("POST", f"/api/runs/{run['id']}/retry", {}),
        ("POST", f"/api/runs/{run['id']}/cancel", None), ("POST", "/api/runs/retry", {"flow_id": "hist-demo"}),
        ("POST", "/api/steps/test", {"flow_id": "hist-demo", "step_id": "hello"}),
        ("POST", "/api/flows/import", {"definition": FLOW, "expected_version": 1}),
    ]:
        assert client.request(method, url, json=body, headers=editor).status_code == 404, (method, url)
    mine = client.post("/api/flows/import", json={**FLOW, "id": "sales-flow"}, headers=editor)
    assert mine.status_code == 201
    listed = client.get("/api/flows", headers=editor)
    assert [f["id"] for f in listed.json()] == ["sales-flow"] and listed.headers["X-Total-Count"] == "1"
    assert client.get("/api/flows/sales-flow").json()["id"] == "sales-flow"
    assert {f["id"]: f["owner"] for f in client.get("/api/flows").json()}["sales-flow"] == "sales"


def test_step_test_runs_one_step_without_persisting(api_client: TestClient, http: FakeHttp) -> None:
    client = api_client
    definition = {"id": "hist-steps", "name": "Steps", "trigger": {"type": "manual"}, "vars": {"greeting": "hi"}, "steps": [
        _http("fetch", f"{http.base_url}/echo?name={{{{ trigger.name }}}}&prev={{{{ vars.greeting }}}}", next="route"),
        {"id": "route", "type": "choice", "choices": [{"when": "steps.fetch.output.status == `200`", "next": "ok"}],
         "default": "bad"},
        {"id": "ok", "type": "set", "value": "{{ vars.greeting }} {{ steps.fetch.output.body.query.name }}", "next": "bad"},
        _http("bad", f"{http.base_url}/status/404"),
    ]}
    before = len(client.get("/api/runs").json())
    context = {"trigger": {"name": "Ada"}, "vars": {"greeting": "yo"}}
    action = client.post("/api/steps/test", json={"definition": definition, "step_id": "fetch", "context": context}).json()
    assert action["status"] == "succeeded" and action["error"] is None and action["next"] == "route"
    assert action["input"] == {"url": f"{http.base_url}/echo?name=Ada&prev=yo"}
    assert action["output"]["body"]["query"] == {"name": "Ada", "prev": "yo"}
    assert len(action["attempts"]) == 1 and action["duration_ms"] >= 0

    fetched = {"fetch": {"output": {"status": 200, "body": {"query": {"name": "Bo"}}}}}
    choice = client.post("/api/steps/test", json={"definition": definition, "step_id": "route", "context": {"steps": fetched}}).json()
    assert choice["output"] == {"next": "ok"} and choice["next"] == "ok"
    setter = client.post("/api/steps/test", json={"definition": definition, "step_id": "ok",
                                                  "context": {"steps": fetched, "vars": {"greeting": "hello"}}}).json()
    assert setter["output"] == "hello Bo"
    failing = client.post("/api/steps/test", json={"definition": definition, "step_id": "bad"}).json()
    assert failing["status"] == "failed" and failing["output"] is None
    assert failing["error"]["status"] == 404 and len(failing["attempts"]) == 1

    assert client.post("/api/steps/test", json={"definition": definition, "step_id": "nope"}).status_code == 404
    assert client.post("/api/steps/test", json={"step_id": "ok"}).status_code == 422
    client.post("/api/flows", json={"definition": definition})
    stored = client.post("/api/steps/test", json={"flow_id": "hist-steps", "step_id": "ok", "context": {"steps": fetched}})
    assert stored.json()["output"] == "hi Bo"
    assert len(client.get("/api/runs").json()) == before  # nothing persisted
    assert audit_actions(client, "step.test")[0]["details"] == {"step_id": "ok", "status": "succeeded"}
