"""Every gallery flow (flows/scrm-*.json) validates, has trigger sample data, is loaded by
`flowlink serve --load-examples` (so the editor lists it as a template) together with the data
tables it uses, and is described in docs/flows/gallery.md."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from engine.validation import load_flow_text
from tests.conftest import bearer, login

ROOT = Path(__file__).resolve().parent.parent
GALLERY = sorted((ROOT / "flows").glob("scrm-*.json"))
TABLE_FILES = {p.stem for p in (ROOT / "flows" / "tables").glob("*.json")}


def test_the_gallery_has_the_flows_of_issue_9() -> None:
    assert {p.stem for p in GALLERY} >= {"scrm-auto-tagging", "scrm-feedback-tickets", "scrm-churn-winback",
                                         "scrm-birthday-care", "scrm-campaign-push", "scrm-campaign-conversion"}


@pytest.mark.parametrize("path", GALLERY, ids=lambda p: p.name)
def test_each_flow_validates_and_has_a_sample_and_its_tables(path: Path) -> None:
    result = load_flow_text(path.read_bytes())
    assert result.ok, [str(i) for i in result.issues]
    definition = json.loads(path.read_text())
    assert definition["id"] == path.stem and definition["trigger"].get("sample"), "every gallery flow has trigger sample data"
    used = set(re.findall(r'"table": "([a-z_]+)"', path.read_text()))
    assert used <= TABLE_FILES, f"tables not shipped in flows/tables: {used - TABLE_FILES}"
    assert f"`{path.name}`" in (ROOT / "docs" / "flows" / "gallery.md").read_text()


def test_load_examples_stores_every_gallery_flow_and_table(sqlite_url: str, admin_password: str) -> None:
    with TestClient(create_app(sqlite_url, load_examples=True)) as client:
        client.headers.update(bearer(login(client)))
        listed = {f["id"] for f in client.get("/api/flows", params={"limit": 500}).json()}
        assert {p.stem for p in GALLERY} <= listed
        for path in GALLERY:
            stored = client.get(f"/api/flows/{path.stem}").json()
            assert stored["definition"]["steps"] == json.loads(path.read_text())["steps"]
        tables = {t["name"] for t in client.get("/api/tables").json()}
        assert TABLE_FILES <= tables
