"""Connections, the connector catalog and dynamic options, through HTTP; secrets never leak."""
from __future__ import annotations

import logging
import time
from typing import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from connectors.http import sandbox as http_sandbox
from connectors.sdk import Connector
from connectors.sdk.sandbox import SandboxServer, start_sandbox
from engine.store.tables import metadata
from tests import fake_token_platform as fp
from tests.conftest import bearer, login
from tests.fake_token_platform import platform, platform_server  # noqa: F401
from tests.test_auth import make_user


@pytest.fixture()
def demo_crm() -> Iterator[SandboxServer]:
    """The installed `demo` connector's fake CRM (accepts the API key `demo-key`)."""
    from flowlink_connector_demo import connector as demo

    server = start_sandbox(demo)
    yield server
    server.stop()


@pytest.fixture()
def oauth_connector(api_client: TestClient, platform_server) -> Iterator[str]:  # noqa: F811
    """A connector using OAuth2 client credentials against the fake token platform (for /test)."""
    registry = api_client.app.state.flowlink.engine.registry
    connector = Connector(name="oauthtest", version="1.0.0", title={"en": "OAuth test"}, auth="oauth2_client_credentials",
                          auth_options={"token_url": f"{platform_server.base_url}/oauth/token"})
    registry.add(connector)
    yield connector.name
    registry.connectors.pop(connector.name, None)


def test_connection_crud_never_shows_secrets(api_client: TestClient) -> None:
    secret = "s3cret-demo-key-QX81"
    created = api_client.post("/api/connections", json={"name": "crm", "connector": "demo", "fields": {"api_key": secret}})
    assert created.status_code == 201, created.text
    assert created.json()["fields"] == ["api_key"] and secret not in created.text
    assert api_client.post("/api/connections", json={"name": "crm", "connector": "demo", "fields": {"api_key": "x"}}).status_code == 409

    # fields are checked against the connector's connection schema (and the value is not echoed)
    bad = api_client.post("/api/connections", json={"name": "crm2", "connector": "demo", "fields": {"api_key": 12345678}})
    assert bad.status_code == 422 and "12345678" not in bad.text
    assert bad.json()["error"]["issues"][0]["pointer"] == "/fields/api_key"
    missing = api_client.post("/api/connections", json={"name": "crm2", "connector": "demo", "fields": {}})
    assert missing.status_code == 422 and "api_key" in missing.text
    assert api_client.post("/api/connections", json={"name": "x", "connector": "nope", "fields": {}}).status_code == 422
    # an auth kind's fields: bearer needs a token; an unknown kind is refused
    assert api_client.post("/api/connections", json={"name": "h", "connector": "http", "fields": {"auth": "bearer"}}).status_code == 422
    assert api_client.post("/api/connections", json={"name": "h", "connector": "http", "fields": {"auth": "ntlm"}}).status_code == 422
    token = "tok-7f3a9b-http-bearer"
    assert api_client.post("/api/connections", json={"name": "h", "connector": "http",
                                                     "fields": {"auth": "bearer", "token": token}}).status_code == 201

    listed = api_client.get("/api/connections").json()
    assert [(c["name"], c["connector"], c["fields"]) for c in listed] == [("crm", "demo", ["api_key"]), ("h", "http", ["auth", "token"])]
    assert all(c["created_at"] <= c["updated_at"] for c in listed)
    one = api_client.get("/api/connections/h").json()
    assert one["values"] == {"auth": "bearer"} and one["secret_fields"] == ["token"]
    assert api_client.get("/api/connections/ghost").status_code == 404

    # partial update: an omitted secret keeps its value; a given one replaces it
    changed = api_client.patch("/api/connections/h", json={"fields": {"base_url": "http://127.0.0.1:1"}})
    assert changed.status_code == 200 and changed.json()["fields"] == ["auth", "base_url", "token"]
    assert api_client.app.state.flowlink.engine.connection_store.fields("h")["token"] == token
    api_client.patch("/api/connections/h", json={"fields": {"base_url": None, "token": "tok-rotated-22"}})
    assert api_client.app.state.flowlink.engine.connection_store.fields("h") == {"auth": "bearer", "token": "tok-rotated-22"}

    # roles: viewers read, editors change, admins rotate keys
    make_user(api_client, "vic", "viewer", password="viewer-password")
    make_user(api_client, "eddie", "editor", password="editor-password")
    viewer, editor = bearer(login(api_client, "vic", "viewer-password")), bearer(login(api_client, "eddie", "editor-password"))
    assert api_client.get("/api/connections", headers=viewer).status_code == 200
    assert api_client.delete("/api/connections/h", headers=viewer).status_code == 403
    assert api_client.post("/api/connections/rotate-keys", headers=editor).status_code == 403
    assert api_client.post("/api/connections/rotate-keys").json() == {"rotated": 2}
    assert api_client.delete("/api/connections/h", headers=editor).status_code == 204
    assert api_client.delete("/api/connections/h", headers=editor).status_code == 404

    actions = [(e["action"], e["actor"], e["target_id"]) for e in api_client.get("/api/audit", params={"target_type": "connection"}).json()]
    assert actions[:2] == [("connection.delete", "eddie", "h"), ("connection.rotate_keys", "admin", "*")]
    assert ("connection.create", "admin", "crm") in actions and ("connection.update", "admin", "h") in actions
    audit_text = api_client.get("/api/audit", params={"target_type": "connection"}).text
    assert secret not in audit_text and token not in audit_text and "tok-rotated-22" not in audit_text


