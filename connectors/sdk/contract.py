"""The contract kit: what ``flowlink connector test NAME`` checks about a connector.

1. ``manifest``: the manifest is valid against ``schemas/connector.schema.json`` (and the rules
   :func:`connectors.sdk.manifest.validate_manifest` adds);
2. ``schemas: <action>``: every action's input and output schemas are valid JSON Schemas;
3. ``trigger sample: <trigger>``: a trigger's sample data is valid against its output schema
   (when it declares one);
4. ``sandbox`` and ``example: <action> ...``: every action example runs through the real engine
   (a one-step flow on :class:`engine.interpreter.Interpreter`) against a fresh fake of the
   platform (``connector.sandbox()``, served on 127.0.0.1). The step's connection is the
   example's ``connection`` with ``base_url`` set to the fake's address; the fake's address is
   also the flow variable ``sandbox_url``, so inputs may say ``"{{ vars.sandbox_url }}"``.
   The run must succeed, its output must contain the example's ``expect`` (a recursive subset:
   objects may have more keys, lists must have the same length) and be valid against the
   action's output schema. An action without an example fails: every action is exercised.

:func:`check_connector` returns a :class:`ContractReport`; nothing here raises for a bad
connector.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import jsonschema

#: The name of the connection the example steps use, and the flow variable with the fake's URL.
SANDBOX_CONNECTION = "sandbox"
SANDBOX_URL_VAR = "sandbox_url"


@dataclass
class Check:
    """One check's result: a name, pass/fail, a one-line message and detail lines."""

    name: str
    ok: bool
    message: str = ""
    details: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "message": self.message, "details": list(self.details)}


@dataclass
class ContractReport:
    """Every check of one connector."""

    connector: str
    version: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "version": self.version,
            "ok": self.ok,
            "passed": len(self.checks) - len(self.failed),
            "failed": len(self.failed),
            "checks": [check.to_dict() for check in self.checks],
        }

    def lines(self) -> list[str]:
        """The report as text: one ``PASS``/``FAIL`` line per check, details indented, a total."""
        out = [f"connector {self.connector} {self.version}"]
        for check in self.checks:
            out.append(f"  {'PASS' if check.ok else 'FAIL'}  {check.name}: {check.message}")
            out.extend(f"          {detail}" for detail in check.details)
        verdict = "ok" if self.ok else "FAILED"
        out.append(f"{len(self.checks) - len(self.failed)} passed, {len(self.failed)} failed: {verdict}")
        return out


# ---------------------------------------------------------------------------- static checks


def check_manifest(connector: Any) -> Check:
    """The manifest builds and is valid against the connector schema."""
    from connectors.sdk.manifest import validate_manifest

    try:
        manifest = connector.manifest()
    except Exception as exc:
        return Check("manifest", False, f"the manifest cannot be built: {type(exc).__name__}: {exc}")
    issues = validate_manifest(manifest)
    if issues:
        return Check("manifest", False, f"{len(issues)} issue(s) against schemas/connector.schema.json",
                     [f"{issue.pointer or '/'}: {issue.message}" for issue in issues])
    return Check("manifest", True, "valid against schemas/connector.schema.json")


