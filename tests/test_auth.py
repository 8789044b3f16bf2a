"""Users, roles, sessions, API keys, flow ownership and the audit log, through HTTP."""
from __future__ import annotations

import hashlib
import re
import time

import pytest
import sqlalchemy as sa
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from api.main import create_app
from api.permissions import PERMISSIONS, PUBLIC
from engine.users import ROLES
from tests.conftest import ADMIN_PASSWORD, bearer, login

FLOW = {"id": "sales-digest", "name": "Sales digest", "trigger": {"type": "manual"},
        "steps": [{"id": "hello", "type": "set", "value": "hi {{ trigger.name }}"}]}


def make_user(admin: TestClient, username: str, role: str, team: str | None = None, password: str | None = None) -> dict:
    body = {"username": username, "role": role, "team": team, **({"password": password} if password else {})}
    answer = admin.post("/api/users", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def db_rows(client: TestClient, table: str) -> list[dict]:
    engine = client.app.state.flowlink.engine.db
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(f"select * from {table}")).mappings().all()]


def test_first_start_prints_a_one_time_password_once(sqlite_url: str, monkeypatch, capsys) -> None:
    monkeypatch.delenv("FLOWLINK_ADMIN_PASSWORD", raising=False)
    with TestClient(create_app(sqlite_url)) as client:
        printed = capsys.readouterr().err
        password = re.search(r"one-time password:\s+(\S+)", printed).group(1)
        token = login(client, "admin", password)
        me = client.get("/api/auth/me", headers=bearer(token)).json()
        assert me["username"] == "admin" and me["role"] == "admin" and me["auth"] == "session"
        created = client.get("/api/audit", params={"action": "user.create"}, headers=bearer(token)).json()
        assert [(e["actor"], e["target_id"]) for e in created] == [("system", "admin")]
        assert password not in str(db_rows(client, "audit_log")) and password not in str(db_rows(client, "users"))
    with TestClient(create_app(sqlite_url)):
        assert "one-time password" not in capsys.readouterr().err  # only on the very first start


def test_login_logout_and_expiry(api_client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    assert api_client.get("/api/auth/me", headers=anonymous).status_code == 401
    assert api_client.get("/api/flows", headers={"Authorization": "Bearer nonsense"}).json()["error"]["type"] == "Unauthorized"
    wrong = api_client.post("/api/auth/login", json={"username": "admin", "password": "not-it-at-all"}, headers=anonymous)
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "wrong username or password"
    assert api_client.post("/api/auth/login", json={"username": "ghost", "password": "whatever1"}).status_code == 401

    answer = api_client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}, headers=anonymous).json()
    token = answer["token"]
    assert answer["expires_at"] == pytest.approx(time.time() + 12 * 3600, abs=60)
    assert "password_hash" not in answer["user"]
    assert api_client.get("/api/auth/me", headers=bearer(token)).status_code == 200
    assert api_client.post("/api/auth/logout", headers=bearer(token)).status_code == 204
    assert api_client.get("/api/auth/me", headers=bearer(token)).status_code == 401

    token = login(api_client)
    db = api_client.app.state.flowlink.engine.db
    with db.begin() as conn:  # the session's 12 hours are over
        conn.execute(sa.text("update sessions set expires_at = :t where token_hash = :h"),
                     {"t": time.time() - 1, "h": hashlib.sha256(token.encode()).hexdigest()})
    assert api_client.get("/api/auth/me", headers=bearer(token)).status_code == 401

    failed = api_client.get("/api/audit", params={"action": "auth.login_failed"}).json()
    assert {(e["actor"], e["details"]["reason"]) for e in failed} == {("admin", "wrong password"), ("ghost", "unknown user")}
    assert api_client.get("/api/audit", params={"action": "auth.logout"}).json()[0]["actor"] == "admin"


