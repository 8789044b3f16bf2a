"""Built-in `http` connector: call any REST API, with auth from an `http` connection."""
from __future__ import annotations

import base64
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field, model_validator

from connectors.http import sandbox
from connectors.sdk import ActionContext, Connector
from engine.errors import InvalidInput

#: The SDK's default statuses, except that a rejected static credential is PermissionDenied:
#: an `http` connection has nothing to refresh.
ERROR_RULES = [{"status": 401, "kind": "PermissionDenied"}]

#: 429 and 5xx answers (and connection failures) are retried unless the step sets its own `retry`.
DEFAULT_RETRY = ({"errors": ["RateLimited", "Transient"], "max_attempts": 3, "interval": 1, "backoff_rate": 2, "max_delay": 30},)


class RequestInput(BaseModel):
    model_config = {"extra": "forbid", "populate_by_name": True}

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    url: str = Field(description="Absolute http(s) URL.", pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str | int | float | bool | list[str]] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json", description="A JSON body.")
    form: dict[str, str] | None = Field(default=None, description="A form-urlencoded body.")
    body: str | None = Field(default=None, description="A raw text body (set Content-Type in headers).")
    timeout: float = Field(default=30, gt=0, le=600, description="Seconds for the whole request.")
    follow_redirects: bool = True

    @model_validator(mode="after")
    def _one_body(self) -> "RequestInput":
        given = [name for name, v in (("json", self.json_body), ("form", self.form), ("body", self.body)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of json, form and body (got {', '.join(given)})")
        return self


def parse_body(response: httpx.Response) -> Any:
    """The body by content type: JSON parsed, text as text, anything else base64."""
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not response.content:
        return None
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            return response.json()
        except ValueError:
            return response.text
    if ctype.startswith("text/") or ctype in ("application/xml", "application/javascript", "application/x-www-form-urlencoded") or ctype.endswith("+xml"):
        return response.text
    if not ctype:
        try:
            return response.json()
        except ValueError:
            pass
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"base64": base64.b64encode(response.content).decode(), "content_type": ctype}


connector = Connector(
    name="http",
    version="1.0.0",
    title={"en": "HTTP request", "zh": "HTTP 请求"},
    description="Call any HTTP API. Auth comes from an `http` connection: bearer, basic or API key.",
    categories=("core", "developer"),
    connection_kinds=("bearer", "basic", "api_key"),
    error_rules=ERROR_RULES,
    body_parser=parse_body,
    sandbox=sandbox.app,
)


def _request_url(raw: str, query: dict[str, Any]) -> httpx.URL:
    """The URL with `query` merged into its own query string; a malformed URL is the input's fault."""
    try:
        url = httpx.URL(raw)
        port = url.port
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"args.url: {exc}") from None
    if not url.host:
        raise InvalidInput(f"args.url: '{raw}' has no host")
    if port is not None and not 0 < port < 65536:
        raise InvalidInput(f"args.url: port {port} is out of range")
    # httpx >= 0.28 *replaces* the URL's query string when `params=` is given; merge instead
    # (a key given in `query` or by an api_key connection wins over the same key in the URL).
    return url.copy_merge_params(query) if query else url


@connector.action(
    "request",
    input=RequestInput,
    title={"en": "HTTP request", "zh": "发送 HTTP 请求"},
    default_retry=DEFAULT_RETRY,
    examples=[
        {"title": "GET with a query", "input": {"url": "{{ vars.sandbox_url }}/echo", "query": {"page": "2"}},
         "expect": {"status": 200, "body": {"method": "GET", "query": {"page": "2"}}}},
        {"title": "POST a JSON body", "input": {"method": "POST", "url": "{{ vars.sandbox_url }}/echo", "json": {"lead": "L1"}},
         "expect": {"status": 200, "body": {"body": {"lead": "L1"}}}},
        {"title": "Bearer auth from the connection", "input": {"url": "{{ vars.sandbox_url }}/bearer"},
         "connection": {"auth": "bearer", "token": sandbox.SANDBOX_TOKEN}, "expect": {"status": 200, "body": {"ok": True}}},
    ],
)
async def request(ctx: ActionContext, inp: RequestInput) -> dict[str, Any]:
    """Send an HTTP request; a non-2xx answer fails the step with a typed error."""
    client = ctx.client  # the connection's credentials (bearer, basic, api_key) as SDK auth kinds
    url = _request_url(inp.url, dict(inp.query))
    response = await client.request_full(
        inp.method,
        url,
        headers=inp.headers,
        json=inp.json_body,
        data=inp.form,
        content=inp.body,
        timeout=inp.timeout,
        follow_redirects=inp.follow_redirects,
    )
    return {"status": response.status, "headers": dict(response.headers), "body": response.body}
