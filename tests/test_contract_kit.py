"""The contract kit (connectors.sdk.contract) and `flowlink connector test`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.sdk import ActionContext, Connector, WebhookTrigger, add_trigger
from connectors.sdk.contract import check_connector, subset_mismatch

ROOT = Path(__file__).resolve().parent.parent


def _flowlink(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWLINK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _fake() -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != "Bearer k":
            return JSONResponse({"error": {"code": "unauthorized", "message": "bad key"}}, status_code=401)
        return JSONResponse({"data": {"word": request.path_params["word"], "length": len(request.path_params["word"])}})

    return Starlette(routes=[Route("/v1/echo/{word}", echo)])


class Word(BaseModel):
    word: str


class Echo(BaseModel):
    word: str
    length: int


def _kit_connector(*, sandbox: bool = True) -> Connector:
    """A connector with one good example and several kinds of contract failure."""
    connector = Connector(name="kit", version="1.0.0", title={"en": "Kit"}, base_url="https://kit.example.com",
                          auth="bearer", sandbox=_fake if sandbox else None)
    connector.actions["custom_api_call"].examples.append(
        {"title": "raw", "input": {"path": "/v1/echo/hi"}, "connection": {"token": "k"}, "expect": {"status": 200}})

    async def echo(ctx: ActionContext, inp: Word) -> dict[str, Any]:
        return (await ctx.client.get(f"/v1/echo/{inp.word}"))["data"]

    connector.action("echo", input=Word, output_schema=Echo, examples=[
        {"title": "good", "input": {"word": "tea"}, "connection": {"token": "k"}, "expect": {"word": "tea", "length": 3}},
        {"title": "wrong expectation", "input": {"word": "tea"}, "connection": {"token": "k"}, "expect": {"length": 4}},
        {"title": "wrong key", "input": {"word": "tea"}, "connection": {"token": "nope"}},
        {"title": "bad input", "input": {"word": 5}, "connection": {"token": "k"}},
    ])(echo)

    def lies(ctx: ActionContext, inp: Word) -> dict[str, Any]:
        return {"word": inp.word}  # no length: breaks its own output schema

    connector.action("lies", input=Word, output_schema=Echo, examples=[{"title": "schema", "input": {"word": "x"}}])(lies)
    connector.action("untested", input=Word)(lambda ctx, inp: {})
    add_trigger(connector, WebhookTrigger(name="good_hook", title={"en": "Good"}, sample={"word": "a", "length": 1},
                                          output_schema=Echo.model_json_schema()))
    add_trigger(connector, WebhookTrigger(name="bad_hook", title={"en": "Bad"}, sample={"word": "a"},
                                          output_schema=Echo.model_json_schema()))
    add_trigger(connector, WebhookTrigger(name="loose_hook", title={"en": "Loose"}, sample={"anything": True}))
    return connector


async def test_every_kind_of_check_reports_pass_or_fail() -> None:
    report = await check_connector(_kit_connector())
    results = {check.name: check for check in report.checks}
    passed = {name for name, check in results.items() if check.ok}
    assert passed == {
        "manifest", "schemas: custom_api_call", "schemas: echo", "schemas: lies", "schemas: untested",
        "trigger sample: good_hook", "trigger sample: loose_hook", "sandbox",
        "example: custom_api_call — raw", "example: echo — good",
    }
    assert results["trigger sample: loose_hook"].message == "no output schema declared; sample not checked"
    bad_hook = results["trigger sample: bad_hook"]
    assert bad_hook.message == "sample does not match the output schema" and bad_hook.details == ["/: 'length' is a required property"]
    wrong = results["example: echo — wrong expectation"]
    assert wrong.message == "the output does not contain what the example expects"
    assert wrong.details[0] == "/length: expected 4, got 3"
    key = results["example: echo — wrong key"]
    assert key.message.startswith("the run failed: PermissionDenied") or key.message.startswith("the run failed: AuthExpired")
    assert "unauthorized" in key.message or "401" in key.message
    assert results["example: echo — bad input"].message == "the example is not a valid step"
    assert results["example: lies — schema"].message == "the output does not match the action's output schema"
    assert results["example: untested"].message == "action untested has no example to run against the fake"
    assert not report.ok and len(report.failed) == 6
    text = report.lines()
    assert text[0] == "connector kit 1.0.0" and text[-1] == "10 passed, 6 failed: FAILED"
    assert "  FAIL  example: untested: action untested has no example to run against the fake" in text
    assert json.loads(json.dumps(report.to_dict()))["failed"] == 6


async def test_a_connector_without_sandbox_fails_the_exercise_clearly() -> None:
    report = await check_connector(_kit_connector(sandbox=False))
    sandbox = next(check for check in report.checks if check.name == "sandbox")
    assert not sandbox.ok
    assert sandbox.message == ("connector 'kit' declares no sandbox (a factory of its fake's ASGI app), "
                               "so its actions cannot be exercised against a fake")
    assert not any(check.name.startswith("example: echo —") for check in report.checks)  # nothing ran


def test_an_invalid_manifest_lists_its_issues() -> None:
    import asyncio

    broken = Connector(name="Bad Name", version="one", title={"en": "Bad"})
    report = asyncio.run(check_connector(broken))
    manifest = report.checks[0]
    assert manifest.name == "manifest" and not manifest.ok
    assert any(detail.startswith("/name:") for detail in manifest.details)
    assert any(detail.startswith("/version:") for detail in manifest.details)


@pytest.mark.parametrize(("expected", "actual", "problem"), [
    ({"a": 1}, {"a": 1, "b": 2}, None),
    ({"a": {"b": [1, {"c": True}]}}, {"a": {"b": [1, {"c": True, "d": 0}]}}, None),
    ({"a": 1}, {"b": 1}, "/a: missing (expected 1)"),
    ({"a": [1]}, {"a": [1, 2]}, "/a: expected 1 item(s), got 2"),
    ({"a": 1}, {"a": True}, "/a: expected 1, got true"),
    ({"a": None}, {"a": 0}, "/a: expected null, got 0"),
    ([{"x": 1}], {"x": 1}, "/: expected a list, got {\"x\": 1}"),
])
def test_subset_mismatch(expected: Any, actual: Any, problem: str | None) -> None:
    assert subset_mismatch(expected, actual) == problem


def test_cli_passes_the_demo_connector(tmp_path: Path) -> None:
    import flowlink_connector_demo  # noqa: F401 - installed by `make install`; its absence must fail, not skip
    text = _flowlink("connector", "test", "demo", home=tmp_path)
    assert text.returncode == 0, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "connector demo 1.2.0" and lines[-1] == "10 passed, 0 failed: ok"
    assert "  PASS  example: create_contact — A new contact: ran against the fake, output contains expect, matches the output schema" in lines
    machine = json.loads(_flowlink("connector", "test", "demo", "--json", home=tmp_path).stdout)
    assert machine["ok"] is True and machine["connector"] == "demo" and machine["failed"] == 0
    assert {check["name"] for check in machine["checks"]} >= {"manifest", "sandbox", "example: greet — Greet in Chinese"}


def test_cli_exits_non_zero_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A connector that needs a platform but ships no fake, with an action without an example, fails."""
    import engine.cli
    from connectors.sdk import Connector, ConnectorRegistry

    broken = Connector(name="broken", version="1.0.0", title={"en": "Broken"}, base_url="https://api.example.com", auth="bearer")

    @broken.action("ping")
    def ping(ctx, inp):  # noqa: ANN001, ANN202 - the smallest possible action
        return {"pong": True}

    monkeypatch.setattr(engine.cli, "_registry", lambda: ConnectorRegistry([broken]))
    assert engine.cli.main(["connector", "test", "broken"]) == 1
    out = capsys.readouterr().out
    assert "  FAIL  sandbox: connector 'broken' declares no sandbox" in out
    assert "  FAIL  example: ping: action ping has no example to run against the fake" in out
    assert out.splitlines()[-1].endswith("FAILED")
    unknown = _flowlink("connector", "test", "nope", home=tmp_path)
    assert unknown.returncode == 1 and "unknown connector 'nope'" in unknown.stderr



@pytest.mark.parametrize("name", ["core", "http", "demo"])
def test_every_installed_connector_passes_its_contract(tmp_path: Path, name: str) -> None:
    result = _flowlink("connector", "test", name, home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith("0 failed: ok")