def test_connection_test_reports_a_wrong_secret_clearly(api_client: TestClient, oauth_connector: str, platform) -> None:  # noqa: F811
    good = {"client_id": fp.CLIENT_ID, "client_secret": fp.CLIENT_SECRET}
    wrong = {"client_id": fp.CLIENT_ID, "client_secret": "wrong-secret-9d8c7b"}
    for name, fields in (("good", good), ("bad", wrong)):
        assert api_client.post("/api/connections", json={"name": name, "connector": oauth_connector, "fields": fields}).status_code == 201
    ok = api_client.post("/api/connections/good/test").json()
    assert ok["ok"] is True and "access token" in ok["message"]
    answer = api_client.post("/api/connections/bad/test")
    result = answer.json()
    assert answer.status_code == 200 and result["ok"] is False and result["kind"] == "PermissionDenied"
    assert "rejected" in result["message"] and "wrong-secret-9d8c7b" not in answer.text
    assert api_client.post("/api/connections/ghost/test").status_code == 404


def test_connection_test_with_a_static_kind(api_client: TestClient, demo_crm: SandboxServer) -> None:
    api_client.post("/api/connections", json={"name": "crm", "connector": "demo", "fields": {"api_key": "demo-key"}})
    result = api_client.post("/api/connections/crm/test").json()
    assert result["ok"] is True and result["connector"] == "demo"


def test_connector_catalog(api_client: TestClient) -> None:
    catalog = {c["name"]: c for c in api_client.get("/api/connectors").json()}
    assert {"core", "http", "demo"} <= set(catalog)
    demo = api_client.get("/api/connectors/demo").json()
    assert demo == catalog["demo"] and demo["version"] == "1.2.0"
    owner = demo["actions"]["create_contact"]["input_schema"]["properties"]["owner_id"]
    assert owner["x-options"]["action"] == "list_owners" and owner["x-depends-on"] == ["base_url"]
    assert demo["connection"]["schema"]["properties"]["api_key"]["x-secret"] is True
    assert "request" in catalog["http"]["actions"] and isinstance(catalog["http"]["triggers"], dict)
    for example in demo["actions"]["list_owners"]["examples"]:
        assert "connection" not in example
    assert api_client.get("/api/connectors/nope").status_code == 404