def test_change_password_and_deactivation_end_sessions(api_client: TestClient) -> None:
    bob = make_user(api_client, "bob", "viewer", password="bob-password-1")
    token = login(api_client, "bob", "bob-password-1")
    bad = api_client.post("/api/auth/password", json={"current_password": "wrong-one", "new_password": "bob-password-2"},
                          headers=bearer(token))
    assert bad.status_code == 403
    assert api_client.post("/api/auth/password", json={"current_password": "bob-password-1", "new_password": "short"},
                           headers=bearer(token)).status_code == 422
    assert api_client.post("/api/auth/password", json={"current_password": "bob-password-1", "new_password": "bob-password-2"},
                           headers=bearer(token)).status_code == 204
    assert api_client.get("/api/auth/me", headers=bearer(token)).status_code == 401  # sessions ended
    token = login(api_client, "bob", "bob-password-2")

    reset = api_client.post(f"/api/users/{bob['id']}/password", json={}).json()
    assert api_client.get("/api/auth/me", headers=bearer(token)).status_code == 401
    token = login(api_client, "bob", reset["password"])
    key = api_client.post("/api/api-keys", json={"name": "bob-bot"}, headers=bearer(token)).json()["key"]

    assert api_client.patch(f"/api/users/{bob['id']}", json={"active": False}).json()["active"] is False
    assert api_client.get("/api/auth/me", headers=bearer(token)).status_code == 401
    assert api_client.get("/api/auth/me", headers=bearer(key)).status_code == 401
    assert api_client.post("/api/auth/login", json={"username": "bob", "password": reset["password"]}).status_code == 401

    admin_id = api_client.get("/api/auth/me").json()["id"]
    last = api_client.patch(f"/api/users/{admin_id}", json={"role": "editor"})
    assert last.status_code == 409 and "last active admin" in last.json()["error"]["message"]
    assert api_client.post("/api/users", json={"username": "bob", "role": "viewer"}).status_code == 409
    assert api_client.post("/api/users", json={"username": "eve", "role": "root"}).status_code == 422


def test_api_keys_create_use_list_revoke(api_client: TestClient) -> None:
    make_user(api_client, "ci", "operator", password="ci-password-1")
    make_user(api_client, "other", "viewer", password="other-password")
    ci, other = login(api_client, "ci", "ci-password-1"), login(api_client, "other", "other-password")
    created = api_client.post("/api/api-keys", json={"name": "deploy bot"}, headers=bearer(ci))
    assert created.status_code == 201
    key = created.json()["key"]
    assert re.fullmatch(r"flk_[0-9a-f]{8}_[A-Za-z0-9_-]{40,}", key) and key.split("_")[1] == created.json()["prefix"]

    me = api_client.get("/api/auth/me", headers=bearer(key)).json()
    assert (me["username"], me["role"], me["auth"]) == ("ci", "operator", "api_key")
    assert api_client.post("/api/flows", json={"definition": FLOW}, headers=bearer(key)).status_code == 403  # operator

    listed = api_client.get("/api/api-keys", headers=bearer(ci)).json()
    assert [k["name"] for k in listed] == ["deploy bot"] and listed[0]["last_used_at"] is not None
    assert key not in str(listed) and "key_hash" not in listed[0]
    assert api_client.get("/api/api-keys", headers=bearer(other)).json() == []
    assert api_client.delete(f"/api/api-keys/{listed[0]['id']}", headers=bearer(other)).status_code == 404
    assert [k["username"] for k in api_client.get("/api/api-keys").json()] == ["ci"]  # the admin sees all

    assert api_client.delete(f"/api/api-keys/{listed[0]['id']}", headers=bearer(ci)).status_code == 204
    assert api_client.get("/api/auth/me", headers=bearer(key)).status_code == 401
    assert api_client.get("/api/api-keys", headers=bearer(ci)).json()[0]["revoked_at"] is not None
    assert api_client.post("/api/api-keys", json={"name": "x", "user_id": "someone"}, headers=bearer(ci)).status_code == 403
    stored = db_rows(api_client, "api_keys")[0]
    assert stored["key_hash"] != key and key not in str(stored)


