"""Auth kinds: how a connection's fields become credentials on a request.

Each kind declares its connection `fields` (so the UI and manifest can render them),
builds from a connection's field dict with :meth:`ConnectorAuth.from_connection`, and is
an ``httpx.Auth`` (usable directly with any ``httpx.AsyncClient``). The
:class:`~connectors.sdk.client.ConnectorClient` drives the same three steps itself:

- ``await auth.credential()``: the current credential (a cached token, a session);
- ``auth.apply(request, credential)``: put it on the request;
- ``await auth.invalidate(credential)``: the platform said it is no longer valid.

Token kinds keep their tokens in a :class:`~connectors.sdk.tokens.TokenCache` (bound with
:meth:`ConnectorAuth.bind`), so concurrent runs and worker processes share one token and
refresh it once. ``await auth.test()`` checks the credentials (fetches a token, logs in)
and reports a clear message.
"""
from __future__ import annotations

import base64
import inspect
import time
from dataclasses import dataclass
from typing import Any, AsyncGenerator, Awaitable, Callable, ClassVar, Generator, Mapping
from urllib.parse import urlencode

import httpx
import orjson

from connectors.sdk.error_rules import ErrorRules, body_preview, parse_body
from connectors.sdk.tokens import Token, TokenCache, memory_token_cache, token_key
from engine.errors import (
    ConnectorError,
    InvalidInput,
    PermissionDenied,
    RateLimited,
    StepError,
    Transient,
)


@dataclass(frozen=True)
class AuthField:
    """One field of a connection, as the UI renders it."""

    name: str
    title: str
    secret: bool = False
    required: bool = True
    description: str = ""
    default: Any = None

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "title": self.title, "secret": self.secret, "required": self.required}
        if self.description:
            data["description"] = self.description
        if self.default is not None:
            data["default"] = self.default
        return data


@dataclass(frozen=True)
class ConnectionTest:
    """The outcome of testing a connection."""

    ok: bool
    message: str
    kind: str | None = None
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": self.ok, "message": self.message}
        if self.kind:
            data["kind"] = self.kind
        if self.code is not None:
            data["code"] = self.code
        return data


def _http() -> httpx.AsyncClient:
    from connectors.sdk.http import shared_client

    return shared_client()


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _where(url: Any) -> str:
    """A URL for messages: never its query string (it may carry a secret)."""
    try:
        return str(httpx.URL(str(url)).copy_with(query=None))
    except Exception:  # noqa: BLE001
        return "the token endpoint"


