"""The flowlink command line, run as a real process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def flowlink(*args: str, home: Path, input_text: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWLINK_HOME": str(home)}
    env.pop("FLOWLINK_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, input=input_text)


def test_validate_ok_and_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x", "name": "x", "trigger": {"type": "manual"},\n "steps": [{"id": "a", "type": "set", "value": 1, "next": "b"}]}')
    broken = tmp_path / "broken.json"
    broken.write_text('{"id": "x",\n  "name": }')
    result = flowlink("validate", "flows/lead-intake.json", str(bad), str(broken), home=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "flows/lead-intake.json: ok" in lines
    assert f"{bad}:/steps/0/next: unknown step 'b'" in lines
    assert any(line.startswith(f"{broken}:/: invalid JSON at line 2, column 11") for line in lines)
    assert "Traceback" not in result.stderr
    as_json = json.loads(flowlink("validate", "--json", str(bad), home=tmp_path).stdout)
    assert as_json[0]["issues"][0]["pointer"] == "/steps/0/next"


def test_run_prints_record_and_progress_then_history(tmp_path: Path) -> None:
    flow = tmp_path / "f.json"
    flow.write_text(json.dumps({"id": "cli-demo", "name": "cli", "trigger": {"type": "manual"}, "steps": [
        {"id": "greet", "type": "set", "value": "hello {{ trigger.who }}"},
        {"id": "pause", "type": "wait", "seconds": 0.05},
        {"id": "check", "type": "choice", "choices": [{"when": "trigger.ok", "next": "done"}], "default": "boom"},
        {"id": "done", "type": "succeed"},
        {"id": "boom", "type": "fail", "error": "NotOk", "message": "{{ trigger.who }} is not ok"}]}))
    ok = flowlink("run", str(flow), "--input", '{"who": "Li", "ok": true}', home=tmp_path)
    assert ok.returncode == 0, ok.stderr
    record = json.loads(ok.stdout)
    assert record["status"] == "succeeded" and [s["step_id"] for s in record["steps"]] == ["greet", "pause", "check", "done"]
    assert "[ok  ] pause" in ok.stderr
    payload = tmp_path / "in.json"
    payload.write_text('{"who": "Wu", "ok": false}')
    failed = flowlink("run", str(flow), "--input", f"@{payload}", home=tmp_path)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["error"]["message"] == "Wu is not ok"
    listed = flowlink("runs", "list", "--json", home=tmp_path)
    runs = json.loads(listed.stdout)
    assert [r["status"] for r in runs] == ["failed", "succeeded"]
    shown = flowlink("runs", "show", runs[0]["id"], home=tmp_path)
    assert "error: NotOk at boom: Wu is not ok" in shown.stdout
    assert flowlink("runs", "show", "nope", home=tmp_path).returncode == 1
    assert flowlink("run", str(flow), "--input", "{bad", home=tmp_path).returncode != 0


def test_invalid_flow_is_not_run(tmp_path: Path) -> None:
    flow = tmp_path / "f.json"
    flow.write_text(json.dumps({"id": "x", "name": "x", "trigger": {"type": "manual"}, "steps": [
        {"id": "a", "type": "action", "action": "nope.thing"}]}))
    result = flowlink("run", str(flow), home=tmp_path)
    assert result.returncode == 2
    assert "/steps/0/action: unknown connector 'nope'" in result.stderr


def test_connections_never_print_secrets(tmp_path: Path) -> None:
    saved = flowlink("connections", "set", "crm", "--connector", "http", "--field", "auth=bearer", "--field", "token=-",
                     home=tmp_path, input_text="very-secret-token\n")
    assert saved.returncode == 0, saved.stderr
    listed = flowlink("connections", "list", home=tmp_path)
    assert "crm" in listed.stdout and "very-secret-token" not in listed.stdout
    assert "very-secret-token".encode() not in (tmp_path / "flowlink.db").read_bytes()
    assert flowlink("connections", "rotate-keys", home=tmp_path).returncode == 0
    assert flowlink("connections", "delete", "crm", home=tmp_path).returncode == 0
    assert flowlink("connections", "delete", "crm", home=tmp_path).returncode == 1


def test_tracked_lane_with_no_prefect_server_configured(tmp_path: Path) -> None:
    """The embedded default: no PREFECT_API_URL, Prefect starts a temporary server itself."""
    flow = tmp_path / "f.json"
    flow.write_text(json.dumps({"id": "embedded", "name": "embedded", "trigger": {"type": "manual"},
                                "steps": [{"id": "hi", "type": "set", "value": "hi {{ trigger.n }}"}]}))
    env_home = tmp_path / "prefect-home"
    os.environ.pop("PREFECT_API_URL", None)
    result = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(flow), "--lane", "tracked", "--input", '{"n": 3}'],
                            cwd=ROOT, capture_output=True, text=True, timeout=180,
                            env={**{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
                                 "FLOWLINK_HOME": str(tmp_path), "PREFECT_HOME": str(env_home),
                                 "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout)
    assert record["lane"] == "tracked" and record["output"] == "hi 3"
    assert record["prefect_flow_run_id"]


def test_run_with_the_trigger_sample(tmp_path: Path) -> None:
    result = flowlink("run", "flows/order-digest.json", "--sample", "--quiet", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"]["big_total"] == 13550
    no_sample = tmp_path / "f.json"
    no_sample.write_text(json.dumps({"id": "x", "name": "x", "trigger": {"type": "manual"}, "steps": [{"id": "a", "type": "set", "value": 1}]}))
    missing = flowlink("run", str(no_sample), "--sample", home=tmp_path)
    assert missing.returncode == 2 and "no sample data" in missing.stderr
