"""Flow templates: every shipped flow in flows/ can be listed and fetched to start a new flow from."""
from __future__ import annotations

from pathlib import Path

import orjson
from fastapi.testclient import TestClient

FLOWS = Path(__file__).resolve().parent.parent / "flows"


def test_every_shipped_flow_is_a_template(api_client: TestClient) -> None:
    listed = {t["id"]: t for t in api_client.get("/api/templates").json()}
    shipped = {orjson.loads(p.read_bytes())["id"] for p in FLOWS.glob("*.json")}
    assert set(listed) == shipped and len(shipped) >= 20
    assert listed["wecom-welcome"]["trigger"] == "wecom.callback"
    assert set(listed["douyin-lead-to-crm"]["connectors"]) >= {"douyin", "fxiaoke", "dingtalk"}
    definition = api_client.get("/api/templates/scrm-birthday-care").json()
    assert definition["trigger"]["type"] == "schedule" and definition["steps"]
    missing = api_client.get("/api/templates/nope")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
