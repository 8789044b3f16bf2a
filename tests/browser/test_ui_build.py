"""The service's side of the web editor (no browser): the built files at `/` with the single-page-app
fallback, the expression preview endpoint, and the generated API types kept in step with the API."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.browser.service import ROOT
from tests.conftest import bearer, login


@pytest.fixture()
def dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in build in FLOWLINK_UI_DIST: index.html and a hashed asset."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><div id=root></div>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log('flowlink')")
    (tmp_path.parent / "secret.txt").write_text("not for the web")
    monkeypatch.setenv("FLOWLINK_UI_DIST", str(tmp_path))
    return tmp_path


def test_pages_fall_back_to_index_and_assets_are_cached(api_client: TestClient, dist: Path) -> None:
    for path in ("/", "/flows/lead-intake", "/runs/abc", "/connections"):
        page = api_client.get(path)
        assert page.status_code == 200 and "id=root" in page.text and page.headers["cache-control"] == "no-cache", path
    asset = api_client.get("/assets/index-abc123.js")
    assert asset.text == "console.log('flowlink')" and "immutable" in asset.headers["cache-control"]
    assert "javascript" in asset.headers["content-type"]
    assert "not for the web" not in api_client.get("/%2e%2e/secret.txt").text
    assert "not for the web" not in api_client.get("/assets/..%2f..%2fsecret.txt").text


def test_service_routes_are_never_answered_with_the_page(api_client: TestClient, dist: Path) -> None:
    assert api_client.get("/api/health").json()["status"] == "ok"
    for path in ("/api/nope", "/api", "/hooks/no-such-hook"):
        answer = api_client.get(path)
        assert answer.status_code == 404 and "error" in answer.json(), path
    assert api_client.post("/api/nope").status_code == 404  # not 405 from the page route
    assert api_client.delete("/api/health").status_code == 405
    assert api_client.get("/metrics").headers["content-type"].startswith("text/plain")
    assert api_client.get("/apiary").status_code == 200  # only whole path segments are reserved


def test_without_a_build_the_root_says_how_to_build(api_client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLINK_UI_DIST", str(tmp_path / "missing"))
    answer = api_client.get("/flows/x")
    assert answer.status_code == 503 and "make ui" in answer.text


def test_an_installed_package_finds_the_build_in_the_working_directory(api_client: TestClient, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the Docker image: api/ is in site-packages, the build in /app/ui/dist (the working directory)."""
    from api.routers import ui

    (tmp_path / "ui" / "dist").mkdir(parents=True)
    (tmp_path / "ui" / "dist" / "index.html").write_text("<!doctype html><p>from the working directory</p>")
    monkeypatch.delenv("FLOWLINK_UI_DIST", raising=False)
    monkeypatch.setattr(ui, "DEFAULT_DIST", tmp_path / "site-packages" / "ui" / "dist")
    monkeypatch.chdir(tmp_path)
    assert "from the working directory" in api_client.get("/flows/x").text


def test_expression_preview_uses_the_engines_evaluator(api_client: TestClient) -> None:
    context = {"trigger": {"body": {"name": " Zhang San ", "amount": 4200}}, "vars": {"vip": 3000}}

    def preview(expression: str, mode: str = "expr") -> dict:
        answer = api_client.post("/api/ui/preview", json={"expression": expression, "mode": mode, "context": context})
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert preview("trim(trigger.body.name)") == {"ok": True, "value": "Zhang San"}  # a Flowlink function
    assert preview("trigger.body.amount > vars.vip") == {"ok": True, "value": True}
    assert preview("Hi {{ trim(trigger.body.name) }}", "template") == {"ok": True, "value": "Hi Zhang San"}
    bad = preview("trigger.body.[")
    assert bad["ok"] is False and bad["error"]["type"] == "ExpressionSyntax" and "unexpected end" in bad["error"]["message"]
    failed = preview("upper(trigger.body.amount)")
    assert failed["ok"] is False and "upper" in failed["error"]["message"]


def test_expression_preview_needs_an_editor(api_client: TestClient) -> None:
    body = {"expression": "a", "context": {}}
    assert api_client.post("/api/users", json={"username": "vera", "role": "viewer", "password": "vera-password-1"}).status_code == 201
    viewer = bearer(login(api_client, "vera", "vera-password-1"))
    assert api_client.post("/api/ui/preview", json=body, headers=viewer).status_code == 403
    assert api_client.post("/api/ui/preview", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_generated_api_types_match_the_api() -> None:
    """ui/src/api/schema.d.ts is generated from the OpenAPI document: regenerate it when the API changes."""
    if not (ROOT / "ui" / "node_modules" / ".bin" / "openapi-typescript").exists():
        if os.environ.get("FLOWLINK_REQUIRE_BROWSER") == "1":
            pytest.fail("ui/node_modules is missing (make ui)")
        pytest.skip("ui/node_modules is missing (make ui)")
    check = subprocess.run([sys.executable, "ui/scripts/gen_api_types.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr[-2000:]