class ConnectorAuth(httpx.Auth):
    """Base class of the auth kinds (this one adds nothing: see NoAuth)."""

    kind: ClassVar[str] = "none"
    title: ClassVar[dict[str, str]] = {"en": "No authentication"}
    fields: ClassVar[tuple[AuthField, ...]] = ()
    #: connection field names accepted as aliases of constructor arguments
    aliases: ClassVar[dict[str, str]] = {}
    #: whether invalidating the credential and fetching it again can help
    refreshable: bool = False

    connector: str = "?"
    tenant: str = ""
    token_cache: TokenCache | None = None

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_connection(cls, connection: Mapping[str, Any] | None, **options: Any) -> "ConnectorAuth":
        """Build from a connection's fields plus the connector's options (token URL, hooks ...).

        Options fill in what the connection does not give; a required field given by
        neither raises InvalidInput naming it.
        """
        connection = dict(connection or {})
        values: dict[str, Any] = {}
        for name, value in connection.items():
            target = cls.aliases.get(name, name)
            if target in {f.name for f in cls.fields} or target == "tenant":
                if value not in (None, ""):
                    values[target] = value
        for name, value in options.items():
            values.setdefault(name, value)
        for f in cls.fields:
            if f.name not in values:
                if f.required:
                    raise InvalidInput(f"the connection has no '{f.name}' ({f.title}), which {cls.kind} auth needs")
                if f.default is not None:
                    values[f.name] = f.default
        try:
            return cls(**values)
        except TypeError as exc:
            raise InvalidInput(f"{cls.kind} auth: {exc}") from None

    @classmethod
    def connection_schema(cls) -> dict[str, Any]:
        """A JSON Schema of the connection fields (secrets marked writeOnly/password)."""
        props: dict[str, Any] = {}
        for f in cls.fields:
            prop: dict[str, Any] = {"type": "string", "title": f.title}
            if f.secret:
                prop.update(format="password", writeOnly=True)
            if f.description:
                prop["description"] = f.description
            if f.default is not None:
                prop["default"] = f.default
            props[f.name] = prop
        return {"type": "object", "title": cls.title.get("en", cls.kind), "properties": props,
                "required": [f.name for f in cls.fields if f.required], "additionalProperties": True}

    def bind(self, connector: str, token_cache: TokenCache | None = None, tenant: str | None = None) -> "ConnectorAuth":
        """Attach the connector name, the shared token cache and the tenant; returns self."""
        self.connector = connector
        if token_cache is not None:
            self.token_cache = token_cache
        if tenant is not None:
            self.tenant = tenant
        return self

    @property
    def cache(self) -> TokenCache:
        return self.token_cache if self.token_cache is not None else memory_token_cache()

    # ---------------------------------------------------------------- the three steps

    async def credential(self) -> Any:
        """The credential to put on the next request (fetched or refreshed as needed)."""
        return None

    def apply(self, request: httpx.Request, credential: Any) -> None:
        """Put the credential on the request (headers, query, cookies)."""

    async def invalidate(self, credential: Any) -> None:
        """The platform rejected this credential as expired: drop it (once)."""

    # ---------------------------------------------------------------- connection test

    async def check(self) -> str:
        """Verify the credentials without the cache; a success message, or raise StepError."""
        return "nothing to verify for this kind of auth without calling an API"

    async def test(self) -> ConnectionTest:
        """Check the credentials and report ok or a clear error message."""
        try:
            return ConnectionTest(True, await self.check())
        except StepError as exc:
            return ConnectionTest(False, exc.message, kind=exc.kind, code=exc.code)

    # ---------------------------------------------------------------- httpx.Auth

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if type(self).credential is not ConnectorAuth.credential:
            raise RuntimeError(f"{self.kind} auth fetches its credential asynchronously: use an httpx.AsyncClient")
        self.apply(request, None)
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        credential = await self.credential()
        self.apply(request, credential)
        response = yield request
        if self.refreshable and response.status_code == 401:
            await self.invalidate(credential)
            credential = await self.credential()
            self.apply(request, credential)
            yield request

    def _error(self, cls: type[StepError], message: str, **kw: Any) -> StepError:
        return cls(f"{self.connector}: {message}" if self.connector != "?" else message, connector=self.connector, **kw)


class NoAuth(ConnectorAuth):
    """No credentials."""

    def __init__(self, tenant: str = "") -> None:
        self.tenant = tenant


class ApiKeyAuth(ConnectorAuth):
    """A static key in a header (default ``X-API-Key``) or a query parameter."""

    kind = "api_key"
    title = {"en": "API key", "zh": "API 密钥"}
    fields = (
        AuthField("value", "API key", secret=True),
        AuthField("name", "Header or parameter name", required=False, default="X-API-Key"),
        AuthField("location", "Where: header or query", required=False, default="header"),
    )
    aliases = {"in": "location", "key": "value", "api_key": "value"}

    def __init__(self, value: str, name: str = "X-API-Key", location: str = "header", prefix: str = "", tenant: str = "") -> None:
        if location not in ("header", "query"):
            raise InvalidInput(f"api_key auth: location must be header or query, not {location!r}")
        self.value, self.name, self.location, self.prefix, self.tenant = value, name, location, prefix, tenant

    def apply(self, request: httpx.Request, credential: Any) -> None:
        if self.location == "query":
            request.url = request.url.copy_set_param(self.name, self.prefix + self.value)
        else:
            request.headers[self.name] = self.prefix + self.value


