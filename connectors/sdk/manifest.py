"""Connector manifests: build one from a :class:`Connector` and check one against
``schemas/connector.schema.json`` plus the rules a schema cannot express.

A manifest is the JSON description of a connector that the editor, the CLI
(``flowlink connectors show NAME --json``) and reviewers read: identity (name, semver
version, title in English and Chinese, description, icon, categories), the connection it
takes, every action with its input JSON Schema (generated from the pydantic model, with the
``x-secret``/``x-multiline``/``x-options``/``x-depends-on`` editor hints), output schema and
default retry, and its triggers.

:func:`validate_manifest` never raises for a bad manifest: it returns every issue with the
JSON pointer of the offending place, like flow validation does.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Iterator

import jsonschema

from schemas import load_schema

if TYPE_CHECKING:
    from connectors.sdk.action import Connector
    from engine.validation import Issue

MANIFEST_VERSION = 1

#: Keys a trigger object may describe itself with (when it has no ``manifest()`` of its own).
_TRIGGER_KEYS = ("title", "description", "config_schema", "output_schema")


def build_manifest(connector: "Connector") -> dict[str, Any]:
    """The connector as a JSON-able dict (see ``schemas/connector.schema.json``)."""
    from connectors.sdk.action import _schema_of

    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "name": connector.name,
        "version": connector.version,
        "title": dict(connector.title),
        "description": connector.description,
        "categories": list(connector.categories),
    }
    if connector.icon:
        manifest["icon"] = connector.icon
    if connector.homepage:
        manifest["homepage"] = connector.homepage
    if getattr(connector, "base_url", None):
        manifest["base_url"] = connector.base_url
    connection_schema = _schema_of(connector.connection_schema)
    if connector.connection_kinds or connection_schema is not None:
        connection: dict[str, Any] = {}
        if connector.connection_kinds:
            connection["kinds"] = list(connector.connection_kinds)
        if connection_schema is not None:
            connection["schema"] = connection_schema
        manifest["connection"] = connection
    manifest["actions"] = {name: action.manifest() for name, action in connector.actions.items()}
    manifest["triggers"] = {name: trigger_manifest(trigger) for name, trigger in (connector.triggers or {}).items()}
    return manifest


def trigger_manifest(trigger: Any) -> dict[str, Any]:
    """One trigger's manifest entry: its own ``manifest()``, a dict as given, or read from its attributes.

    From attributes: ``kind`` (default: the class name without ``Trigger``, lower case, so
    ``WebhookTrigger`` is ``webhook``), ``title``, ``description``, ``config_schema`` and
    ``output_schema`` (JSON Schemas or pydantic models).
    """
    from connectors.sdk.action import _schema_of

    if callable(getattr(trigger, "manifest", None)):
        return trigger.manifest()
    if isinstance(trigger, dict):
        return dict(trigger)
    kind = getattr(trigger, "kind", None) or type(trigger).__name__.removesuffix("Trigger").lower()
    entry: dict[str, Any] = {"kind": kind}
    for key in _TRIGGER_KEYS:
        value = getattr(trigger, key, None)
        if value is None:
            continue
        entry[key] = _schema_of(value) if key.endswith("_schema") else value
    return entry


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema("connector"))


def validate_manifest(manifest: Any) -> list["Issue"]:
    """Every problem of a manifest, each with a JSON pointer (empty list: valid).

    Stage ``schema``: ``schemas/connector.schema.json``. Stage ``semantics`` (when the schema
    passed): the input, output and connection schemas are valid JSON Schemas, every
    ``x-options`` names an action of the same connector, every ``x-depends-on`` names a
    sibling field.
    """
    from engine.validation import Issue, _schema_problems

    issues: list[Issue] = []
    seen: set[tuple[str, str]] = set()
    for error in sorted(_validator().iter_errors(manifest), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        for pointer, message in _schema_problems(error):
            if (pointer, message) not in seen:
                seen.add((pointer, message))
                issues.append(Issue(pointer, message, "schema"))
    if issues:
        return issues
    actions = manifest["actions"]
    for name, action in actions.items():
        base = f"/actions/{_escape(name)}"
        for key in ("input_schema", "output_schema"):
            if action.get(key) is not None:
                issues += _check_json_schema(action[key], f"{base}/{key}", set(actions))
    connection = manifest.get("connection") or {}
    if "schema" in connection:
        issues += _check_json_schema(connection["schema"], "/connection/schema", set(actions))
    for name, trigger in manifest["triggers"].items():
        for key in ("config_schema", "output_schema"):
            if isinstance(trigger.get(key), dict):
                issues += _check_json_schema(trigger[key], f"/triggers/{_escape(name)}/{key}", set(actions))
    return issues


def manifest_issues(connector: "Connector") -> list["Issue"]:
    """The issues of a connector's manifest (building it first)."""
    return validate_manifest(connector.manifest())


def _escape(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _check_json_schema(schema: dict[str, Any], pointer: str, actions: set[str]) -> list["Issue"]:
    from engine.validation import Issue

    issues = []
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = pointer + "".join("/" + _escape(p) for p in exc.path)
        issues.append(Issue(where, f"not a valid JSON Schema: {exc.message}"))
    for where, node, siblings in _walk(schema, pointer, None):
        options = node.get("x-options")
        if isinstance(options, dict) and options.get("action") not in actions:
            known = ", ".join(sorted(actions)) or "none"
            issues.append(Issue(f"{where}/x-options/action", f"x-options names unknown action '{options.get('action')}' (actions: {known})"))
        for i, field in enumerate(node.get("x-depends-on") or ()):
            if siblings is None or field not in siblings:
                issues.append(Issue(f"{where}/x-depends-on/{i}", f"x-depends-on names '{field}', which is not a sibling field"))
    return issues


def _walk(node: Any, pointer: str, siblings: set[str] | None) -> Iterator[tuple[str, dict[str, Any], set[str] | None]]:
    """Every sub-schema with its pointer and the names of the fields beside it."""
    if not isinstance(node, dict):
        return
    yield pointer, node, siblings
    props = node.get("properties")
    if isinstance(props, dict):
        names = set(props)
        for key, sub in props.items():
            yield from _walk(sub, f"{pointer}/properties/{_escape(key)}", names)
    for key in ("$defs", "definitions"):
        if isinstance(node.get(key), dict):
            for name, sub in node[key].items():
                yield from _walk(sub, f"{pointer}/{key}/{_escape(name)}", None)
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{pointer}/items", None)
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(node.get(key), list):
            for i, sub in enumerate(node[key]):
                # an Optional[...] field wraps its schema: the hints still sit beside the same fields
                yield from _walk(sub, f"{pointer}/{key}/{i}", siblings)