def _schema_problem(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return f"a JSON Schema must be an object, not {type(schema).__name__}"
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return f"{exc.message}" + (f" (at /{where})" if where else "")
    return None


def check_action_schemas(action: Any) -> Check:
    """The action's input schema, and its output schema when declared, are valid JSON Schemas."""
    name = f"schemas: {action.name}"
    details: list[str] = []
    output: dict[str, Any] | None = None
    for label, build in (("input", action.input_schema), ("output", action.output_json_schema)):
        try:
            schema = build()
        except Exception as exc:
            details.append(f"{label} schema cannot be built: {type(exc).__name__}: {exc}")
            continue
        if label == "output":
            output = schema
        if schema is not None and (problem := _schema_problem(schema)):
            details.append(f"{label} schema: {problem}")
    if details:
        return Check(name, False, "invalid JSON Schema", details)
    return Check(name, True, "input and output schemas are valid JSON Schemas" if output is not None
                 else "input schema is a valid JSON Schema (no output schema declared)")


def check_trigger_sample(name: str, trigger: Any) -> Check:
    """The trigger's sample is valid against its output schema (passes, noted, when none is declared)."""
    from connectors.sdk.manifest import trigger_manifest

    check = f"trigger sample: {name}"
    try:
        entry = trigger_manifest(trigger)
    except Exception as exc:
        return Check(check, False, f"the trigger's manifest cannot be built: {type(exc).__name__}: {exc}")
    schema = entry.get("output_schema")
    sample = entry.get("sample", getattr(trigger, "sample", None))
    if schema is None:
        return Check(check, True, "no output schema declared; sample not checked")
    if problem := _schema_problem(schema):
        return Check(check, False, f"output schema: {problem}")
    if sample is None:
        return Check(check, False, "the trigger declares an output schema but no sample")
    errors = _instance_errors(sample, schema)
    if errors:
        return Check(check, False, "sample does not match the output schema", errors)
    return Check(check, True, "sample matches the output schema")


def _instance_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


# ---------------------------------------------------------------------------- examples


def examples_of(action: Any) -> list[dict[str, Any]]:
    """The action's examples as dicts (``title``, ``input``, ``connection``, ``expect``)."""
    found = []
    for example in getattr(action, "examples", None) or ():
        if isinstance(example, dict):
            found.append(example)
        else:  # an example object with attributes
            found.append({key: getattr(example, key) for key in ("title", "input", "connection", "expect") if getattr(example, key, None) is not None})
    return found


def subset_mismatch(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where `actual` does not contain `expected` (None when it does).

    Objects: every expected key must be present with a containing value (more keys are fine);
    lists: same length, each item containing the expected one; anything else: equal.
    """
    where = path or "/"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {_short(actual)}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}/{key}: missing (expected {_short(value)})"
            if problem := subset_mismatch(value, actual[key], f"{path}/{key}"):
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{where}: expected a list, got {_short(actual)}"
        if len(expected) != len(actual):
            return f"{where}: expected {len(expected)} item(s), got {len(actual)}"
        for i, (want, got) in enumerate(zip(expected, actual)):
            if problem := subset_mismatch(want, got, f"{path}/{i}"):
                return problem
        return None
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):  # 1 is not true
        return f"{where}: expected {_short(expected)}, got {_short(actual)}"
    return None


def _short(value: Any, limit: int = 120) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_local(connector: Any) -> bool:
    """True for a connector that talks to no platform (no base URL, auth or connection kinds):
    its examples run without a fake."""
    return not (getattr(connector, "base_url", None) or getattr(connector, "auth", None)
                or getattr(connector, "connection_kinds", ()))


def example_flow(connector: Any, action: Any, example: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The one-step flow that runs `example` of `action` against the fake at `base_url`."""
    step: dict[str, Any] = {
        "id": "example",
        "type": "action",
        "action": f"{connector.name}.{action.name}",
        "args": example.get("input") or {},
        "retry": [],
        "end": True,
    }
    if not is_local(connector):
        step["connection"] = SANDBOX_CONNECTION
    return {
        "id": f"contract-{connector.name}-{action.name}".replace("_", "-"),
        "name": f"Contract example of {connector.name}.{action.name}",
        "trigger": {"type": "manual"},
        "vars": {SANDBOX_URL_VAR: base_url},
        "steps": [step],
    }


async def run_example(connector: Any, action: Any, example: dict[str, Any], index: int) -> Check:
    """Run one example through the engine against a fresh fake; the check's result."""
    from connectors.sdk.registry import ConnectorRegistry
    from connectors.sdk.sandbox import SandboxError, start_sandbox
    from engine.interpreter import Interpreter, MappingConnections
    from engine.records import MemoryRecorder
    from engine.validation import load_flow

    title = example.get("title") or f"example {index + 1}"
    name = f"example: {action.name} — {title}"
    local = is_local(connector)
    try:
        server = None if local else await asyncio.to_thread(start_sandbox, connector)
    except SandboxError as exc:
        return Check(name, False, str(exc))
    base_url = server.base_url if server is not None else ""
    try:
        loaded = load_flow(example_flow(connector, action, example, base_url), ConnectorRegistry([connector]))
        if not loaded.ok:
            return Check(name, False, "the example is not a valid step", [f"{i.pointer}: {i.message}" for i in loaded.issues])
        connection = {**(example.get("connection") or {}), "base_url": base_url}
        run = await Interpreter(MemoryRecorder(), MappingConnections({SANDBOX_CONNECTION: connection})).execute(loaded.flow, None)
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
    if run.status != "succeeded":
        error = run.error or {}
        code = f" [{error['code']}]" if error.get("code") else ""
        return Check(name, False, f"the run {run.status}: {error.get('type', 'Error')}{code}: {error.get('message', '')}")
    output = run.output
    if "expect" in example and (problem := subset_mismatch(example["expect"], output)):
        return Check(name, False, "the output does not contain what the example expects", [problem, f"output: {_short(output, 400)}"])
    schema = action.output_json_schema()
    if schema is not None and (errors := _instance_errors(output, schema)):
        return Check(name, False, "the output does not match the action's output schema", errors)
    checked = ["ran locally" if local else "ran against the fake"]
    if "expect" in example:
        checked.append("output contains expect")
    if schema is not None:
        checked.append("matches the output schema")
    return Check(name, True, ", ".join(checked))


async def exercise_actions(connector: Any) -> list[Check]:
    """The ``sandbox`` check plus one check per example (or per action without one)."""
    from connectors.sdk.http import close_shared_client
    from connectors.sdk.sandbox import has_sandbox

    checks: list[Check] = []
    sandbox = has_sandbox(connector)
    if is_local(connector):
        sandbox = True
        checks.append(Check("sandbox", True, "not needed: the connector talks to no platform, its examples run locally"))
    elif sandbox:
        checks.append(Check("sandbox", True, "declared; every example runs against a fresh fake on 127.0.0.1"))
    else:
        checks.append(Check("sandbox", False, f"connector '{connector.name}' declares no sandbox (a factory of its fake's ASGI app), "
                                             "so its actions cannot be exercised against a fake"))
    try:
        for action in connector.actions.values():
            examples = examples_of(action)
            if not examples:
                checks.append(Check(f"example: {action.name}", False, f"action {action.name} has no example to run against the fake"))
                continue
            if not sandbox:
                continue
            for index, example in enumerate(examples):
                checks.append(await run_example(connector, action, example, index))
    finally:
        await close_shared_client()
    return checks


async def check_connector(connector: Any) -> ContractReport:
    """Every contract check of a connector, in order."""
    report = ContractReport(connector=connector.name, version=str(getattr(connector, "version", "")))
    report.checks.append(check_manifest(connector))
    for action in connector.actions.values():
        report.checks.append(check_action_schemas(action))
    for name, trigger in (getattr(connector, "triggers", None) or {}).items():
        report.checks.append(check_trigger_sample(name, trigger))
    report.checks.extend(await exercise_actions(connector))
    return report


def run_contract(connector: Any) -> ContractReport:
    """:func:`check_connector` from synchronous code (the CLI, a plain test)."""
    return asyncio.run(check_connector(connector))