class BasicAuth(ConnectorAuth):
    """HTTP Basic: user name and password."""

    kind = "basic"
    title = {"en": "User name and password (Basic)", "zh": "用户名和密码"}
    fields = (AuthField("username", "User name"), AuthField("password", "Password", secret=True))

    def __init__(self, username: str, password: str, tenant: str = "") -> None:
        self.username, self.password, self.tenant = username, password, tenant

    def apply(self, request: httpx.Request, credential: Any) -> None:
        raw = f"{self.username}:{self.password}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()


class BearerAuth(ConnectorAuth):
    """A static bearer token."""

    kind = "bearer"
    title = {"en": "Bearer token", "zh": "访问令牌"}
    fields = (AuthField("token", "Token", secret=True),)

    def __init__(self, token: str, tenant: str = "") -> None:
        self.token, self.tenant = token, tenant

    def apply(self, request: httpx.Request, credential: Any) -> None:
        request.headers["Authorization"] = f"Bearer {self.token}"


# =============================================================================== cached tokens


class CachedTokenAuth(ConnectorAuth):
    """Base of the kinds whose credential is a token fetched and cached by key."""

    refreshable = True

    def cache_identity(self) -> tuple[str, str]:
        """(app id, secret) that, with connector and tenant, make the cache key."""
        raise NotImplementedError

    async def fetch(self, previous: Token | None) -> Token:
        """Get a new token from the platform (`previous` is the stale one, if any)."""
        raise NotImplementedError

    @property
    def key(self) -> str:
        app_id, secret = self.cache_identity()
        return token_key(self.connector, self.tenant, f"{self.kind}:{app_id}", secret)

    async def _fetch(self, previous: Token | None) -> Token:
        try:
            return await self.fetch(previous)
        except StepError as exc:
            if not exc.connector and self.connector != "?":  # a token/login helper that did not know it
                exc.connector = self.connector
                exc.message = f"{self.connector}: {exc.message}"
                exc.args = (exc.message,)
            raise

    async def credential(self) -> Token:
        return await self.cache.get(self.key, self._fetch, connector=self.connector)

    async def invalidate(self, credential: Any) -> None:
        if credential is not None:
            await self.cache.invalidate(self.key, credential)

    async def check(self) -> str:
        # through the cache: the key includes the secret, so a changed or wrong secret is
        # always checked against the platform, and a token fetched here is not wasted (some
        # platforms revoke the previous token when a new one is fetched)
        token = await self.credential()
        life = f" (valid for {token.lifetime:.0f} s)" if token.lifetime is not None else ""
        return f"credentials accepted: got an access token{life}"

    def apply(self, request: httpx.Request, credential: Any) -> None:
        request.headers["Authorization"] = f"Bearer {credential.value}"


async def _oauth2_token_request(auth: "CachedTokenAuth", token_url: str, data: dict[str, Any], client_id: str,
                                client_secret: str, client_auth: str, what: str) -> Token:
    """POST an OAuth2 token request (RFC 6749 §4) and read the answer into a Token."""
    headers = {"Accept": "application/json"}
    form = {k: v for k, v in data.items() if v is not None}
    if client_auth == "basic":
        raw = f"{client_id}:{client_secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    else:
        form.update(client_id=client_id, client_secret=client_secret)
    try:
        response = await _http().post(token_url, data=form, headers=headers)
    except httpx.HTTPError as exc:
        raise auth._error(Transient, f"token request to {_where(token_url)} failed: {type(exc).__name__}: {exc}") from None
    body = parse_body(response)
    if response.is_success and isinstance(body, dict) and body.get("access_token"):
        extra = {k: body[k] for k in ("refresh_token", "token_type", "scope") if body.get(k) is not None}
        expires_in = body.get("expires_in")
        return Token.issue(str(body["access_token"]), float(expires_in) if expires_in not in (None, "") else None, extra)
    status = response.status_code
    code = body.get("error") if isinstance(body, dict) else None
    reason = body.get("error_description") if isinstance(body, dict) else None
    detail = f"{code}: {reason}" if code and reason else (code or reason or f"HTTP {status}")
    where = f"(HTTP {status} from {_where(token_url)})"
    if status == 429:
        raise auth._error(RateLimited, f"token endpoint is rate limiting {where}", status=status, code=code)
    if status >= 500:
        raise auth._error(Transient, f"token endpoint failed: {detail} {where}", status=status, code=code)
    if response.is_success:
        raise auth._error(ConnectorError, f"token endpoint answered without an access_token {where}", status=status,
                          details={"body": body_preview(body)})
    raise auth._error(PermissionDenied, f"{what} rejected: {detail} {where}", status=status, code=code)