def _api_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the app serves under /api, through included routers too."""
    found = set()
    for context in iter_route_contexts(app.routes):
        if (context.path or "").startswith("/api"):
            found |= {(m, context.path) for m in (getattr(context.original_route, "methods", None) or ()) if m != "HEAD"}
    return sorted(found)


def test_role_by_endpoint_matrix(api_client: TestClient) -> None:
    """Every /api route x every role (and no login): 401 / 403 / allowed, never a 500."""
    routes = _api_routes(api_client.app)
    missing = [r for r in routes if r not in PERMISSIONS]
    assert not missing, f"routes without an entry in api/permissions.py: {missing}"
    assert not set(PERMISSIONS) - set(routes), f"stale entries in api/permissions.py: {set(PERMISSIONS) - set(routes)}"

    headers: dict[str, dict[str, str]] = {"anonymous": {"Authorization": ""}}
    for role in ROLES:
        if role != "admin":
            make_user(api_client, f"u-{role}", role, password=f"{role}-password")
        token = login(api_client, "admin" if role == "admin" else f"u-{role}", ADMIN_PASSWORD if role == "admin" else f"{role}-password")
        # an API key, so that calling /api/auth/logout does not end the identity used for the rest
        headers[role] = bearer(api_client.post("/api/api-keys", json={"name": "matrix"}, headers=bearer(token)).json()["key"])

    problems, table = [], []
    for method, path in routes:
        needed = PERMISSIONS[(method, path)]
        url = re.sub(r"\{[^}]+\}", "nope", path)
        row = []
        for who, auth in headers.items():
            answer = api_client.request(method, url, headers=auth, json={} if method in ("POST", "PUT", "PATCH") else None)
            code = answer.status_code
            row.append(f"{who}={code}")
            if needed == PUBLIC:
                ok = code < 500 and code not in (401, 403)
            elif who == "anonymous":
                ok = code == 401
            elif ROLES.index(who) >= ROLES.index(needed):
                ok = code < 500 and code not in (401, 403)
            else:
                ok = code == 403 and answer.json()["error"]["type"] == "Forbidden"
            if not ok:
                problems.append(f"{method} {path} as {who} (needs {needed}): {code} {answer.text[:200]}")
        table.append(f"{method:6} {path:40} {needed:8} {' '.join(row)}")
    assert not problems, "\n".join(problems + ["", *table])


def test_team_sees_only_its_flows_and_runs(api_client: TestClient) -> None:
    make_user(api_client, "sales-ed", "editor", team="sales", password="sales-editor")
    make_user(api_client, "sales-op", "operator", team="sales", password="sales-operator")
    make_user(api_client, "ops", "operator", password="ops-password")  # no team: sees every flow
    editor = bearer(login(api_client, "sales-ed", "sales-editor"))
    operator = bearer(login(api_client, "sales-op", "sales-operator"))
    ops = bearer(login(api_client, "ops", "ops-password"))

    assert api_client.post("/api/flows", json={"definition": FLOW}, headers=editor).status_code == 201
    admin_flow = {**FLOW, "id": "finance-only", "name": "Finance"}
    assert api_client.post("/api/flows", json={"definition": admin_flow}).status_code == 201
    assert {f["id"]: f["owner"] for f in api_client.get("/api/flows", headers=operator).json()} == {"sales-digest": "sales"}
    assert "finance-only" in {f["id"] for f in api_client.get("/api/flows", headers=ops).json()}

    mine = api_client.post("/api/flows/sales-digest/runs", params={"wait": 10}, json={"name": "Li"}, headers=operator).json()
    assert mine["status"] == "succeeded"
    theirs = api_client.post("/api/flows/finance-only/runs", params={"wait": 10}, json={"name": "Wu"}).json()
    for forbidden in ("/api/flows/finance-only", "/api/flows/finance-only/versions", f"/api/runs/{theirs['id']}"):
        assert api_client.get(forbidden, headers=operator).status_code == 404, forbidden
    assert api_client.post("/api/flows/finance-only/runs", json={}, headers=operator).status_code == 404
    assert api_client.post("/api/flows/finance-only/activate", headers=editor).status_code == 404
    assert [r["id"] for r in api_client.get("/api/runs", headers=operator).json()] == [mine["id"]]
    assert api_client.get("/api/runs", params={"flow_id": "finance-only"}, headers=operator).json() == []
    assert api_client.get(f"/api/runs/{mine['id']}", headers=operator).status_code == 200
    assert {r["id"] for r in api_client.get("/api/runs").json()} >= {mine["id"], theirs["id"]}  # admin: everything
    assert {r["id"] for r in api_client.get("/api/runs", headers=ops).json()} >= {mine["id"], theirs["id"]}

    # the admin gives a flow to the team: now its members see it and its runs
    assert api_client.put("/api/flows/finance-only/owner", json={"owner": "sales"}, headers=editor).status_code == 403
    assert api_client.put("/api/flows/finance-only/owner", json={"owner": "sales"}).json() == {"id": "finance-only", "owner": "sales"}
    assert api_client.get(f"/api/runs/{theirs['id']}", headers=operator).status_code == 200
    change = api_client.get("/api/audit", params={"action": "flow.owner_change", "target_id": "finance-only"}).json()[0]
    assert (change["actor"], change["before"], change["after"]) == ("admin", {"owner": None}, {"owner": "sales"})


def test_audit_log_has_actors_and_no_secrets(api_client: TestClient) -> None:
    secrets = [ADMIN_PASSWORD, "carol-password-1"]
    carol = make_user(api_client, "carol", "viewer", team="ops", password="carol-password-1")
    api_client.post("/api/auth/login", json={"username": "carol", "password": "carol-wrong-pass"})
    secrets.append("carol-wrong-pass")
    token = login(api_client, "carol", "carol-password-1")
    secrets.append(token)
    assert api_client.patch(f"/api/users/{carol['id']}", json={"role": "editor"}).status_code == 200
    secrets.append(api_client.post("/api/api-keys", json={"name": "carol-bot"}, headers=bearer(token)).json()["key"])
    assert api_client.post("/api/flows", json={"definition": FLOW}, headers=bearer(token)).status_code == 201
    run = api_client.post("/api/flows/sales-digest/runs", params={"wait": 10}, json={"name": "Qian"}, headers=bearer(token)).json()
    reset = api_client.post(f"/api/users/{carol['id']}/password", json={}).json()
    secrets.append(reset["password"])

    entries = api_client.get("/api/audit", params={"limit": 1000}).json()
    seen = {(e["action"], e["actor"], e["target_id"]) for e in entries}
    assert {("user.create", "admin", "carol"), ("auth.login_failed", "carol", "carol"), ("auth.login", "carol", "carol"),
            ("user.role_change", "admin", "carol"), ("flow.create", "carol", "sales-digest"), ("run.start", "carol", run["id"]),
            ("user.password_reset", "admin", "carol")} <= seen
    change = api_client.get("/api/audit", params={"action": "user.role_change", "target_id": "carol"}).json()[0]
    assert (change["before"]["role"], change["after"]["role"]) == ("viewer", "editor") and change["at"] <= time.time()
    assert [e["action"] for e in api_client.get("/api/audit", params={"actor": "carol", "target_type": "flow"}).json()] == ["flow.owner_change", "flow.create"]
    assert api_client.get("/api/audit", params={"since": time.time() + 60}).json() == []

    everything = str(db_rows(api_client, "audit_log")) + str(entries) + str(api_client.get("/api/users").json()) \
        + str(api_client.get("/api/api-keys").json()) + str(db_rows(api_client, "users")) + str(db_rows(api_client, "sessions"))
    leaked = [s for s in secrets if s in everything]
    assert not leaked, f"secrets found in the audit log, the tables or the answers: {len(leaked)}"


def test_user_store_on_both_databases(database_url: str) -> None:
    """The store's queries (booleans, joins, the last-admin guard) on SQLite and PostgreSQL."""
    from engine.store.db import make_engine, migrate
    from engine.users import UserError, UserStore

    db = make_engine(database_url)
    migrate(db)
    try:
        store = UserStore(db)
        assert store.ensure_first_admin("first-admin-pw") is None and store.count() == 1
        admin = store.by_username("admin")
        with pytest.raises(UserError) as last:
            store.update(admin.id, "admin", active=False)
        assert last.value.status == 409
        dora = store.create("dora", "dora-password", "viewer", team="ops", actor="admin")
        assert store.update(dora.id, "admin", role="admin", team="").team is None
        assert not store.update(admin.id, "dora", active=False).active  # another admin is left now
        token, _, user = store.login("dora", "dora-password")
        assert store.authenticate(token)[0].username == "dora" and store.login("admin", "first-admin-pw") is None
        key, info = store.create_key(user, "bot", "dora")
        assert store.authenticate(key)[1] == "api_key" and store.list_keys(user.id)[0]["username"] == "dora"
        store.revoke_key(info["id"], "dora")
        assert store.authenticate(key) is None and store.logout(token, "dora") and store.authenticate(token) is None
    finally:
        db.dispose()
