"""Connectors and their actions: a manifest plus small typed functions."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import httpx
from pydantic import BaseModel, ValidationError

from engine.errors import InvalidInput


class ActionContext:
    """What an action's function receives besides its input.

    `connection` holds the decrypted fields of the step's connection (never put in the
    flow context, never recorded); `http` is the process-wide pooled HTTP client.
    """

    __slots__ = ("run_id", "step_id", "flow_id", "connection", "log")

    def __init__(
        self,
        run_id: str,
        step_id: str,
        flow_id: str,
        connection: dict[str, Any] | None,
        log: Callable[[str], None],
    ) -> None:
        self.run_id = run_id
        self.step_id = step_id
        self.flow_id = flow_id
        self.connection = connection
        self.log = log

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled HTTP client of the running event loop (created on first use)."""
        from connectors.sdk.http import shared_client

        return shared_client()


ActionFunction = Callable[[ActionContext, Any], Awaitable[Any] | Any]


def format_validation_error(exc: ValidationError, prefix: str = "args") -> str:
    """One line per failed field, e.g. ``args.url: Field required``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        lines.append(f"{prefix}.{loc}: {err.get('msg')}" if loc else f"{prefix}: {err.get('msg')}")
    return "; ".join(lines)


def ui(
    *,
    secret: bool = False,
    multiline: bool = False,
    options: dict[str, Any] | None = None,
    depends_on: list[str] | tuple[str, ...] | None = None,
    placeholder: str | None = None,
    title_zh: str | None = None,
) -> dict[str, Any]:
    """Editor hints for one input field, for pydantic's ``Field(json_schema_extra=ui(...))``.

    - ``secret``: masked in the editor (``x-secret``);
    - ``multiline``: a text area (``x-multiline``);
    - ``options``: choices loaded by running another action of the same connector,
      ``{"action": "list_owners", "items": "owners", "value": "id", "label": "name"}``
      (``items``/``value``/``label`` are JMESPath on its output and on each item) (``x-options``);
    - ``depends_on``: sibling fields that must be set first (``x-depends-on``);
    - ``placeholder`` and a Chinese ``title_zh`` (``x-placeholder``, ``x-title-zh``).
    """
    hints: dict[str, Any] = {}
    if secret:
        hints["x-secret"] = True
    if multiline:
        hints["x-multiline"] = True
    if options is not None:
        hints["x-options"] = dict(options)
    if depends_on:
        hints["x-depends-on"] = list(depends_on)
    if placeholder is not None:
        hints["x-placeholder"] = placeholder
    if title_zh is not None:
        hints["x-title-zh"] = title_zh
    return hints


def _schema_of(model_or_schema: type[BaseModel] | dict[str, Any] | None) -> dict[str, Any] | None:
    if model_or_schema is None:
        return None
    if isinstance(model_or_schema, dict):
        return model_or_schema
    return model_or_schema.model_json_schema()


@dataclass
class Action:
    """One action of a connector: typed input, a function, and UI metadata."""

    name: str
    run: ActionFunction
    input_model: type[BaseModel] | None = None
    title: dict[str, str] = field(default_factory=dict)
    description: str = ""
    output_schema: dict[str, Any] | type[BaseModel] | None = None
    default_retry: tuple[dict[str, Any], ...] | None = None
    connector: "Connector | None" = None
    is_async: bool = False

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.run)

    @property
    def ref(self) -> str:
        """``<connector>.<action>``."""
        return f"{self.connector.name if self.connector else '?'}.{self.name}"

    def input_schema(self) -> dict[str, Any]:
        """The JSON Schema of the action's input (generated from the pydantic model)."""
        if self.input_model is None:
            return {"type": "object"}
        return self.input_model.model_json_schema()

    def output_json_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of what the action returns (None when undeclared)."""
        return _schema_of(self.output_schema)

    def manifest(self) -> dict[str, Any]:
        """This action's entry in its connector's manifest."""
        entry: dict[str, Any] = {
            "title": dict(self.title) or {"en": self.name},
            "description": self.description,
            "input_schema": self.input_schema(),
            "output_schema": self.output_json_schema(),
        }
        if self.default_retry is not None:
            entry["default_retry"] = [dict(policy) for policy in self.default_retry]
        return entry

    def parse_input(self, data: Any) -> Any:
        """Validate rendered input; raise InvalidInput naming each bad field."""
        if self.input_model is None:
            return data
        try:
            return self.input_model.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(format_validation_error(exc), details=exc.errors(include_url=False, include_context=False)) from None


@dataclass
class Connector:
    """A connector manifest: identity, connection, actions and triggers.

    `name` is what flows write (``demo.greet``); `version` is semver (``demo@^1.greet`` pins
    the major version); `title` is ``{"en": ..., "zh": ...}``; `icon` an https/data URL or a
    path inside the package; `connection_kinds` the auth kinds a connection may use and
    `connection_schema` the JSON Schema (or pydantic model) of a connection's fields, secret
    ones marked ``x-secret``; `triggers` maps a trigger name to its definition (flows use it
    as ``<connector>.<trigger>``). :meth:`manifest` gives the whole description as JSON.
    """

    name: str
    version: str
    title: dict[str, str]
    description: str = ""
    icon: str | None = None
    categories: tuple[str, ...] = ()
    connection_kinds: tuple[str, ...] = ()
    actions: dict[str, Action] = field(default_factory=dict)
    triggers: dict[str, Any] = field(default_factory=dict)
    connection_schema: dict[str, Any] | type[BaseModel] | None = None
    homepage: str | None = None

    def manifest(self) -> dict[str, Any]:
        """The connector as a JSON-able dict, valid against ``schemas/connector.schema.json``."""
        from connectors.sdk.manifest import build_manifest

        return build_manifest(self)

    def action(
        self,
        name: str,
        *,
        input: type[BaseModel] | None = None,
        title: dict[str, str] | None = None,
        description: str = "",
        output_schema: dict[str, Any] | type[BaseModel] | None = None,
        default_retry: tuple[dict[str, Any], ...] | None = None,
    ) -> Callable[[ActionFunction], ActionFunction]:
        """Decorator that registers a function as one of this connector's actions.

        `input` is a pydantic model (field titles, descriptions, enums and :func:`ui` hints
        become the editor's form); `output_schema` a JSON Schema or pydantic model of the result.
        """

        def register(fn: ActionFunction) -> ActionFunction:
            self.actions[name] = Action(
                name=name,
                run=fn,
                input_model=input,
                title=title or {"en": name},
                description=description or (inspect.getdoc(fn) or ""),
                output_schema=output_schema,
                default_retry=default_retry,
                connector=self,
            )
            return fn

        return register
