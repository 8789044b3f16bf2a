"""The `flowlink` command line."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _read_input(value: str | None) -> Any:
    """`--input` as inline JSON or `@file`."""
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--input is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


# ---------------------------------------------------------------------------- validate


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate flow files; print every issue with its JSON pointer."""
    from engine.validation import load_flow_text

    failed = False
    report = []
    for name in args.files:
        path = Path(name)
        try:
            text = path.read_bytes()
        except OSError as exc:
            failed = True
            report.append({"file": name, "ok": False, "issues": [{"pointer": "", "message": f"cannot read file: {exc.strerror}", "stage": "read"}]})
            continue
        result = load_flow_text(text)
        failed |= not result.ok
        report.append({"file": name, "ok": result.ok, "issues": [i.to_dict() for i in result.issues]})
    if args.json:
        _print_json(report)
    else:
        for entry in report:
            if entry["ok"]:
                print(f"{entry['file']}: ok")
            for issue in entry["issues"]:
                print(f"{entry['file']}:{issue['pointer'] or '/'}: {issue['message']}")
    return EXIT_FAILED if failed else EXIT_OK


# ---------------------------------------------------------------------------- run


class _Progress:
    """Prints each step as it finishes, so long runs show where they are."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def run_started(self, run: Any) -> None:
        print(f"run {run.id} of '{run.flow_id}' started ({run.lane} lane)", file=self.stream, flush=True)

    def step_finished(self, step: Any) -> None:
        mark = {"succeeded": "ok  ", "failed": "FAIL", "skipped": "skip"}.get(step.status, step.status)
        extra = ""
        if len(step.attempts) > 1:
            extra = f", {len(step.attempts)} attempts"
        if step.error:
            extra += f" - {step.error.get('type')}: {step.error.get('message')}"
        ms = (step.ended_at - step.started_at) * 1000
        print(f"  [{mark}] {step.path} ({ms:.0f} ms{extra})", file=self.stream, flush=True)

    def run_finished(self, run: Any) -> None:
        print(f"run {run.id} {run.status}", file=self.stream, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    """Validate and run a flow file; print the run record as JSON."""
    from engine.runtime import FlowEngine, FlowInvalid
    from engine.validation import parse_json

    text = Path(args.file).read_bytes()
    doc, issues = parse_json(text)
    if issues:
        for issue in issues:
            print(f"{args.file}:{issue}", file=sys.stderr)
        return EXIT_USAGE
    if args.sample:
        sample = (doc.get("trigger") or {}).get("sample") if isinstance(doc, dict) else None
        if sample is None:
            print(f"{args.file}: the trigger has no sample data (trigger.sample)", file=sys.stderr)
            return EXIT_USAGE
        trigger = sample
    else:
        trigger = _read_input(args.input)
    engine = FlowEngine()
    try:
        try:
            flow = engine.compile(doc)
        except FlowInvalid as exc:
            for issue in exc.issues:
                print(f"{args.file}:{issue}", file=sys.stderr)
            return EXIT_USAGE
        observer = None if args.quiet else _Progress(sys.stderr)
        run = asyncio.run(_run(engine, flow, trigger, args.lane, observer))
        engine.flush()
        stored = engine.runs.get(run.id) or run
        _print_json(stored.to_dict())
        return EXIT_OK if run.status == "succeeded" else EXIT_FAILED
    finally:
        engine.close()


async def _run(engine: Any, flow: Any, trigger: Any, lane: str | None, observer: Any) -> Any:
    from connectors.sdk.http import close_shared_client

    try:
        return await engine.run(flow, trigger, lane=lane, observer=observer, log=lambda m: print(f"  log: {m}", file=sys.stderr))
    finally:
        await close_shared_client()


# ---------------------------------------------------------------------------- runs


def cmd_runs_list(args: argparse.Namespace) -> int:
    """List runs newest first."""
    from engine.store.db import make_engine, migrate
    from engine.store.runs import RunStore

    db = make_engine()
    migrate(db)
    runs = RunStore(db).list(flow_id=args.flow, status=args.status, limit=args.limit)
    if args.json:
        _print_json([r.to_dict(with_steps=False) for r in runs])
        return EXIT_OK
    if not runs:
        print("no runs")
        return EXIT_OK
    print(f"{'RUN ID':36}  {'FLOW':24}  {'STATUS':9}  {'LANE':7}  {'STARTED':19}  {'MS':>8}  ERROR")
    for r in runs:
        ms = "-" if r.ended_at is None else f"{(r.ended_at - r.started_at) * 1000:.0f}"
        err = f"{r.error.get('type')}: {r.error.get('message')}" if r.error else ""
        print(f"{r.id:36}  {r.flow_id[:24]:24}  {r.status:9}  {r.lane:7}  {_when(r.started_at):19}  {ms:>8}  {err[:80]}")
    return EXIT_OK


def cmd_runs_show(args: argparse.Namespace) -> int:
    """Show one run with every step, attempt and error."""
    from engine.store.db import make_engine, migrate
    from engine.store.runs import RunStore

    db = make_engine()
    migrate(db)
    run = RunStore(db).get(args.run_id)
    if run is None:
        print(f"no run with id {args.run_id}", file=sys.stderr)
        return EXIT_FAILED
    data = run.to_dict()
    if args.json:
        _print_json(data)
        return EXIT_OK
    version = f"v{data['flow_version']}" if data["flow_version"] else "(from a file)"
    print(f"run {data['id']}\n  flow: {data['flow_id']} {version}  lane: {data['lane']}  status: {data['status']}")
    print(f"  started: {_when(data['started_at'])}  duration: {data['duration_ms']} ms")
    if data["prefect_flow_run_id"]:
        print(f"  prefect flow run: {data['prefect_flow_run_id']}")
    if data["error"]:
        print(f"  error: {data['error'].get('type')} at {data['error'].get('step')}: {data['error'].get('message')}")
    print(f"  output: {json.dumps(data['output'], ensure_ascii=False)[:500]}")
    print("  steps:")
    for step in data["steps"]:
        print(f"    {step['seq']:>3}. {step['path']} [{step['type']}] {step['status']} ({step['duration_ms']} ms)")
        if step["input"] is not None:
            print(f"         input:  {json.dumps(step['input'], ensure_ascii=False)[:300]}")
        if step["output"] is not None:
            print(f"         output: {json.dumps(step['output'], ensure_ascii=False)[:300]}")
        if step["error"] and not any("error" in a for a in step["attempts"]):
            print(f"         error: {step['error'].get('type')}: {step['error'].get('message')}")
        for attempt in step["attempts"]:
            if "error" in attempt:
                retry = f", retry in {attempt['retry_in']:.2f}s" if "retry_in" in attempt else ""
                print(f"         attempt {attempt['attempt']}: {attempt['error']['type']}: {attempt['error']['message']}{retry}")
    return EXIT_OK


# ---------------------------------------------------------------------------- connections


def _connection_store():
    from engine.credentials import ConnectionStore
    from engine.store.db import make_engine, migrate

    db = make_engine()
    migrate(db)
    return ConnectionStore(db)


def cmd_connections_set(args: argparse.Namespace) -> int:
    """Create or replace a connection from KEY=VALUE fields (VALUE '-' reads stdin)."""
    fields: dict[str, Any] = {}
    for item in args.field:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"--field {item!r} is not KEY=VALUE", file=sys.stderr)
            return EXIT_USAGE
        fields[key] = sys.stdin.readline().rstrip("\n") if value == "-" else value
    _connection_store().put(args.name, args.connector, fields, actor=os.environ.get("USER", "cli"))
    print(f"connection '{args.name}' saved ({len(fields)} fields encrypted)")
    return EXIT_OK


def cmd_connections_list(args: argparse.Namespace) -> int:
    """List connections (names and field names only)."""
    rows = _connection_store().list()
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            print(f"{row['name']:24} {row['connector']:16} fields: {', '.join(row['public']['fields'])}")
    return EXIT_OK


def cmd_connections_delete(args: argparse.Namespace) -> int:
    """Delete a connection."""
    if _connection_store().delete(args.name, actor=os.environ.get("USER", "cli")):
        print(f"connection '{args.name}' deleted")
        return EXIT_OK
    print(f"no connection '{args.name}'", file=sys.stderr)
    return EXIT_FAILED


def cmd_connections_rotate(args: argparse.Namespace) -> int:
    """Re-encrypt every connection with the first key of FLOWLINK_SECRET_KEY."""
    count = _connection_store().rotate(actor=os.environ.get("USER", "cli"))
    print(f"re-encrypted {count} connection(s) with the primary key")
    return EXIT_OK


# ---------------------------------------------------------------------------- connectors


def _registry() -> Any:
    from connectors.sdk import ConnectorRegistry

    return ConnectorRegistry.discover()


def _width(text: str) -> int:
    """Terminal columns of a string (CJK characters take two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _title(title: dict[str, str]) -> str:
    en, zh = title.get("en", ""), title.get("zh")
    return f"{en} ({zh})" if zh and zh != en else en


def cmd_connectors_list(args: argparse.Namespace) -> int:
    """Every installed connector with its version, actions and triggers."""
    from connectors.sdk.manifest import validate_manifest

    rows = []
    for name in sorted((registry := _registry()).connectors):
        manifest = registry.connectors[name].manifest()
        rows.append({
            "name": name,
            "version": manifest["version"],
            "title": manifest["title"],
            "description": manifest.get("description", ""),
            "actions": list(manifest["actions"]),
            "triggers": list(manifest["triggers"]),
            "issues": [i.to_dict() for i in validate_manifest(manifest)],
        })
    if args.json:
        _print_json(rows)
        return EXIT_OK
    table = [("NAME", "VERSION", "TITLE", "ACTIONS", "TRIGGERS")]
    table += [(r["name"], r["version"], _title(r["title"]), ", ".join(r["actions"]) or "-", ", ".join(r["triggers"]) or "-") for r in rows]
    widths = [max(_width(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row[:4])) + "  " + row[4])
    for r in rows:
        if r["issues"]:
            print(f"warning: connector '{r['name']}' has {len(r['issues'])} manifest issue(s); see: flowlink connectors show {r['name']}", file=sys.stderr)
    return EXIT_OK


def _type_of(schema: dict[str, Any]) -> str:
    """A short description of a property's type, e.g. ``"en" | "zh"`` or ``list of string``."""
    if "enum" in schema:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_type_of(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {_type_of(schema.get('items') or {})}"
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind or "any"


def _print_fields(schema: dict[str, Any], indent: str) -> None:
    required = set(schema.get("required") or ())
    props = schema.get("properties") or {}
    if not props:
        print(f"{indent}(any object)" if schema.get("additionalProperties", True) is not False else f"{indent}(none)")
        return
    for name, prop in props.items():
        notes = [_type_of(prop)]
        if name in required:
            notes.append("required")
        if "default" in prop and prop["default"] is not None:
            notes.append(f"default {json.dumps(prop['default'], ensure_ascii=False)}")
        if prop.get("x-secret"):
            notes.append("secret")
        if prop.get("x-multiline"):
            notes.append("multi-line")
        if isinstance(prop.get("x-options"), dict):
            notes.append(f"choices from {prop['x-options'].get('action')}")
        if prop.get("x-depends-on"):
            notes.append(f"after {', '.join(prop['x-depends-on'])}")
        text = prop.get("description") or ""
        print(f"{indent}{name}: {', '.join(notes)}" + (f" — {text}" if text else ""))


def cmd_connectors_show(args: argparse.Namespace) -> int:
    """One connector's manifest: JSON with --json, else a readable summary."""
    from connectors.sdk.manifest import validate_manifest

    registry = _registry()
    connector = registry.connectors.get(args.name)
    if connector is None:
        known = ", ".join(sorted(registry.connectors)) or "none"
        print(f"flowlink: unknown connector '{args.name}' (installed: {known})", file=sys.stderr)
        return EXIT_FAILED
    manifest = connector.manifest()
    issues = validate_manifest(manifest)
    if args.json:
        _print_json(manifest)
    else:
        print(f"{manifest['name']} {manifest['version']} — {_title(manifest['title'])}")
        if manifest.get("description"):
            print(manifest["description"])
        for key in ("categories", "homepage"):
            value = manifest.get(key)
            if value:
                print(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
        connection = manifest.get("connection")
        if connection:
            print(f"connection ({', '.join(connection.get('kinds') or ()) or 'fields below'}):")
            if "schema" in connection:
                _print_fields(connection["schema"], "  ")
        print("actions:")
        for name, action in manifest["actions"].items():
            print(f"  {manifest['name']}.{name} — {_title(action['title'])}")
            if action.get("description"):
                print(f"    {action['description']}")
            print("    input:")
            _print_fields(action["input_schema"], "      ")
            output = action.get("output_schema")
            if output and output.get("properties"):
                print(f"    output: {', '.join(output['properties'])}")
            for policy in action.get("default_retry") or ():
                print(f"    default retry: {', '.join(policy.get('errors', ['*']))} up to {policy.get('max_attempts', 3)} attempts")
        print("triggers:" + ("" if manifest["triggers"] else " none"))
        for name, trigger in manifest["triggers"].items():
            print(f"  {manifest['name']}.{name} ({trigger.get('kind')})" + (f" — {_title(trigger['title'])}" if trigger.get("title") else ""))
    for issue in issues:
        print(f"manifest issue: {issue}", file=sys.stderr)
    return EXIT_FAILED if issues else EXIT_OK


# ---------------------------------------------------------------------------- connector new/test, sandbox


def cmd_connector_new(args: argparse.Namespace) -> int:
    """Scaffold a connector package that passes its own tests."""
    from connectors.sdk.scaffold import ScaffoldError, scaffold

    try:
        package = scaffold(args.name, Path(args.dir))
    except ScaffoldError as exc:
        print(f"flowlink: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.usage else EXIT_FAILED
    print(f"created {package}")
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(package)}")
    print("next:")
    print(f"  pip install -e {package}")
    print(f"  python -m pytest {package / 'tests'}")
    print(f"  flowlink connector test {args.name}")
    return EXIT_OK


def _find_connector(name: str) -> Any:
    registry = _registry()
    connector = registry.connectors.get(name)
    if connector is None:
        known = ", ".join(sorted(registry.connectors)) or "none"
        print(f"flowlink: unknown connector '{name}' (installed: {known})", file=sys.stderr)
    return connector


def cmd_connector_test(args: argparse.Namespace) -> int:
    """Run the contract kit against an installed connector."""
    from connectors.sdk.contract import run_contract

    connector = _find_connector(args.name)
    if connector is None:
        return EXIT_FAILED
    report = run_contract(connector)
    if args.json:
        _print_json(report.to_dict())
    else:
        print("\n".join(report.lines()))
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Serve the fakes of the named connectors (all that have one) on 127.0.0.1 until Ctrl-C/SIGTERM."""
    import signal
    import threading

    from connectors.sdk.sandbox import SandboxError, has_sandbox, start_sandbox

    registry = _registry()
    if args.names:
        chosen = []
        for name in args.names:
            connector = registry.connectors.get(name)
            if connector is None:
                known = ", ".join(sorted(registry.connectors)) or "none"
                print(f"flowlink: unknown connector '{name}' (installed: {known})", file=sys.stderr)
                return EXIT_FAILED
            if not has_sandbox(connector):
                print(f"flowlink: connector '{name}' declares no sandbox", file=sys.stderr)
                return EXIT_FAILED
            chosen.append(connector)
    else:
        chosen = [registry.connectors[n] for n in sorted(registry.connectors) if has_sandbox(registry.connectors[n])]
        if not chosen:
            print("flowlink: no installed connector declares a sandbox", file=sys.stderr)
            return EXIT_FAILED
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    servers = []
    try:
        for i, connector in enumerate(chosen):
            try:
                servers.append(start_sandbox(connector, args.port + i if args.port else None))
            except SandboxError as exc:
                print(f"flowlink: {exc}", file=sys.stderr)
                return EXIT_FAILED
            print(f"{connector.name}\t{servers[-1].base_url}", flush=True)
        print("sandboxes running; Ctrl-C to stop", file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            if not all(server.thread.is_alive() for server in servers):
                print("flowlink: a sandbox server stopped", file=sys.stderr)
                return EXIT_FAILED
        return EXIT_OK
    finally:
        for server in servers:
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the HTTP service (API) with uvicorn."""
    import uvicorn

    from api.main import create_app

    from engine.logs import configure

    configure(level=args.log_level)
    app = create_app(load_examples=args.load_examples)
    print(f"Flowlink serving on http://{args.host}:{args.port} (API docs at /api/docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False, log_config=None)
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check configuration, database, migrations, inbox, Prefect, connectors and the UI build."""
    from engine.doctor import FAIL, run_checks

    checks = run_checks()
    if args.json:
        print(json.dumps([c.to_dict() for c in checks], ensure_ascii=False, indent=2))
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        for check in checks:
            print(f"{marks[check.status]}  {check.name:<11} {check.detail}")
    return EXIT_FAILED if any(c.status == FAIL for c in checks) else EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete run history past its retention (and vacuum on request)."""
    from engine.store.db import make_engine, migrate
    from engine.store.retention import prune, vacuum

    engine = make_engine()
    migrate(engine)
    result = prune(engine, args.days)
    print(json.dumps(result.to_dict(), ensure_ascii=False))
    if args.vacuum:
        vacuum(engine)
        print("vacuumed", file=sys.stderr)
    engine.dispose()
    return EXIT_OK


def cmd_erase(args: argparse.Namespace) -> int:
    """Remove a person's data from run history and data tables (or count it with --dry-run)."""
    from engine.store.db import make_engine, migrate
    from engine.store.retention import erase_subject

    engine = make_engine()
    migrate(engine)
    try:
        result = erase_subject(engine, args.subject, actor=f"cli:{os.environ.get('USER', 'unknown')}",
                               dry_run=args.dry_run, tables=args.tables)
    except ValueError as exc:
        print(f"flowlink: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    print(json.dumps(result.to_dict(), ensure_ascii=False))
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    """Execute runs from the shared inbox, and schedules and polls, until SIGTERM."""
    from api.worker import run_worker
    from engine.logs import configure
    from engine.process import lower_priority

    configure()
    if args.concurrency:
        os.environ["FLOWLINK_MAX_CONCURRENT_RUNS"] = str(args.concurrency)
    nice = args.nice if args.nice is not None else int(os.environ.get("FLOWLINK_WORKER_NICE", "0") or 0)
    lower_priority(nice)
    asyncio.run(run_worker(grace=args.grace, schedules=not args.no_schedules))
    return EXIT_OK


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="flowlink", description="Flowlink workflow automation")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate flow definition files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the issues as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a flow file once and print the run record")
    p.add_argument("file", metavar="FILE")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--input", help="trigger payload: inline JSON or @file.json")
    source.add_argument("--sample", action="store_true", help="use the trigger's sample data as the payload")
    p.add_argument("--lane", choices=["event", "tracked"], help="override the flow's execution lane")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="run history").add_subparsers(dest="runs_command", required=True)
    p = runs.add_parser("list", help="list runs, newest first")
    p.add_argument("--flow", help="only this flow id")
    p.add_argument("--status", choices=["running", "succeeded", "failed", "cancelled"])
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs_list)
    p = runs.add_parser("show", help="show a run with its steps, attempts and errors")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs_show)

    p = sub.add_parser("serve", help="start the HTTP service")
    p.add_argument("--host", default=os.environ.get("FLOWLINK_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("FLOWLINK_PORT", "8400")))
    p.add_argument("--load-examples", action="store_true", help="store the flows of flows/ that are not stored yet")
    p.add_argument("--log-level", default=os.environ.get("FLOWLINK_LOG_LEVEL", "info").lower(),
                   choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("prune", help="delete run history older than the retention (FLOWLINK_RETENTION_DAYS, default 30)")
    p.add_argument("--days", type=float, default=None, help="retention in days (default FLOWLINK_RETENTION_DAYS)")
    p.add_argument("--vacuum", action="store_true", help="then rewrite the database file (SQLite; locks it meanwhile)")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("erase", help="right to erasure: remove every run payload that contains SUBJECT and "
                                     "the data-table rows holding it (audited)")
    p.add_argument("subject", metavar="SUBJECT", help="a phone number, external user id, e-mail address ...")
    p.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    p.add_argument("--tables", action=argparse.BooleanOptionalAction, default=True,
                   help="also delete data-table rows with a field equal to SUBJECT (default: on)")
    p.set_defaults(func=cmd_erase)

    p = sub.add_parser("doctor", help="check configuration, database, migrations, Prefect and connectors (changes nothing)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("worker", help="execute runs from the shared inbox (no HTTP); several may run at once")
    p.add_argument("--concurrency", type=int, default=None, help="runs at once (default FLOWLINK_MAX_CONCURRENT_RUNS or 32)")
    p.add_argument("--grace", type=float, default=None, help="seconds to let in-flight runs finish on SIGTERM (default 25)")
    p.add_argument("--no-schedules", action="store_true", help="do not fire schedules and polls in this worker")
    p.add_argument("--nice", type=int, default=None,
                   help="lower the CPU priority by N (default FLOWLINK_WORKER_NICE or 0); beside an API process on the same "
                        "machine, 10 keeps webhook acknowledgements fast while runs take the remaining CPU")
    p.set_defaults(func=cmd_worker)

    conns = sub.add_parser("connections", help="stored credentials (encrypted at rest)").add_subparsers(dest="conn_command", required=True)
    p = conns.add_parser("set", help="create or replace a connection")
    p.add_argument("name")
    p.add_argument("--connector", required=True)
    p.add_argument("--field", action="append", default=[], metavar="KEY=VALUE", help="a field; VALUE '-' reads a line from stdin")
    p.set_defaults(func=cmd_connections_set)
    p = conns.add_parser("list", help="list connections without secrets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_connections_list)
    p = conns.add_parser("delete", help="delete a connection")
    p.add_argument("name")
    p.set_defaults(func=cmd_connections_delete)
    p = conns.add_parser("rotate-keys", help="re-encrypt all connections with the primary key")
    p.set_defaults(func=cmd_connections_rotate)

    connectors = sub.add_parser("connectors", help="installed connectors and their manifests").add_subparsers(dest="connectors_command", required=True)
    p = connectors.add_parser("list", help="list connectors with their version, actions and triggers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_connectors_list)
    p = connectors.add_parser("show", help="show a connector's manifest")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="the manifest as JSON (schemas/connector.schema.json)")
    p.set_defaults(func=cmd_connectors_show)

    connector = sub.add_parser("connector", help="write and check a connector").add_subparsers(dest="connector_command", required=True)
    p = connector.add_parser("new", help="scaffold a connector package (manifest, action, trigger, fake, tests)")
    p.add_argument("name", metavar="NAME", help="the connector name: lower case letters, digits, _")
    p.add_argument("--dir", default=".", metavar="D", help="where to create flowlink-connector-NAME/ (default: .)")
    p.set_defaults(func=cmd_connector_new)
    p = connector.add_parser("test", help="run the contract kit: manifest, schemas, trigger samples, examples against the fake")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_connector_test)

    p = sub.add_parser("sandbox", help="serve connectors' fake platforms on 127.0.0.1 until Ctrl-C")
    p.add_argument("names", nargs="*", metavar="NAME", help="connectors to serve (default: every one with a sandbox)")
    p.add_argument("--port", type=int, help="port of the first sandbox, the next ones count up (default: free ports)")
    p.set_defaults(func=cmd_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `flowlink` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except FileNotFoundError as exc:
        print(f"flowlink: {exc.filename}: no such file", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