class OAuth2ClientCredentials(CachedTokenAuth):
    """OAuth2 client credentials grant: client id and secret for an access token."""

    kind = "oauth2_client_credentials"
    title = {"en": "OAuth2 client credentials", "zh": "OAuth2 客户端凭证"}
    fields = (
        AuthField("client_id", "Client ID"),
        AuthField("client_secret", "Client secret", secret=True),
        AuthField("token_url", "Token URL"),
        AuthField("scope", "Scope", required=False),
    )

    def __init__(self, client_id: str, client_secret: str, token_url: str, scope: str | None = None, *,
                 client_auth: str = "body", extra_params: Mapping[str, Any] | None = None, tenant: str = "") -> None:
        self.client_id, self.client_secret, self.token_url, self.scope = client_id, client_secret, token_url, scope
        self.client_auth, self.extra_params, self.tenant = client_auth, dict(extra_params or {}), tenant

    def cache_identity(self) -> tuple[str, str]:
        return f"{self.token_url}|{self.client_id}|{self.scope or ''}", self.client_secret

    async def fetch(self, previous: Token | None) -> Token:
        data = {"grant_type": "client_credentials", "scope": self.scope, **self.extra_params}
        return await _oauth2_token_request(self, self.token_url, data, self.client_id, self.client_secret,
                                           self.client_auth, "client credentials")


