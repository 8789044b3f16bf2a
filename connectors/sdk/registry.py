"""Finds connectors: the built-in ones and any package registered under the
``flowlink.connectors`` entry-point group, and resolves ``connector[@range].action``."""
from __future__ import annotations

import logging
import re
from importlib.metadata import entry_points
from typing import Iterable

from connectors.sdk.action import Action, Connector

ENTRY_POINT_GROUP = "flowlink.connectors"
log = logging.getLogger("flowlink.connectors")

_REF_RE = re.compile(r"^(?P<connector>[a-z][a-z0-9_]*)(?:@(?P<range>[^.]+(?:\.[^.]+)*?))?\.(?P<action>[a-z][a-z0-9_]*)$")


class UnknownAction(LookupError):
    """The action reference names no installed connector or action."""


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3]) + (0,) * (3 - len(re.findall(r"\d+", text)[:3]))


def version_satisfies(version: str, spec: str) -> bool:
    """npm-style ranges: ``^1``, ``^1.2``, ``~1.2``, ``1.2.3``, ``>=1.2``, ``*``."""
    v = _version_tuple(version)
    spec = spec.strip()
    if spec in ("", "*"):
        return True
    if spec.startswith(">="):
        return v >= _version_tuple(spec[2:])
    if spec.startswith("^"):
        base = _version_tuple(spec[1:])
        if v < base:
            return False
        if base[0] > 0:
            return v[0] == base[0]
        return v[:2] == base[:2] if base[1] > 0 else v == base
    if spec.startswith("~"):
        base = _version_tuple(spec[1:])
        return v >= base and v[:2] == base[:2]
    parts = re.findall(r"\d+", spec)
    return v[: len(parts)] == tuple(int(p) for p in parts)


class ConnectorRegistry:
    """The installed connectors by name."""

    def __init__(self, connectors: Iterable[Connector] = ()) -> None:
        self.connectors: dict[str, Connector] = {}
        for connector in connectors:
            self.add(connector)

    def add(self, connector: Connector) -> None:
        """Register a connector (a later one with the same name replaces the earlier)."""
        connector.ensure_custom_api_call()  # base_url/auth may have been set after construction
        self.connectors[connector.name] = connector

    @classmethod
    def discover(cls) -> "ConnectorRegistry":
        """Built-in connectors plus every installed entry point of the group."""
        from connectors.core import connector as core
        from connectors.http import connector as http

        registry = cls([core, http])
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken third-party package must not take the service down
                log.error("connector entry point %s failed to load: %s", ep.name, exc)
                continue
            if isinstance(loaded, Connector):
                registry.add(loaded)
            else:
                log.error("entry point %s is not a Connector (got %r)", ep.name, type(loaded))
        return registry

    def resolve(self, ref: str) -> Action:
        """The action for ``connector.action`` or ``connector@^1.action``; UnknownAction if none."""
        match = _REF_RE.match(ref)
        if not match:
            raise UnknownAction(f"'{ref}' is not of the form <connector>.<action>")
        name, spec, action = match.group("connector"), match.group("range"), match.group("action")
        connector = self.connectors.get(name)
        if connector is None:
            known = ", ".join(sorted(self.connectors)) or "none"
            raise UnknownAction(f"unknown connector '{name}' (installed: {known})")
        if spec and not version_satisfies(connector.version, spec):
            raise UnknownAction(f"connector '{name}' is version {connector.version}, which does not satisfy {spec}")
        found = connector.actions.get(action)
        if found is None:
            known = ", ".join(sorted(connector.actions)) or "none"
            raise UnknownAction(f"connector '{name}' has no action '{action}' (actions: {known})")
        return found


_default: ConnectorRegistry | None = None


def default_registry() -> ConnectorRegistry:
    """The process-wide registry, discovered once."""
    global _default
    if _default is None:
        _default = ConnectorRegistry.discover()
    return _default
