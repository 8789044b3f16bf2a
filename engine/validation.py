"""Loading a flow definition in three stages, collecting every error with its JSON pointer.

1. JSON parse (line and column);
2. the JSON Schema `schemas/flow.schema.json`;
3. semantics: step references, reachability, cycles, expressions, actions and their
   argument schemas, connections, retry policy names, cron and time zones.

`load_flow` never raises for bad input: it returns the issues.
"""
from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
from croniter import croniter

from connectors.sdk import ConnectorRegistry, UnknownAction, default_registry
from engine.errors import ErrorMatcher
from engine.expressions import (
    FUNCTION_TABLE,
    EXPR_KEY,
    ExpressionSyntaxError,
    compile_expression,
    compile_value,
    is_dynamic,
    is_expr,
    is_literal,
    iter_expressions,
)
from engine.retry import policy_from_json
from engine.pii import normalise_keys
from engine.model import (
    RESERVED_CONTEXT_KEYS,
    Branch,
    Catcher,
    Execution,
    Flow,
    Graph,
    RetryPolicy,
    Step,
)
from schemas import load_schema


@dataclass(frozen=True)
class Issue:
    """One problem in a flow definition: where (JSON pointer) and what."""

    pointer: str
    message: str
    stage: str = "semantics"

    def to_dict(self) -> dict[str, str]:
        """JSON shape used by the CLI and the API."""
        return {"pointer": self.pointer, "message": self.message, "stage": self.stage}

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


@dataclass
class LoadResult:
    """The compiled flow, or the issues that stopped it."""

    flow: Flow | None
    issues: list[Issue]

    @property
    def ok(self) -> bool:
        """True when the flow compiled without issues."""
        return self.flow is not None and not self.issues


@functools.lru_cache(maxsize=1)
def _flow_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema("flow"))