class OAuth2AuthorizationCode(CachedTokenAuth):
    """OAuth2 authorization code grant with refresh tokens.

    The connection holds the refresh token (and possibly an access token and its expiry)
    obtained when the user connected the account; refreshed tokens, including a rotated
    refresh token, live in the token cache. A token is refreshed shortly before it
    expires and whenever the platform signals an auth error (a 401, or a code in a 200
    body that the client's error rules map to AuthExpired).
    """

    kind = "oauth2_authorization_code"
    title = {"en": "OAuth2 (authorize an account)", "zh": "OAuth2 授权"}
    fields = (
        AuthField("client_id", "Client ID"),
        AuthField("client_secret", "Client secret", secret=True),
        AuthField("token_url", "Token URL"),
        AuthField("refresh_token", "Refresh token", secret=True),
        AuthField("access_token", "Access token", secret=True, required=False),
        AuthField("expires_at", "Access token expiry (epoch seconds)", required=False),
        AuthField("authorize_url", "Authorization URL", required=False),
        AuthField("scope", "Scope", required=False),
    )

    def __init__(self, client_id: str, client_secret: str, token_url: str, refresh_token: str, *,
                 access_token: str | None = None, expires_at: float | str | None = None,
                 authorize_url: str | None = None, scope: str | None = None, client_auth: str = "body",
                 tenant: str = "") -> None:
        self.client_id, self.client_secret, self.token_url = client_id, client_secret, token_url
        self.refresh_token, self.access_token = refresh_token, access_token
        self.expires_at = float(expires_at) if expires_at not in (None, "") else None
        self.authorize_url, self.scope, self.client_auth, self.tenant = authorize_url, scope, client_auth, tenant

    def cache_identity(self) -> tuple[str, str]:
        return f"{self.token_url}|{self.client_id}", f"{self.client_secret}\x1f{self.refresh_token}"

    async def fetch(self, previous: Token | None) -> Token:
        if previous is None and self.access_token and (self.expires_at is None or self.expires_at > time.time() + 60):
            return Token(self.access_token, self.expires_at, issued_at=time.time(), extra={"refresh_token": self.refresh_token})
        refresh = (previous.extra.get("refresh_token") if previous is not None else None) or self.refresh_token
        token = await _oauth2_token_request(self, self.token_url, {"grant_type": "refresh_token", "refresh_token": refresh},
                                            self.client_id, self.client_secret, self.client_auth, "refresh token")
        if not token.extra.get("refresh_token"):  # not rotated: keep using the one we have
            token = Token(token.value, token.expires_at, token.issued_at, {**token.extra, "refresh_token": refresh})
        return token

    async def check(self) -> str:
        token = await self.credential()
        left = f", expires in {token.expires_at - time.time():.0f} s" if token.expires_at else ""
        return f"authorized: access token available{left}"

    def authorization_url(self, redirect_uri: str, state: str, scope: str | None = None, **extra: str) -> str:
        """Where to send the user to authorize the account."""
        if not self.authorize_url:
            raise InvalidInput("oauth2: no authorize_url configured")
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri, "state": state}
        if scope or self.scope:
            params["scope"] = scope or self.scope  # type: ignore[assignment]
        params.update(extra)
        sep = "&" if "?" in self.authorize_url else "?"
        return f"{self.authorize_url}{sep}{urlencode(params)}"

    @classmethod
    async def exchange_code(cls, code: str, redirect_uri: str, *, client_id: str, client_secret: str, token_url: str,
                            client_auth: str = "body") -> dict[str, Any]:
        """Trade an authorization code for tokens; returns the connection fields to store."""
        probe = cls(client_id, client_secret, token_url, refresh_token="")
        token = await _oauth2_token_request(probe, token_url, {"grant_type": "authorization_code", "code": code,
                                                               "redirect_uri": redirect_uri},
                                            client_id, client_secret, client_auth, "authorization code")
        if not token.extra.get("refresh_token"):
            raise ConnectorError("oauth2: the token endpoint issued no refresh token (is offline access requested?)")
        return {"client_id": client_id, "client_secret": client_secret, "token_url": token_url,
                "access_token": token.value, "refresh_token": token.extra["refresh_token"], "expires_at": token.expires_at}


# =============================================================================== app tokens

FetchToken = Callable[[str, str], "Awaitable[tuple[str, float | None]] | tuple[str, float | None]"]


class AppTokenAuth(CachedTokenAuth):
    """An app token fetched with an app id and secret (WeCom, DingTalk, Douyin, Yonyou ...).

    `fetch_token(app_id, app_secret)` (sync or async) returns ``(token, expires_in)``; see
    :func:`token_endpoint` for the common "GET/POST a URL, read two fields" case. The
    token goes into the query parameter or header `name` (with `prefix`), or with
    ``location="body"`` into the top level of the JSON object body (Fxiaoke style), together
    with `body_fields`: ``{body field: key of the token's extra}`` (e.g. the corp id the
    token endpoint returned).
    """

    kind = "app_token"
    title = {"en": "App ID and secret", "zh": "应用 ID 和密钥"}
    fields = (AuthField("app_id", "App ID"), AuthField("app_secret", "App secret", secret=True))
    aliases = {"corpid": "app_id", "corp_id": "app_id", "app_key": "app_id", "appkey": "app_id",
               "corpsecret": "app_secret", "secret": "app_secret"}

    def __init__(self, app_id: str, app_secret: str, *, fetch_token: FetchToken, location: str = "query",
                 name: str = "access_token", prefix: str = "", body_fields: Mapping[str, str] | None = None,
                 tenant: str = "") -> None:
        if location not in ("header", "query", "body"):
            raise InvalidInput(f"app_token auth: location must be header, query or body, not {location!r}")
        self.app_id, self.app_secret, self.fetch_token = app_id, app_secret, fetch_token
        self.location, self.name, self.prefix, self.tenant = location, name, prefix, tenant
        self.body_fields = dict(body_fields or {})

    def cache_identity(self) -> tuple[str, str]:
        return self.app_id, self.app_secret

    async def fetch(self, previous: Token | None) -> Token:
        result = await _maybe_await(self.fetch_token(self.app_id, self.app_secret))
        if isinstance(result, Token):
            return result
        value, expires_in = result
        return Token.issue(str(value), None if expires_in is None else float(expires_in))

    def apply(self, request: httpx.Request, credential: Any) -> None:
        value = self.prefix + credential.value
        if self.location == "query":
            request.url = request.url.copy_set_param(self.name, value)
        elif self.location == "body":
            fields = {name: credential.extra[key] for name, key in self.body_fields.items() if key in credential.extra}
            merge_json_body(request, {self.name: value, **fields})
        else:
            request.headers[self.name] = value


