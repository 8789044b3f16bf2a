"""Built-in `http` connector: call any REST API, with auth from an `http` connection."""
from __future__ import annotations

import base64
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, Field, model_validator

from connectors.sdk import ActionContext, Connector
from connectors.sdk.http import parse_retry_after, shared_client
from engine.errors import (
    ConnectorError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    StepError,
    Transient,
)

connector = Connector(
    name="http",
    version="1.0.0",
    title={"en": "HTTP request", "zh": "HTTP 请求"},
    description="Call any HTTP API. Auth comes from an `http` connection: bearer, basic or API key.",
    categories=("core", "developer"),
    connection_kinds=("bearer", "basic", "api_key"),
)

#: 429 and 5xx answers (and connection failures) are retried unless the step sets its own `retry`.
DEFAULT_RETRY = ({"errors": ["RateLimited", "Transient"], "max_attempts": 3, "interval": 1, "backoff_rate": 2, "max_delay": 30},)
_ERROR_BODY_LIMIT = 2048


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


def apply_auth(connection: dict[str, Any] | None, headers: dict[str, str], query: dict[str, Any]) -> httpx.Auth | None:
    """Put an `http` connection's credential on the request."""
    if not connection:
        return None
    try:
        return _apply_auth(connection, headers, query)
    except KeyError as exc:
        raise InvalidInput(f"the connection has no '{exc.args[0]}' field, which {connection.get('auth')} auth needs") from None


def _apply_auth(connection: dict[str, Any], headers: dict[str, str], query: dict[str, Any]) -> httpx.Auth | None:
    kind = connection.get("auth")
    if kind == "bearer":
        headers["Authorization"] = f"Bearer {connection['token']}"
    elif kind == "basic":
        return httpx.BasicAuth(connection["username"], connection["password"])
    elif kind == "api_key":
        name, value = connection.get("name", "X-API-Key"), connection["value"]
        if connection.get("in", "header") == "query":
            query[name] = value
        else:
            headers[name] = value
    elif kind not in (None, "none"):
        raise InvalidInput(f"connection auth '{kind}' is not one of bearer, basic, api_key")
    return None


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


def _preview(body: Any) -> Any:
    """The error body as recorded on every attempt: whole when small, else its first 2 KB as text."""
    if isinstance(body, str):
        return body[:_ERROR_BODY_LIMIT]
    text = orjson.dumps(body).decode()
    return body if len(text) <= _ERROR_BODY_LIMIT else text[:_ERROR_BODY_LIMIT] + "…(truncated)"


def error_for_status(response: httpx.Response, body: Any) -> StepError:
    """The typed error for a non-2xx answer."""
    status = response.status_code
    preview = _preview(body)
    message = f"HTTP {status} from {response.request.method} {response.request.url.copy_with(query=None)}"
    details = {"body": preview}
    if status == 429:
        return RateLimited(message, status=status, retry_after=parse_retry_after(response.headers.get("retry-after")), details=details)
    if status >= 500 or status == 408:
        return Transient(message, status=status, retry_after=parse_retry_after(response.headers.get("retry-after")), details=details)
    if status in (401, 403):
        return PermissionDenied(message, status=status, details=details)
    if status in (404, 410):
        return NotFound(message, status=status, details=details)
    if status in (400, 409, 422):
        return InvalidInput(message, status=status, details=details)
    return ConnectorError(message, status=status, details=details)


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
)
async def request(ctx: ActionContext, inp: RequestInput) -> dict[str, Any]:
    """Send an HTTP request; a non-2xx answer fails the step with a typed error."""
    headers = dict(inp.headers)
    query = dict(inp.query)
    auth = apply_auth(ctx.connection, headers, query)
    url = _request_url(inp.url, query)
    try:
        response = await shared_client().request(
            inp.method,
            url,
            headers=headers,
            json=inp.json_body,
            data=inp.form,
            content=inp.body,
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            timeout=inp.timeout,
            follow_redirects=inp.follow_redirects,
        )
    except httpx.TimeoutException as exc:
        raise Transient(f"{inp.method} {inp.url} timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise Transient(f"{inp.method} {inp.url} failed: {type(exc).__name__}: {exc}") from None
    body = parse_body(response)
    if not response.is_success:
        raise error_for_status(response, body)
    return {"status": response.status_code, "headers": dict(response.headers), "body": body}
