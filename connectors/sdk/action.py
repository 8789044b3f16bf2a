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


@dataclass
class Action:
    """One action of a connector: typed input, a function, and UI metadata."""

    name: str
    run: ActionFunction
    input_model: type[BaseModel] | None = None
    title: dict[str, str] = field(default_factory=dict)
    description: str = ""
    output_schema: dict[str, Any] | None = None
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
    """A connector manifest: identity plus its actions."""

    name: str
    version: str
    title: dict[str, str]
    description: str = ""
    icon: str | None = None
    categories: tuple[str, ...] = ()
    connection_kinds: tuple[str, ...] = ()
    actions: dict[str, Action] = field(default_factory=dict)

    def action(
        self,
        name: str,
        *,
        input: type[BaseModel] | None = None,
        title: dict[str, str] | None = None,
        description: str = "",
        output_schema: dict[str, Any] | None = None,
        default_retry: tuple[dict[str, Any], ...] | None = None,
    ) -> Callable[[ActionFunction], ActionFunction]:
        """Decorator that registers a function as one of this connector's actions."""

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