def merge_json_body(request: httpx.Request, fields: Mapping[str, Any]) -> None:
    """Set top-level `fields` in the request's JSON object body (an empty body becomes ``{}``)."""
    try:
        body = orjson.loads(request.content) if request.content else {}
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise InvalidInput("this connection puts its token into the JSON body: the request needs a JSON object body")
    body.update(fields)
    content = orjson.dumps(body)
    request.stream = httpx.ByteStream(content)
    request._content = content  # httpx keeps the read body here; the stream above is what is sent
    request.headers["Content-Length"] = str(len(content))
    request.headers["Content-Type"] = "application/json"


def _fill(template: Any, values: Mapping[str, str]) -> Any:
    """Replace ``{app_id}``-style placeholders in strings of a nested value."""
    if isinstance(template, str):
        for name, value in values.items():
            template = template.replace("{" + name + "}", value)
        return template
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


def token_endpoint(url: str, *, method: str = "GET", params: Mapping[str, Any] | None = None,
                   json: Any = None, data: Mapping[str, Any] | None = None, token: str = "access_token",
                   expires_in: str | None = "expires_in", error_rules: ErrorRules | list | None = None,
                   connector: str | None = None, extra: Mapping[str, str] | None = None,
                   values: Mapping[str, str] | None = None) -> Callable[[str, str], Awaitable[Any]]:
    """A `fetch_token` for AppTokenAuth from data: where to ask and which fields to read.

    `params`/`json`/`data` may use ``{app_id}`` and ``{app_secret}`` (and the names of
    `values`, more fixed placeholders such as a permanent code); `token` and `expires_in`
    are JMESPath over the answer. With `extra` (``{name: JMESPath}``) the answer's other
    fields are kept in the token's ``extra`` (a :class:`Token` is returned instead of a
    pair). Errors are classified by `error_rules`; a rejected secret is reported as
    PermissionDenied with the platform's code and message.
    """
    from engine.expressions import compile_expression

    token_expr = compile_expression(token)
    expires_expr = compile_expression(expires_in) if expires_in else None
    rules = error_rules if isinstance(error_rules, ErrorRules) else ErrorRules(error_rules or ())

    extra_exprs = {name: compile_expression(path) for name, path in (extra or {}).items()}
    fixed = dict(values or {})

    async def fetch_token(app_id: str, app_secret: str) -> Any:
        values = {**fixed, "app_id": app_id, "app_secret": app_secret}
        try:
            response = await _http().request(method, url, params=_fill(params, values), json=_fill(json, values),
                                             data=_fill(data, values))
        except httpx.HTTPError as exc:
            raise Transient(f"token request to {_where(url)} failed: {type(exc).__name__}: {exc}", connector=connector) from None
        body = parse_body(response)
        error = rules.classify(response, body, None)
        if error is not None:
            error.connector = connector
            prefix = f"{connector}: " if connector else ""
            if error.kind in ("RateLimited", "Transient"):
                error.message = f"{prefix}token endpoint: {error.message}"
                error.args = (error.message,)
                raise error
            raise PermissionDenied(f"{prefix}credentials rejected by the token endpoint: {error.message}", code=error.code,
                                   status=error.status, connector=connector, details=error.details)
        value = token_expr.search(body) if isinstance(body, dict) else None
        if not value:
            raise ConnectorError(f"the token endpoint {_where(url)} answered without a token (`{token}`)",
                                 connector=connector, details={"body": body_preview(body)})
        lifetime = expires_expr.search(body) if expires_expr is not None else None
        seconds = float(lifetime) if lifetime not in (None, "") else None
        if extra_exprs:
            return Token.issue(str(value), seconds, {name: expr.search(body) for name, expr in extra_exprs.items()})
        return str(value), seconds

    return fetch_token