def pointer_of(path: Iterable[Any]) -> str:
    """JSON pointer for a jsonschema path."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _schema_issues(doc: Any) -> list[Issue]:
    try:
        errors = sorted(_flow_validator().iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    except RecursionError:
        return [Issue("", "the definition is nested too deeply to validate", "schema")]
    issues = []
    seen = set()
    for error in errors:
        for pointer, message in _schema_problems(error):
            # if/then wrappers repeat the error of their `then`; report each place once per message
            if (pointer, message) in seen:
                continue
            seen.add((pointer, message))
            issues.append(Issue(pointer, message, "schema"))
    return issues


def _schema_problems(error: jsonschema.ValidationError, base: str = "") -> list[tuple[str, str]]:
    """(pointer, message) pairs for one jsonschema error, `base` prefixed to each pointer.

    Unknown properties point at the property itself; a failed `oneOf` whose value has the
    type of exactly one alternative reports that alternative's own errors (so a retry
    policy with `max_attempts: 0` points at `max_attempts`).
    """
    pointer = base + pointer_of(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False and isinstance(error.instance, dict):
        extras = _unknown_keys(error.instance, error.schema)
        if extras:
            return [(f"{pointer}/{_escape_key(key)}", f"unknown property '{key}'") for key in extras]
    if error.validator == "oneOf" and error.context:
        branches: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        fitting = [
            subs for subs in branches.values()
            if not any(sub.validator == "type" and not sub.relative_path for sub in subs)
        ]
        if len(fitting) == 1:
            out = []
            for sub in fitting[0]:
                out += _schema_problems(sub, base)
            return out
    return [(pointer, _schema_message(error))]


def _unknown_keys(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    known = schema.get("properties") or {}
    patterns = list((schema.get("patternProperties") or {}).keys())
    return [key for key in instance if key not in known and not any(re.search(p, key) for p in patterns)]


def _escape_key(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _json_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


#: Friendlier words for the schema's patterns: pattern -> (what the value is, the rule).
_PATTERN_RULES = {
    "^[A-Za-z_][A-Za-z0-9_]{0,63}$": ("step id", "start with a letter or '_', then letters, digits or '_' (64 characters at most)"),
    "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$": ("flow id", "start with a letter or digit, then letters, digits, '_', '.' or '-' (100 characters at most)"),
    "^[A-Za-z][A-Za-z0-9_.]*$": ("error name", "start with a letter, then letters, digits, '_' or '.'"),
    "^[a-z][a-z0-9_]*(@[^.]+)?\\.[a-z][a-z0-9_]*$": ("action", "use <connector>.<action> or <connector>@<version range>.<action>, in lower case"),
    "^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$": ("path", "start with a letter or digit, then letters, digits, '_', '.', '/' or '-'"),
    "^[A-Za-z_][A-Za-z0-9_]*$": ("context key", "start with a letter or '_', then letters, digits or '_'"),
}


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "pattern" and error.validator_value in _PATTERN_RULES:
        what, rule = _PATTERN_RULES[error.validator_value]
        return f"'{error.instance}' is not a valid {what}: {rule}"
    if error.validator == "pattern" and list(error.absolute_path) == ["trigger", "type"]:
        return f"unknown trigger type '{error.instance}' (expected manual, webhook, schedule, poll or <connector>.<trigger>)"
    if error.validator == "pattern" and list(error.absolute_path) == ["trigger", "source"]:
        return f"'{error.instance}' is not a valid poll source: use <connector>.<trigger>, in lower case"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required property '{missing}'"
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown property")
    if error.validator == "not" and error.validator_value == {"required": ["next", "end"]}:
        return "a step takes either 'next' or 'end', not both"
    if error.validator == "const":
        return f"must be {json.dumps(error.validator_value)}" + (" (leave it out otherwise)" if error.validator_value is True else "")
    if error.validator == "oneOf":
        if {"$ref": "#/$defs/retryPolicy"} in error.validator_value:
            return f"expected a retry policy object or the name of one in retry_policies, got {_json_name(error.instance)}"
        kinds = [alt.get("type") for alt in error.validator_value if isinstance(alt, dict) and isinstance(alt.get("type"), str)]
        if kinds:
            return f"expected {' or '.join(kinds)}, got {_json_name(error.instance)}"
    return error.message


def parse_json(text: str | bytes) -> tuple[Any, list[Issue]]:
    """Stage 1: parse JSON text, naming line and column on failure."""
    try:
        return json.loads(text), []
    except json.JSONDecodeError as exc:
        return None, [Issue("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", "parse")]
    except UnicodeDecodeError as exc:
        return None, [Issue("", f"invalid JSON: not UTF-8 ({exc.reason})", "parse")]
    except RecursionError:
        return None, [Issue("", "invalid JSON: nested too deeply", "parse")]


def load_flow_text(
    text: str | bytes,
    registry: ConnectorRegistry | None = None,
    connections: Mapping[str, str] | None = None,
) -> LoadResult:
    """All three stages from JSON text."""
    doc, issues = parse_json(text)
    if issues:
        return LoadResult(None, issues)
    return load_flow(doc, registry, connections)


def load_flow(
    doc: Any,
    registry: ConnectorRegistry | None = None,
    connections: Mapping[str, str] | None = None,
) -> LoadResult:
    """Stages 2 and 3 from a parsed document.

    `connections` maps stored connection names to their connector; when given, a step's
    `connection` must exist there and belong to the step's connector.
    """
    issues = _schema_issues(doc)
    if issues:
        return LoadResult(None, issues)
    builder = _Builder(doc, registry or default_registry(), connections)
    try:
        flow = builder.build()
    except RecursionError:
        return LoadResult(None, builder.issues + [Issue("", "the definition is nested too deeply")])
    return LoadResult(flow if not builder.issues else None, builder.issues)


class _Builder:
    """Compiles a schema-valid document, collecting semantic issues."""

    def __init__(self, doc: dict[str, Any], registry: ConnectorRegistry, connections: Mapping[str, str] | None) -> None:
        self.doc = doc
        self.registry = registry
        self.connections = connections
        self.issues: list[Issue] = []
        self.all_steps: dict[str, Step] = {}
        self.owner: dict[str, str] = {}  # step id -> pointer of the graph that holds it
        self.policies: dict[str, RetryPolicy] = {}
        self.ambiguous: set[str] = set()  # pointers of graphs with a duplicate step id
        self.uncompiled_edges: dict[str, list[str]] = {}  # step pointer -> targets of choices that failed to compile

    def error(self, pointer: str, message: str) -> None:
        self.issues.append(Issue(pointer, message))

    # ------------------------------------------------------------------ top level

    def build(self) -> Flow | None:
        doc = self.doc
        for name, policy in (doc.get("retry_policies") or {}).items():
            self.policies[name] = self._policy(policy)
        self._check_trigger(doc["trigger"])
        self._check_expressions(doc.get("vars"), "/vars", allow=False)
        self._collect_ids(doc["steps"], "/steps")
        graph = self._graph(doc["steps"], doc.get("start"), "")
        output = self._value(doc.get("output"), "/output") if "output" in doc else None
        ex = doc.get("execution") or {}
        execution = Execution(
            lane=ex.get("lane", "auto"),
            timeout=ex.get("timeout"),
            max_steps=ex.get("max_steps", 10_000),
            max_step_input_bytes=ex.get("max_step_input_bytes", Execution.max_step_input_bytes),
            max_output_bytes=ex.get("max_output_bytes", Execution.max_output_bytes),
            sensitive=normalise_keys(ex.get("sensitive")),
            retention_days=ex.get("retention_days"),
        )
        if graph is None:
            return None
        self._check_graph(graph)
        return Flow(
            id=doc["id"],
            name=doc["name"],
            version=doc.get("version"),
            trigger=doc["trigger"],
            vars=compile_value(doc.get("vars") or {})({}),
            graph=graph,
            output=output,
            execution=execution,
            definition=doc,
            description=doc.get("description", ""),
            all_steps=self.all_steps,
        )

    def _check_trigger(self, trigger: dict[str, Any]) -> None:
        kind = trigger["type"]
        if kind == "schedule":
            if not croniter.is_valid(trigger["cron"]):
                self.error("/trigger/cron", f"invalid cron expression '{trigger['cron']}'")
            tz = trigger.get("timezone", "UTC")
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                self.error("/trigger/timezone", f"unknown IANA time zone '{tz}'")
        if kind in ("webhook", "poll") and "dedupe_key" in trigger:
            self._expression(trigger["dedupe_key"], "/trigger/dedupe_key")
        if kind == "poll":
            self._check_connector_trigger(trigger["source"], "/trigger/source", "poll")
        elif kind not in ("manual", "webhook", "schedule"):
            self._check_connector_trigger(kind, "/trigger/type", "webhook")
        auth = trigger.get("auth") or {}
        if auth.get("type") in ("token", "hmac") and not auth.get("connection"):
            self.error("/trigger/auth", f"{auth['type']} auth needs 'connection': the connection that holds its secret")

    def _check_connector_trigger(self, ref: str, pointer: str, kind: str) -> None:
        name, _, trigger = ref.partition(".")
        connector = self.registry.connectors.get(name)
        if connector is None:
            self.error(pointer, f"unknown connector '{name}'")
            return
        triggers = getattr(connector, "triggers", {}) or {}
        if trigger not in triggers:
            known = ", ".join(sorted(triggers)) or "none"
            self.error(pointer, f"connector '{name}' has no trigger '{trigger}' (triggers: {known})")
            return
        found = getattr(triggers[trigger], "kind", None)
        if found != kind:
            hint = (f'use {{"type": "poll", "source": "{ref}"}}' if found == "poll"
                    else f'use {{"type": "{ref}"}}' if found == "webhook" else "it cannot start a flow this way")
            self.error(pointer, f"'{ref}' is a {found} trigger, not a {kind} trigger: {hint}")

    # ------------------------------------------------------------------ graphs

    def _collect_ids(self, steps: list[dict[str, Any]], pointer: str) -> None:
        for index, step in enumerate(steps):
            here = f"{pointer}/{index}"
            sid = step["id"]
            if sid in self.owner:
                self.error(f"{here}/id", f"duplicate step id '{sid}' (step ids are unique in the whole flow)")
            else:
                self.owner[sid] = pointer
            if step["type"] == "map":
                self._collect_ids(step["steps"], f"{here}/steps")
            for b_index, branch in enumerate(step.get("branches") or ()):
                self._collect_ids(branch["steps"], f"{here}/branches/{b_index}/steps")

    def _graph(self, steps: list[dict[str, Any]], start: str | None, base: str) -> Graph | None:
        pointer = f"{base}/steps"
        compiled: dict[str, Step] = {}
        for index, raw in enumerate(steps):
            following = steps[index + 1]["id"] if index + 1 < len(steps) else None
            step = self._step(raw, f"{pointer}/{index}", following)
            if step.id not in compiled:
                compiled[step.id] = step
                self.all_steps.setdefault(step.id, step)
            else:
                self.ambiguous.add(pointer)
        if start is not None and start not in compiled:
            self.error(f"{base}/start", self._unknown_step(start, pointer))
        return Graph(start=start or steps[0]["id"], steps=compiled, pointer=pointer)

    def _unknown_step(self, target: str, graph_pointer: str) -> str:
        if target in self.owner and self.owner[target] != graph_pointer:
            return f"step '{target}' is in another sub-graph ({self.owner[target]}); edges stay inside their map or branch"
        return f"unknown step '{target}'"

    def _ref(self, target: str | None, pointer: str, graph_pointer: str) -> None:
        if target is not None and self.owner.get(target) != graph_pointer:
            self.error(pointer, self._unknown_step(target, graph_pointer))

    def _step(self, raw: dict[str, Any], pointer: str, following: str | None) -> Step:
        graph_pointer = pointer.rsplit("/", 1)[0]
        kind = raw["type"]
        step = Step(id=raw["id"], type=kind, pointer=pointer, title=raw.get("title"))
        if "if" in raw:
            step.condition = self._expression(raw["if"], f"{pointer}/if")
        if kind not in ("choice", "fail", "succeed"):
            step.next = None if raw.get("end") else raw.get("next", following)
            self._ref(raw.get("next"), f"{pointer}/next", graph_pointer)
        step.timeout = raw.get("timeout")
        if "retry" in raw:
            step.retry = tuple(p for p in (self._retry_ref(r, f"{pointer}/retry/{i}") for i, r in enumerate(raw["retry"])) if p)
        catchers = []
        for i, c in enumerate(raw.get("catch") or ()):
            here = f"{pointer}/catch/{i}"
            self._ref(c["next"], f"{here}/next", graph_pointer)
            as_key = c.get("as", "error")
            if as_key in RESERVED_CONTEXT_KEYS:
                self.error(f"{here}/as", f"'{as_key}' is a reserved context key")
            catchers.append(Catcher(ErrorMatcher.of(c.get("errors", ["*"])), c["next"], as_key))
        step.catch = tuple(catchers)
        getattr(self, f"_step_{kind}")(step, raw, pointer, graph_pointer)
        return step

    def _step_action(self, step: Step, raw: dict[str, Any], pointer: str, graph_pointer: str) -> None:
        step.action_ref = raw["action"]
        args = raw.get("args", {})
        step.args = self._value(args, f"{pointer}/args")
        step.connection = raw.get("connection")
        try:
            step.action = self.registry.resolve(raw["action"])
        except UnknownAction as exc:
            self.error(f"{pointer}/action", str(exc))
            return
        if "args" in raw:
            self._check_args(step.action, args, f"{pointer}/args")
        else:  # point at the step (there is no args to point at)
            self._check_args(step.action, args, pointer, "; the step has no 'args'")
        if step.connection and self.connections is not None:
            kind = self.connections.get(step.connection)
            connector_name = step.action.connector.name if step.action.connector else "?"
            if kind is None:
                self.error(f"{pointer}/connection", f"unknown connection '{step.connection}'")
            elif kind != connector_name:
                self.error(
                    f"{pointer}/connection",
                    f"connection '{step.connection}' is for connector '{kind}', but this step's action uses '{connector_name}'",
                )

    def _check_args(self, action: Any, args: Any, pointer: str, note: str = "") -> None:
        schema = action.input_schema()
        validator = _args_validator(action.ref, json.dumps(schema, sort_keys=True))
        static, dynamic_paths = _static_view(args)
        for error in validator.iter_errors(static):
            path = tuple(error.absolute_path)
            if any(path[: len(d)] == d for d in dynamic_paths):
                continue  # the value comes from an expression: checked when the step runs
            for where, message in _schema_problems(error, pointer):
                self.issues.append(Issue(where, f"{message} (input of {action.ref}{note})"))

    def _step_choice(self, step: Step, raw: dict[str, Any], pointer: str, graph_pointer: str) -> None:
        choices = []
        for i, choice in enumerate(raw["choices"]):
            here = f"{pointer}/choices/{i}"
            self._ref(choice["next"], f"{here}/next", graph_pointer)
            expr = self._expression(choice["when"], f"{here}/when")
            if expr is not None:
                choices.append((expr, choice["next"]))
            else:  # still an edge for the graph checks: a bad `when` must not make its target "unreachable"
                self.uncompiled_edges.setdefault(pointer, []).append(choice["next"])
        step.choices = tuple(choices)
        step.default = raw.get("default")
        self._ref(step.default, f"{pointer}/default", graph_pointer)

    def _step_map(self, step: Step, raw: dict[str, Any], pointer: str, graph_pointer: str) -> None:
        step.items = self._expression(raw["items"], f"{pointer}/items")
        step.graph = self._graph(raw["steps"], raw.get("start"), pointer)
        if "item_output" in raw:
            step.item_output = self._value(raw["item_output"], f"{pointer}/item_output")
        step.max_concurrency = raw.get("max_concurrency", 10)
        step.tolerated_failures = raw.get("tolerated_failures", 0)

    def _step_parallel(self, step: Step, raw: dict[str, Any], pointer: str, graph_pointer: str) -> None:
        branches = []
        seen = set()
        for i, branch in enumerate(raw["branches"]):
            here = f"{pointer}/branches/{i}"
            if branch["id"] in seen:
                self.error(f"{here}/id", f"duplicate branch id '{branch['id']}'")
            seen.add(branch["id"])
            graph = self._graph(branch["steps"], branch.get("start"), here)
            output = self._value(branch["output"], f"{here}/output") if "output" in branch else None
            if graph is not None:
                branches.append(Branch(branch["id"], graph, output))
        step.branches = tuple(branches)

    def _step_set(self, step: Step, raw: dict[str, Any], pointer: str, graph_pointer: str) -> None:
        step.value = self._value(raw["value"], f"{pointer}/value")

    def _step_wait(self, step: Step, raw: dict[str, Any], pointer: str, graph_pointer: str) -> None:
        if ("seconds" in raw) == ("until" in raw):
            got = "both" if "seconds" in raw else "neither"
            self.error(pointer, f"a wait step takes exactly one of 'seconds' and 'until' (got {got})")
        if "seconds" in raw:
            seconds = raw["seconds"]
            if isinstance(seconds, dict) and not is_expr(seconds):
                self.error(f"{pointer}/seconds", "seconds must be a number or {\"$expr\": ...}")
            step.seconds = self._value(seconds, f"{pointer}/seconds")
        if "until" in raw:
            step.until = self._value(raw["until"], f"{pointer}/until")

    def _step_fail(self, step: Step, raw: dict[str, Any], pointer: str, graph_pointer: str) -> None:
        step.error_name = raw.get("error", "FlowFailed")
        if "message" in raw:
            step.message = self._value(raw["message"], f"{pointer}/message")

    def _step_succeed(self, step: Step, raw: dict[str, Any], pointer: str, graph_pointer: str) -> None:
        return None

    # ------------------------------------------------------------------ pieces

    def _policy(self, raw: dict[str, Any]) -> RetryPolicy:
        return policy_from_json(raw)

    def _retry_ref(self, raw: Any, pointer: str) -> RetryPolicy | None:
        if isinstance(raw, str):
            policy = self.policies.get(raw)
            if policy is None:
                known = ", ".join(sorted(self.policies)) or "none defined"
                self.error(pointer, f"unknown retry policy '{raw}' (retry_policies: {known})")
            return policy
        return self._policy(raw)

    def _expression(self, text: str, pointer: str):
        try:
            expr = compile_expression(text)
        except ExpressionSyntaxError as exc:
            self.error(pointer, str(exc))
            return None
        self._check_step_refs(expr.parsed.parsed, pointer)
        self._check_functions(expr.parsed.parsed, pointer)
        return expr

    def _value(self, value: Any, pointer: str):
        ok = self._check_expressions(value, pointer, allow=True)
        return compile_value(value) if ok else None

    def _check_expressions(self, value: Any, pointer: str, allow: bool) -> bool:
        ok = True
        for where, text in iter_expressions(value, pointer):
            if not allow:
                self.error(where, "expressions are not allowed here (vars are constants)")
                ok = False
                continue
            if self._expression(text, where) is None:
                ok = False
        return ok

    def _check_step_refs(self, node: Any, pointer: str) -> None:
        """Flag `steps.<id>` paths that name no step (a typo would silently give null)."""
        for first, second in _field_pairs(node):
            if first == "steps" and second not in self.owner:
                self.error(pointer, f"expression refers to unknown step 'steps.{second}'")

    def _check_functions(self, node: Any, pointer: str) -> None:
        """Unknown function names and wrong argument counts, caught before the flow runs."""
        stack = [node]
        while stack:
            current = stack.pop()
            if not isinstance(current, dict):
                continue
            stack.extend(current.get("children", ()))
            if current.get("type") != "function_expression":
                continue
            name, given = current["value"], len(current.get("children", ()))
            entry = FUNCTION_TABLE.get(name)
            if entry is None:
                close = difflib.get_close_matches(name, FUNCTION_TABLE, n=1)
                hint = f" (did you mean {close[0]}()?)" if close else ""
                self.error(pointer, f"unknown function {name}(){hint}")
                continue
            signature = entry["signature"]
            required = sum(1 for arg in signature if not arg.get("optional") and not arg.get("variadic"))
            variadic = any(arg.get("variadic") for arg in signature)
            if given < required or (not variadic and given > len(signature)):
                expected = f"at least {required}" if variadic else (
                    str(required) if required == len(signature) else f"{required} to {len(signature)}")
                self.error(pointer, f"{name}() takes {expected} argument(s), got {given}")

    # ------------------------------------------------------------------ graph checks

    def _check_graph(self, graph: Graph) -> None:
        edges: dict[str, list[str]] = {}
        for sid, step in graph.steps.items():
            targets = [step.next] if step.next else []
            targets += [n for _, n in step.choices]
            targets += [step.default] if step.default else []
            targets += [c.next for c in step.catch]
            targets += self.uncompiled_edges.get(step.pointer, [])
            edges[sid] = [t for t in targets if t in graph.steps]
            if step.graph is not None:
                self._check_graph(step.graph)
            for branch in step.branches:
                self._check_graph(branch.graph)
        if graph.pointer in self.ambiguous:
            return  # edges to a duplicated id are ambiguous: the duplicate is reported, not its echoes
        reached = set()
        todo = [graph.start] if graph.start in graph.steps else []
        while todo:
            sid = todo.pop()
            if sid in reached:
                continue
            reached.add(sid)
            todo.extend(edges[sid])
        for sid, step in graph.steps.items():
            if sid not in reached and graph.start in graph.steps:
                self.error(step.pointer, f"step '{sid}' is unreachable from '{graph.start}'")
        self._check_cycles(graph, edges)

    def _check_cycles(self, graph: Graph, edges: dict[str, list[str]]) -> None:
        """Every cycle must pass through a choice step (which can leave the loop)."""
        plain = {sid: [t for t in ts if graph.steps[t].type != "choice"] for sid, ts in edges.items() if graph.steps[sid].type != "choice"}
        state: dict[str, int] = {}
        reported: set[frozenset[str]] = set()

        def report(cycle: list[str], target: str) -> None:
            key = frozenset(cycle)
            if key not in reported:
                reported.add(key)
                loop = " → ".join(cycle + [target])
                self.error(graph.steps[cycle[-1]].pointer, f"cycle {loop} does not pass through a choice step, so it never ends")

        # iterative depth-first search: a long linear flow must not hit the recursion limit
        for root in plain:
            if state.get(root) is not None:
                continue
            path: list[str] = [root]
            stack = [iter(plain.get(root, ()))]
            state[root] = 1
            while stack:
                target = next(stack[-1], None)
                if target is None:
                    stack.pop()
                    state[path.pop()] = 2
                elif state.get(target) == 1:
                    report(path[path.index(target):], target)
                elif state.get(target) is None:
                    state[target] = 1
                    path.append(target)
                    stack.append(iter(plain.get(target, ())))


def _field_pairs(node: Any):
    """Yield (first, second) field names of every `a.b...` chain in a JMESPath AST."""
    if not isinstance(node, dict):
        return
    if node.get("type") == "subexpression":
        chain = _flatten(node)
        if len(chain) >= 2 and all(c.get("type") == "field" for c in chain[:2]):
            yield chain[0]["value"], chain[1]["value"]
    for child in node.get("children", ()):
        yield from _field_pairs(child)


def _flatten(node: dict[str, Any]) -> list[dict[str, Any]]:
    if node.get("type") == "subexpression":
        out = []
        for child in node["children"]:
            out.extend(_flatten(child))
        return out
    return [node]


@functools.lru_cache(maxsize=512)
def _args_validator(ref: str, schema_json: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_json))


def _static_view(value: Any, path: tuple = ()) -> tuple[Any, list[tuple]]:
    """The literal parts of args, and the paths whose value comes from an expression."""
    if is_literal(value):
        return value["$literal"], []
    if is_dynamic(value):
        return None, [path]
    if isinstance(value, dict):
        out, dyn = {}, []
        for key, item in value.items():
            out[key], sub = _static_view(item, path + (key,))
            dyn += sub
        return out, dyn
    if isinstance(value, list):
        out_list, dyn = [], []
        for index, item in enumerate(value):
            v, sub = _static_view(item, path + (index,))
            out_list.append(v)
            dyn += sub
        return out_list, dyn
    return value, []
