"""Connectors and their actions: a manifest plus small typed functions."""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Literal, Mapping

import httpx
from pydantic import BaseModel, Field, ValidationError, model_validator

from engine.errors import InvalidInput

if TYPE_CHECKING:
    from connectors.sdk.client import ConnectorClient
    from connectors.sdk.ratelimit import Budget


class ActionContext:
    """What an action's function receives besides its input.

    `connection` holds the decrypted fields of the step's connection (never put in the
    flow context, never recorded); `http` is the process-wide pooled HTTP client;
    `client` a :class:`~connectors.sdk.client.ConnectorClient` for the step's connector
    and connection (built on first use, then kept for this call of the action); `db`
    Flowlink's own database (a SQLAlchemy engine) for built-in actions such as data tables,
    None where the interpreter has none (the contract kit).
    """

    __slots__ = ("run_id", "step_id", "flow_id", "connection", "log", "action", "connection_name", "token_cache",
                 "rate_limiter", "db", "_client")

    def __init__(
        self,
        run_id: str,
        step_id: str,
        flow_id: str,
        connection: dict[str, Any] | None,
        log: Callable[[str], None],
        action: "Action | None" = None,
        connection_name: str | None = None,
        token_cache: Any = None,
        rate_limiter: Any = None,
        db: Any = None,
    ) -> None:
        self.run_id = run_id
        self.step_id = step_id
        self.flow_id = flow_id
        self.connection = connection
        self.log = log
        self.action = action
        self.connection_name = connection_name
        self.token_cache = token_cache
        self.rate_limiter = rate_limiter
        self.db = db
        self._client: "ConnectorClient | None" = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled HTTP client of the running event loop (created on first use)."""
        from connectors.sdk.http import shared_client

        return shared_client()

    @property
    def client(self) -> "ConnectorClient":
        """The connector's HTTP client for this step: base URL, auth from the connection,
        error rules, the engine's shared token cache and rate limiter (see :func:`build_client`)."""
        client = self._client
        if client is None:
            connector = self.action.connector if self.action is not None else None
            if connector is None:
                raise RuntimeError("ctx.client needs the action's connector (this context has none)")
            client = self._client = build_client(connector, self.connection, action=self.action,
                                                 connection_name=self.connection_name, token_cache=self.token_cache,
                                                 rate_limiter=self.rate_limiter)
        return client


def rate_key_for(connector: "Connector", connection_name: str | None, budget: "Budget", action: "Action | None" = None) -> str:
    """The shared budget's key: ``<connector>:<connection>`` for the connector's budget, with
    ``:<budget name>`` (or ``:<action>`` when the budget is unnamed) for an action's own budget."""
    from connectors.sdk.ratelimit import budget_of

    key = f"{connector.name}:{connection_name or '-'}"
    if budget is budget_of(connector):
        return key
    return f"{key}:{budget.name if budget.name != 'budget' else (action.name if action is not None else 'action')}"