# =============================================================================== sessions

Login = Callable[[str, str, Mapping[str, Any]], "Awaitable[Mapping[str, str]] | Mapping[str, str]"]


class SessionLoginAuth(CachedTokenAuth):
    """A login call that sets session cookies (Kingdee K3Cloud style); re-login on session loss.

    `login(username, password, extra)` returns the session cookies (see :func:`json_login`);
    the session is cached like a token for `session_ttl` seconds, and dropped when the
    client's error rules say it was lost (AuthExpired), which logs in again once.
    """

    kind = "session_login"
    title = {"en": "User name and password (login session)", "zh": "账号登录"}
    fields = (
        AuthField("username", "User name"),
        AuthField("password", "Password", secret=True),
        AuthField("account", "Account / data center ID", required=False),
    )
    aliases = {"acct_id": "account", "acctid": "account"}

    def __init__(self, username: str, password: str, account: str | None = None, *, login: Login,
                 session_ttl: float | None = 1200.0, tenant: str = "") -> None:
        self.username, self.password, self.account, self.login = username, password, account, login
        self.session_ttl, self.tenant = session_ttl, tenant

    def cache_identity(self) -> tuple[str, str]:
        return f"{self.account or ''}|{self.username}", self.password

    async def fetch(self, previous: Token | None) -> Token:
        cookies = await _maybe_await(self.login(self.username, self.password, {"account": self.account}))
        if not cookies:
            raise self._error(ConnectorError, "login answered without setting a session cookie")
        return Token.issue(orjson.dumps(dict(cookies)).decode(), self.session_ttl)

    async def check(self) -> str:
        await self.credential()
        return "logged in"

    def apply(self, request: httpx.Request, credential: Any) -> None:
        cookies = orjson.loads(credential.value)
        request.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())


def json_login(url: str, body: Any, *, success: str, message: str | None = None, code: str | None = None,
               connector: str | None = None) -> Login:
    """A `login` for SessionLoginAuth: POST JSON (placeholders ``{username}``, ``{password}``,
    ``{account}``), succeed when the JMESPath `success` holds, return the cookies set.

    A private client is used, so session cookies never enter the shared pooled client.
    """
    from engine.expressions import compile_expression, truthy

    ok_expr = compile_expression(success)
    msg_expr = compile_expression(message) if message else None
    code_expr = compile_expression(code) if code else None

    async def login(username: str, password: str, extra: Mapping[str, Any]) -> Mapping[str, str]:
        values = {"username": username, "password": password, "account": str(extra.get("account") or "")}
        try:
            async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
                response = await client.post(url, json=_fill(body, values))
        except httpx.HTTPError as exc:
            raise Transient(f"login at {_where(url)} failed: {type(exc).__name__}: {exc}", connector=connector) from None
        parsed = parse_body(response)
        if response.status_code == 429:
            raise RateLimited(f"login at {_where(url)} is rate limited", status=429, connector=connector)
        if response.status_code >= 500:
            raise Transient(f"login at {_where(url)} failed with HTTP {response.status_code}", status=response.status_code,
                            connector=connector)
        if response.is_success and isinstance(parsed, dict) and truthy(ok_expr.search(parsed)):
            return dict(response.cookies)
        text = msg_expr.search(parsed) if msg_expr is not None and isinstance(parsed, dict) else None
        platform_code = code_expr.search(parsed) if code_expr is not None and isinstance(parsed, dict) else None
        raise PermissionDenied(f"login rejected: {text or 'HTTP ' + str(response.status_code)} "
                               f"(HTTP {response.status_code} from POST {_where(url)})",
                               status=response.status_code, code=platform_code, connector=connector,
                               details={"body": body_preview(parsed)})

    return login