def test_dynamic_options_from_the_demo_sandbox(api_client: TestClient, demo_crm: SandboxServer) -> None:
    api_client.post("/api/connections", json={"name": "crm", "connector": "demo", "fields": {"api_key": "demo-key"}})
    body = {"action": "create_contact", "field": "owner_id", "connection": "crm", "args": {"base_url": demo_crm.base_url}}
    answer = api_client.post("/api/connectors/demo/options", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == [{"value": "u1", "label": "Li Lei"}, {"value": "u2", "label": "Han Meimei"}]
    # the field may be omitted when the action has one field with options
    assert api_client.post("/api/connectors/demo/options", json={**body, "field": None}).json()[0]["value"] == "u1"
    # options runs are not run history
    assert not any(r["flow_id"].startswith("options-") for r in api_client.get("/api/runs").json())

    api_client.post("/api/connections", json={"name": "crm-bad", "connector": "demo", "fields": {"api_key": "not-the-key-55"}})
    denied = api_client.post("/api/connectors/demo/options", json={**body, "connection": "crm-bad"})
    assert denied.status_code == 502 and "PermissionDenied" in denied.text and "not-the-key-55" not in denied.text
    assert api_client.post("/api/connectors/demo/options", json={**body, "field": "name"}).status_code == 422
    assert api_client.post("/api/connectors/demo/options", json={**body, "connection": "ghost"}).status_code == 422
    assert api_client.post("/api/connectors/demo/options", json={**body, "action": "nope"}).status_code == 404


def _wait_run(client: TestClient, run_id: str) -> dict:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        run = client.get(f"/api/runs/{run_id}").json()
        if run.get("status") not in (None, "running"):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def test_secrets_never_appear_in_responses_logs_or_database(api_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    from flowlink_connector_demo.platform import FakeDemoCrm

    caplog.set_level(logging.DEBUG)
    http_server = SandboxServer(http_sandbox.app()).start()
    demo_crm = SandboxServer(FakeDemoCrm(api_keys=("demo-secret-77aa31",)).app).start()
    # the http sandbox's /bearer accepts only its token (and does not echo headers back)
    secrets = {"token": http_sandbox.SANDBOX_TOKEN, "demo": "demo-secret-77aa31", "wrong": "wrong-bearer-4c4c4c"}
    http_token = secrets["token"]
    try:
        bodies: list[str] = []

        def call(method: str, url: str, **kw) -> dict | list | None:
            answer = api_client.request(method, url, **kw)
            bodies.append(answer.text)
            bodies.extend(f"{k}: {v}" for k, v in answer.headers.items())
            assert answer.status_code < 500, answer.text
            return answer.json() if answer.content else None

        call("POST", "/api/connections", json={"name": "crm", "connector": "demo", "fields": {"api_key": secrets["demo"]}})
        call("POST", "/api/connections", json={"name": "echo", "connector": "http", "fields": {"auth": "bearer", "token": http_token}})
        call("POST", "/api/connections", json={"name": "echo-bad", "connector": "http",
                                                "fields": {"auth": "bearer", "token": secrets["wrong"]}})
        call("GET", "/api/connections")
        call("GET", "/api/connections/crm")
        call("GET", "/api/connections/echo")
        call("PATCH", "/api/connections/echo", json={"fields": {"note": "updated"}})
        call("POST", "/api/connections/echo/test")
        call("POST", "/api/connections/crm/test")
        call("POST", "/api/connectors/demo/options", json={"action": "create_contact", "connection": "crm",
                                                           "args": {"base_url": demo_crm.base_url}})
        call("POST", "/api/connections/rotate-keys")

        flow = {"id": "bearer-call", "name": "Bearer call", "trigger": {"type": "manual"}, "steps": [
            {"id": "call", "type": "action", "action": "http.request", "connection": "echo",
             "args": {"url": f"{http_server.base_url}/bearer"}}]}
        call("POST", "/api/flows", json={"definition": flow})
        bad_flow = {**flow, "id": "bearer-bad", "name": "Bearer bad",
                    "steps": [{**flow["steps"][0], "connection": "echo-bad"}]}
        call("POST", "/api/flows", json={"definition": bad_flow})
        runs = [call("POST", "/api/flows/bearer-call/runs", params={"wait": 10}, json={}),
                call("POST", "/api/flows/bearer-bad/runs", params={"wait": 10}, json={})]
        for run in runs:
            final = _wait_run(api_client, run["id"])
            bodies.append(str(final))
        # the right bearer reached /bearer and was accepted, the wrong one was refused
        assert [_wait_run(api_client, r["id"])["status"] for r in runs] == ["succeeded", "failed"]
        call("GET", "/api/runs")
        call("GET", "/api/audit")
        call("GET", "/api/flows/bearer-call")

        api_client.app.state.flowlink.engine.flush()
        db = api_client.app.state.flowlink.engine.db
        columns: list[str] = []
        with db.connect() as conn:
            for table in metadata.sorted_tables:
                for row in conn.execute(sa.select(table)).all():
                    for value in row:
                        if isinstance(value, (bytes, bytearray, memoryview)):
                            columns.append(bytes(value).decode("utf-8", "replace"))
                        elif value is not None:
                            columns.append(str(value))
        logs = [record.getMessage() for record in caplog.records] + [caplog.text]
        assert columns and bodies
        for label, secret in secrets.items():
            for where, texts in (("API responses", bodies), ("logs", logs), ("database", columns)):
                leaked = [t[:200] for t in texts if secret in t]
                assert not leaked, f"the {label} secret appears in {where}: {leaked}"
    finally:
        http_server.stop()
        demo_crm.stop()