def build_client(
    connector: "Connector",
    connection: Mapping[str, Any] | None,
    *,
    action: "Action | None" = None,
    connection_name: str | None = None,
    token_cache: Any = None,
    rate_limiter: Any = None,
) -> "ConnectorClient":
    """A ConnectorClient for `connector` with the credentials of `connection`.

    - base URL: the connection's ``base_url`` field, else the connector's;
    - auth kind: the connection's ``auth`` field, else the connector's ``auth`` (else none);
      the connector's ``auth_options`` apply when the kind is the connector's own; a kind
      outside the connector's ``connection_kinds`` is refused;
    - rate limit: the action's budget, else the connector's (:func:`budget_of`), keyed per
      connector and connection (:func:`rate_key_for`); none without a budget or a limiter.
    """
    from connectors.sdk.auth import AUTH_KINDS, auth_from_connection
    from connectors.sdk.client import ConnectorClient
    from connectors.sdk.ratelimit import budget_of

    fields = dict(connection or {})
    base_url = fields.get("base_url") or connector.base_url
    kind = fields.get("auth") if isinstance(fields.get("auth"), str) else None
    kind = kind or connector.auth or "none"
    if kind not in AUTH_KINDS:
        raise InvalidInput(f"{connector.name}: connection auth '{kind}' is not one of "
                           f"{', '.join(connector.connection_kinds or tuple(AUTH_KINDS))}")
    if kind != "none" and connector.connection_kinds and kind not in connector.connection_kinds:
        raise InvalidInput(f"{connector.name}: connection auth '{kind}' is not one of {', '.join(connector.connection_kinds)}")
    options: dict[str, Any] = {}
    if kind == connector.auth:
        raw = connector.auth_options
        options = dict(raw(base_url) if callable(raw) else raw or {})
    fields.pop("auth", None)
    auth = auth_from_connection(kind, fields, **options)
    limiter, rate_key = None, None
    budget = budget_of(action) if action is not None else budget_of(connector)
    if budget is not None and rate_limiter is not None:
        limiter = rate_limiter.with_budget(budget)
        rate_key = rate_key_for(connector, connection_name, budget, action)
    return ConnectorClient(connector.name, base_url, auth, connector.compiled_error_rules(), token_cache, limiter,
                           rate_key=rate_key, body_parser=connector.body_parser)


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
    sensitive: bool = False,
    multiline: bool = False,
    options: dict[str, Any] | None = None,
    depends_on: list[str] | tuple[str, ...] | None = None,
    placeholder: str | None = None,
    title_zh: str | None = None,
) -> dict[str, Any]:
    """Editor hints for one input field, for pydantic's ``Field(json_schema_extra=ui(...))``.

    - ``secret``: masked in the editor (``x-secret``) and in run records;
    - ``sensitive``: personal data (a phone number, an ID card number): masked in run records
      (``x-sensitive``), shown in the editor;
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
    if sensitive:
        hints["x-sensitive"] = True
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


def _collect_sensitive(schema: Any, found: set[str]) -> None:
    """Add the names of properties marked x-secret/x-sensitive anywhere in a JSON Schema."""
    if isinstance(schema, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, dict) and (prop.get("x-secret") or prop.get("x-sensitive")):
                found.add(name)
        for value in schema.values():
            _collect_sensitive(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _collect_sensitive(value, found)


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
    #: worked examples: {"title", "input", "connection" (optional), "expect" (optional subset of the output)}
    examples: list[dict[str, Any]] = field(default_factory=list)

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

    @functools.cached_property
    def sensitive_keys(self) -> frozenset[str]:
        """Property names marked ``x-secret`` or ``x-sensitive`` in the input and output schemas:
        their values are masked in run records."""
        found: set[str] = set()
        for schema in (self.input_schema(), self.output_json_schema()):
            _collect_sensitive(schema, found)
        return frozenset(found)

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
        if self.examples:
            # never the example's connection: it may hold (fake) credentials
            entry["examples"] = [{k: v for k, v in example.items() if k != "connection"} for example in self.examples]
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

    HTTP plumbing is declared, not written: `base_url` (a connection's ``base_url`` field
    overrides it), `auth` (an ``AUTH_KINDS`` name; a connection may name its own kind in an
    ``auth`` field) with `auth_options` (a dict, or a function of the base URL returning
    one: a token endpoint, a login hook ...), `error_rules` (rule dicts or ErrorRule, before
    the defaults), `budget` (a shared rate budget per connector and connection). Actions
    then use ``ctx.client``. A connector with a `base_url` or `auth` also gets a
    ``custom_api_call`` action (unless it defines its own). `sandbox` is a factory of the
    connector's fake platform (an ASGI app) for contract tests.
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
    base_url: str | None = None
    auth: str | None = None
    auth_options: dict[str, Any] | Callable[[str | None], dict[str, Any]] = field(default_factory=dict)
    error_rules: list[Any] = field(default_factory=list)
    budget: "Budget | None" = None
    sandbox: Callable[[], Any] | None = None
    #: how answers are parsed (default: the SDK's JSON-else-text parse_body)
    body_parser: Callable[[httpx.Response], Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from connectors.sdk.auth import AUTH_KINDS

        if self.auth is not None and self.auth not in AUTH_KINDS:
            raise ValueError(f"connector {self.name}: auth '{self.auth}' is not one of {', '.join(AUTH_KINDS)}")
        if self.auth and self.auth != "none" and not self.connection_kinds:
            self.connection_kinds = (self.auth,)
        if self.budget is not None:
            self.budget.attach(self)
        self._rules: Any = None
        self.compiled_error_rules()  # malformed rules fail at declaration, not mid-run
        self.ensure_custom_api_call()

    def compiled_error_rules(self) -> Any:
        """The connector's :class:`ErrorRules` (compiled once)."""
        from connectors.sdk.error_rules import ErrorRules

        rules = getattr(self, "_rules", None)
        if rules is None or rules[0] is not self.error_rules:
            compiled = self.error_rules if isinstance(self.error_rules, ErrorRules) else ErrorRules(self.error_rules or ())
            rules = self._rules = (self.error_rules, compiled)
        return rules[1]

    def ensure_custom_api_call(self) -> None:
        """Add the raw ``custom_api_call`` action when the connector declares `base_url` or `auth`."""
        if (self.base_url or self.auth) and CUSTOM_API_CALL not in self.actions:
            self.actions[CUSTOM_API_CALL] = custom_api_call_action(self)

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
        examples: list[dict[str, Any]] | None = None,
        budget: "Budget | None" = None,
    ) -> Callable[[ActionFunction], ActionFunction]:
        """Decorator that registers a function as one of this connector's actions.

        `input` is a pydantic model (field titles, descriptions, enums and :func:`ui` hints
        become the editor's form); `output_schema` a JSON Schema or pydantic model of the result;
        `examples` worked examples (``{"title", "input", "connection"?, "expect"?}``); `budget`
        a rate budget of this action's own (else the connector's applies to ``ctx.client``).
        """

        def register(fn: ActionFunction) -> ActionFunction:
            if budget is not None:
                budget.attach(fn)
            self.actions[name] = Action(
                name=name,
                run=fn,
                input_model=input,
                title=title or {"en": name},
                description=description or (inspect.getdoc(fn) or ""),
                output_schema=output_schema,
                default_retry=default_retry,
                connector=self,
                examples=[dict(example) for example in examples or ()],
            )
            return fn

        return register