# =============================================================================== signing

Signer = Callable[[httpx.Request, str, str], None]


class SigningAuth(ConnectorAuth):
    """Signs every request with a hook: ``sign(request, key_id, secret)`` adds headers
    (an HMAC of method, path, timestamp and body, say). Wraps an `inner` auth (a token
    kind, for platforms that want both); the signature is computed last, over the final
    request, and again on every retry.
    """

    kind = "signed"
    title = {"en": "Signed requests (key and secret)", "zh": "签名"}
    fields = (AuthField("key_id", "Key ID"), AuthField("secret", "Signing secret", secret=True))
    aliases = {"access_key": "key_id", "secret_key": "secret"}
    requires_request_body = True  # the signature covers the body

    def __init__(self, key_id: str, secret: str, *, sign: Signer, inner: ConnectorAuth | None = None, tenant: str = "") -> None:
        self.key_id, self.secret, self.sign, self.inner, self.tenant = key_id, secret, sign, inner or NoAuth(), tenant
        self.refreshable = self.inner.refreshable

    def bind(self, connector: str, token_cache: TokenCache | None = None, tenant: str | None = None) -> "SigningAuth":
        super().bind(connector, token_cache, tenant)
        self.inner.bind(connector, token_cache, tenant)
        return self

    async def credential(self) -> Any:
        return await self.inner.credential()

    def apply(self, request: httpx.Request, credential: Any) -> None:
        self.inner.apply(request, credential)
        self.sign(request, self.key_id, self.secret)

    async def invalidate(self, credential: Any) -> None:
        await self.inner.invalidate(credential)

    async def check(self) -> str:
        return await self.inner.check()


#: Auth kinds by the name a manifest or connection uses.
AUTH_KINDS: dict[str, type[ConnectorAuth]] = {
    "none": NoAuth,
    ApiKeyAuth.kind: ApiKeyAuth,
    BasicAuth.kind: BasicAuth,
    BearerAuth.kind: BearerAuth,
    OAuth2ClientCredentials.kind: OAuth2ClientCredentials,
    OAuth2AuthorizationCode.kind: OAuth2AuthorizationCode,
    AppTokenAuth.kind: AppTokenAuth,
    SessionLoginAuth.kind: SessionLoginAuth,
    SigningAuth.kind: SigningAuth,
}


def register_auth_kind(cls: type[ConnectorAuth]) -> type[ConnectorAuth]:
    """Make a connector's own auth kind (a subclass, e.g. an app token with a third credential)
    usable by name in ``Connector(auth=...)`` and connections; usable as a class decorator."""
    existing = AUTH_KINDS.get(cls.kind)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"auth kind '{cls.kind}' is already registered by {existing.__module__}.{existing.__qualname__}")
    AUTH_KINDS[cls.kind] = cls
    return cls


def auth_from_connection(kind: str, connection: Mapping[str, Any] | None, **options: Any) -> ConnectorAuth:
    """Build the auth of kind `kind` from a connection's fields and the connector's options."""
    cls = AUTH_KINDS.get(kind)
    if cls is None:
        raise InvalidInput(f"unknown auth kind '{kind}' (known: {', '.join(AUTH_KINDS)})")
    return cls.from_connection(connection, **options)


__all__ = [
    "AUTH_KINDS",
    "ApiKeyAuth",
    "AppTokenAuth",
    "AuthField",
    "BasicAuth",
    "BearerAuth",
    "CachedTokenAuth",
    "ConnectionTest",
    "ConnectorAuth",
    "NoAuth",
    "OAuth2AuthorizationCode",
    "OAuth2ClientCredentials",
    "SessionLoginAuth",
    "SigningAuth",
    "auth_from_connection",
    "json_login",
    "merge_json_body",
    "register_auth_kind",
    "token_endpoint",
]
