"""The example third-party connector (examples/flowlink-connector-demo), pip-installed into the
venv by `make install`: discovered through its entry point, listed by the CLI, used by a flow
end to end against its fake platform, and pinned by major version."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Iterator

import pytest

from connectors.sdk import ConnectorRegistry
from engine.runtime import FlowEngine, FlowInvalid
from tests.fake_http import ServerThread

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "flowlink-connector-demo"

demo_package = pytest.importorskip(
    "flowlink_connector_demo",
    reason="the example connector is not installed: run `make install` (or pip install -e examples/flowlink-connector-demo)",
)
from flowlink_connector_demo.platform import FakeDemoCrm  # noqa: E402


def flowlink(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWLINK_HOME": str(home)}
    env.pop("FLOWLINK_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture()
def demo_crm() -> Iterator[FakeDemoCrm]:
    fake = FakeDemoCrm(api_keys=("k-e2e",))
    server = ServerThread(fake.app).start()
    fake.base_url = f"http://127.0.0.1:{server.port}"  # type: ignore[attr-defined]
    yield fake
    server.stop()


def test_discovered_through_the_entry_point() -> None:
    points = {ep.name: ep.value for ep in entry_points(group="flowlink.connectors")}
    assert points.get("demo") == "flowlink_connector_demo:connector"
    registry = ConnectorRegistry.discover()
    assert registry.connectors["demo"] is demo_package.connector
    assert registry.resolve("demo.greet").ref == "demo.greet"
    assert registry.resolve("demo@^1.2.greet") is registry.resolve("demo@^1.greet")


def test_listed_and_shown_by_the_cli(tmp_path: Path) -> None:
    listed = flowlink("connectors", "list", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "TITLE", "ACTIONS", "TRIGGERS"]
    demo_line = next(line for line in lines if line.startswith("demo "))
    assert "1.2.0" in demo_line and "greet, list_owners, lookup_contact, create_contact" in demo_line
    assert any(line.startswith("core ") for line in lines) and any(line.startswith("http ") for line in lines)
    assert listed.stderr == ""  # no manifest warnings

    rows = {row["name"]: row for row in json.loads(flowlink("connectors", "list", "--json", home=tmp_path).stdout)}
    assert rows["demo"]["version"] == "1.2.0" and rows["demo"]["triggers"] == [] and rows["demo"]["issues"] == []
    assert "lookup_contact" in rows["demo"]["actions"]

    shown = flowlink("connectors", "show", "demo", "--json", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == json.loads(json.dumps(demo_package.connector.manifest()))
    text = flowlink("connectors", "show", "demo", home=tmp_path).stdout
    assert "demo.create_contact — Create contact (创建联系人)" in text
    assert "owner_id: string, required, choices from list_owners, after base_url" in text
    assert "api_key: string, required, secret" in text

    missing = flowlink("connectors", "show", "nope", home=tmp_path)
    assert missing.returncode == 1 and "unknown connector 'nope' (installed: core, demo, " in missing.stderr


def _flow(base_url: str, greet: str = "demo@^1.greet") -> dict[str, Any]:
    crm = {"base_url": "{{ vars.crm }}"}
    return {
        "id": "demo-contact",
        "name": "Greet and file a contact in the Demo CRM",
        "trigger": {"type": "manual"},
        "vars": {"crm": base_url},
        "steps": [
            {"id": "greet", "type": "action", "action": greet,
             "args": {"name": {"$expr": "trigger.name"}, "language": "zh", "excited": True}},
            {"id": "lookup", "type": "action", "action": "demo.lookup_contact", "connection": "demo-main",
             "args": {**crm, "email": {"$expr": "trigger.email"}}},
            {"id": "route", "type": "choice", "choices": [{"when": "steps.lookup.output.found", "next": "existing"}], "default": "create"},
            {"id": "existing", "type": "set", "value": {"contact_id": {"$expr": "steps.lookup.output.contact.id"}, "created": False}, "end": True},
            {"id": "create", "type": "action", "action": "demo@^1.create_contact", "connection": "demo-main",
             "args": {**crm, "name": {"$expr": "trigger.name"}, "email": {"$expr": "trigger.email"},
                      "owner_id": {"$expr": "default(trigger.owner, 'u2')"}, "tags": ["web"],
                      "note": {"$expr": "steps.greet.output.message"}},
             "catch": [{"errors": ["demo.invalid_field"], "next": "rejected", "as": "crm_error"}]},
            {"id": "created", "type": "set", "value": {"contact_id": {"$expr": "steps.create.output.id"}, "created": True}, "end": True},
            {"id": "rejected", "type": "set", "value": {"rejected": {"$expr": "crm_error.code"}, "why": {"$expr": "crm_error.message"}}},
        ],
    }


async def test_flow_end_to_end_against_the_fake(sqlite_url: str, demo_crm: FakeDemoCrm) -> None:
    engine = FlowEngine(sqlite_url)
    try:
        engine.connection_store.put("demo-main", "demo", {"api_key": "k-e2e"})
        flow = engine.compile(_flow(demo_crm.base_url))

        first = await engine.run(flow, {"name": "Wu", "email": "wu@example.com"})
        assert first.status == "succeeded", first.error
        assert first.output == {"contact_id": "c1", "created": True}
        assert demo_crm.contacts["c1"] | {"created_at": 0} == {
            "id": "c1", "name": "Wu", "email": "wu@example.com", "owner_id": "u2", "tags": ["web"],
            "note": "你好，Wu！", "created_at": 0}

        again = await engine.run(flow, {"name": "Wu", "email": "WU@example.com"})
        assert again.status == "succeeded", again.error
        assert again.output == {"contact_id": "c1", "created": False}

        # the platform refuses an unknown owner with its own error shape; the flow catches demo.invalid_field
        refused = await engine.run(flow, {"name": "Zhao", "email": "zhao@example.com", "owner": "u9"})
        assert refused.status == "succeeded", refused.error
        assert refused.output == {"rejected": "invalid_field", "why": "Demo CRM: no owner 'u9' (invalid_field)"}
        assert len(demo_crm.contacts) == 1

        # a wrong key: the platform's 401 fails the run with a typed error
        engine.connection_store.put("demo-main", "demo", {"api_key": "stale"})
        denied = await engine.run(flow, {"name": "Qian", "email": "qian@example.com"})
        assert denied.status == "failed"
        assert denied.error["type"] == "PermissionDenied" and denied.error["code"] == "unauthorized"
        engine.flush()
        stored = engine.runs.get(first.id)
        assert stored is not None and stored.status == "succeeded"
        assert [s.step_id for s in sorted(stored.steps, key=lambda s: s.seq)] == ["greet", "lookup", "route", "create", "created"]
    finally:
        engine.close()


def test_major_version_pinning(sqlite_url: str, tmp_path: Path) -> None:
    engine = FlowEngine(sqlite_url)
    try:
        engine.compile(_flow("http://127.0.0.1:9", greet="demo@^1.greet"), check_connections=False)
        with pytest.raises(FlowInvalid) as invalid:
            engine.compile(_flow("http://127.0.0.1:9", greet="demo@^2.greet"), check_connections=False)
    finally:
        engine.close()
    assert [(i.pointer, i.message) for i in invalid.value.issues] == [
        ("/steps/0/action", "connector 'demo' is version 1.2.0, which does not satisfy ^2"),
    ]
    path = tmp_path / "pinned.json"
    path.write_text(json.dumps(_flow("http://127.0.0.1:9", greet="demo@^2.greet")))
    validated = flowlink("validate", str(path), home=tmp_path)
    assert validated.returncode == 1
    assert f"{path}:/steps/0/action: connector 'demo' is version 1.2.0, which does not satisfy ^2" in validated.stdout.splitlines()


def test_the_example_package_own_tests_pass() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(DEMO / "tests")],
                            cwd=DEMO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