# ------------------------------------------------------------------------------ custom API call

CUSTOM_API_CALL = "custom_api_call"

#: Rate limits and platform hiccups are retried unless the step sets its own `retry` (like http.request).
CUSTOM_CALL_RETRY = ({"errors": ["RateLimited", "Transient"], "max_attempts": 3, "interval": 1, "backoff_rate": 2, "max_delay": 30},)


class CustomApiCallInput(BaseModel):
    model_config = {"extra": "forbid", "populate_by_name": True}

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    path: str | None = Field(default=None, description="Path relative to the connector's base URL, e.g. /v1/users.")
    url: str | None = Field(default=None, pattern=r"^https?://",
                            description="An absolute URL instead of `path` (on the base URL's host when there is one).")
    query: dict[str, str | int | float | bool | list[str]] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json", description="A JSON body.")
    body: str | None = Field(default=None, description="A raw text body (set Content-Type in headers).", json_schema_extra=ui(multiline=True))
    timeout: float = Field(default=30, gt=0, le=600, description="Seconds for the whole request.")

    @model_validator(mode="after")
    def _target_and_body(self) -> "CustomApiCallInput":
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path and url")
        if self.json_body is not None and self.body is not None:
            raise ValueError("give only one of json and body")
        return self


def custom_api_call_action(connector: "Connector") -> "Action":
    """The raw API call of `connector`: any method and path, with the connector's auth,
    token refresh, error rules and rate budget; returns ``{status, headers, body}``."""

    async def custom_api_call(ctx: ActionContext, inp: CustomApiCallInput) -> dict[str, Any]:
        client = ctx.client
        target: str = inp.path if inp.path is not None else inp.url  # type: ignore[assignment]
        if inp.url is not None and client.base_url:
            base_host, host = httpx.URL(client.base_url).host, httpx.URL(inp.url).host
            if host != base_host:
                raise InvalidInput(f"args.url: {connector.name} credentials are only sent to {base_host}, not {host} "
                                   "(use a path, or the http connector for other hosts)")
        elif inp.path is not None and inp.path.startswith(("http://", "https://")):
            raise InvalidInput("args.path: give a path relative to the base URL (or an absolute URL in `url`)")
        response = await client.request_full(inp.method, target, params=inp.query or None, json=inp.json_body,
                                             content=inp.body, headers=inp.headers, timeout=inp.timeout)
        return {"status": response.status, "headers": dict(response.headers), "body": response.body}

    return Action(
        name=CUSTOM_API_CALL,
        run=custom_api_call,
        input_model=CustomApiCallInput,
        title={"en": "Custom API call", "zh": "自定义 API 调用"},
        description=f"Call any {connector.title.get('en', connector.name)} API endpoint with this connector's "
                    "authentication; returns status, headers and body.",
        output_schema={"type": "object", "properties": {"status": {"type": "integer"}, "headers": {"type": "object"},
                                                        "body": {}}, "required": ["status", "headers", "body"]},
        default_retry=CUSTOM_CALL_RETRY,
        connector=connector,
    )
