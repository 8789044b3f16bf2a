"""ConnectorClient: one place for a connector's HTTP plumbing.

``await client.request("GET", "/cgi-bin/user/get", params={...})`` puts the auth on the
request, waits for the rate limiter (when one is given), sends it on the pooled client,
classifies the answer with the connector's error rules (typed StepError with `code`,
`status` and `connector` set, so flows can match ``<connector>.<code>``), and when the
rules say AuthExpired, invalidates the credential and retries the call exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import httpx

from connectors.sdk.auth import ConnectionTest, ConnectorAuth, NoAuth
from connectors.sdk.error_rules import ErrorRule, ErrorRules, parse_body
from connectors.sdk.http import USER_AGENT, shared_client
from connectors.sdk.tokens import TokenCache
from engine.errors import InvalidInput, StepError, Transient


@dataclass(frozen=True)
class ClientResponse:
    """A successful answer: status, headers and parsed body."""

    status: int
    headers: httpx.Headers
    body: Any
    attempts: int = 1


class ConnectorClient:
    """The HTTP client a connector's actions use; see the module docstring.

    `rate_limiter` is any object with ``async acquire(key)``; it is awaited before every
    attempt with `rate_key` (default: the connector name).
    """

    def __init__(
        self,
        connector_name: str,
        base_url: str | None = None,
        auth: ConnectorAuth | None = None,
        error_rules: ErrorRules | Iterable[ErrorRule | Mapping[str, Any]] | None = None,
        token_cache: TokenCache | None = None,
        rate_limiter: Any = None,
        *,
        tenant: str | None = None,
        rate_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        http: httpx.AsyncClient | None = None,
        body_parser: Callable[[httpx.Response], Any] | None = None,
    ) -> None:
        self.connector = connector_name
        self.base_url = base_url.rstrip("/") if base_url else None
        self.auth = (auth if auth is not None else NoAuth()).bind(connector_name, token_cache, tenant)
        self.error_rules = error_rules if isinstance(error_rules, ErrorRules) else ErrorRules(error_rules or ())
        self.token_cache = token_cache
        self.rate_limiter = rate_limiter
        self.rate_key = rate_key or connector_name
        self.headers = dict(headers or {})
        self.timeout = timeout
        self._http = http
        #: how an answer's body is read (default: JSON when it is JSON, else text)
        self.body_parser = body_parser or parse_body

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http if self._http is not None else shared_client()

    def url(self, path_or_url: str | httpx.URL) -> httpx.URL:
        """An absolute URL as is; a path joined to `base_url`."""
        if isinstance(path_or_url, httpx.URL):
            return path_or_url
        if path_or_url.startswith(("http://", "https://")):
            return httpx.URL(path_or_url)
        if not self.base_url:
            raise InvalidInput(f"{self.connector}: '{path_or_url}' is not an absolute URL and the client has no base_url")
        return httpx.URL(f"{self.base_url}/{path_or_url.lstrip('/')}")

    def _build(self, method: str, url: httpx.URL, params: Any, json: Any, data: Any, content: Any,
               headers: Mapping[str, str] | None, timeout: float | None) -> httpx.Request:
        merged = {"User-Agent": USER_AGENT, **self.headers, **(headers or {})}
        # a fresh Request (not client.build_request): the shared client's cookie jar is not sent
        return httpx.Request(method.upper(), url, params=params, json=json, data=data, content=content, headers=merged,
                             extensions={"timeout": httpx.Timeout(timeout or self.timeout).as_dict()})

    async def request_full(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        rate_key: str | None = None,
        follow_redirects: bool = False,
    ) -> ClientResponse:
        """Like :meth:`request` but returns status and headers as well."""
        url = self.url(path_or_url)
        for attempt in (1, 2):
            if self.rate_limiter is not None:
                await self.rate_limiter.acquire(rate_key or self.rate_key)
            credential = await self.auth.credential()
            request = self._build(method, url, params, json, data, content, headers, timeout)
            self.auth.apply(request, credential)
            try:
                response = await self.http.send(request, follow_redirects=follow_redirects)
            except httpx.TimeoutException as exc:
                raise Transient(f"{self.connector}: {method.upper()} {url.copy_with(query=None)} timed out ({type(exc).__name__})",
                                connector=self.connector) from None
            except httpx.TransportError as exc:
                raise Transient(f"{self.connector}: {method.upper()} {url.copy_with(query=None)} failed: {type(exc).__name__}: {exc}",
                                connector=self.connector) from None
            body = self.body_parser(response)
            error = self.error_rules.classify(response, body, self.connector)
            if error is None:
                return ClientResponse(response.status_code, response.headers, body, attempt)
            if error.kind == "AuthExpired" and attempt == 1 and self.auth.refreshable:
                await self.auth.invalidate(credential)
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        rate_key: str | None = None,
        follow_redirects: bool = False,
    ) -> Any:
        """Send a request and return the parsed body (JSON, else text); raise a typed StepError."""
        response = await self.request_full(method, path_or_url, params=params, json=json, data=data, content=content,
                                           headers=headers, timeout=timeout, rate_key=rate_key,
                                           follow_redirects=follow_redirects)
        return response.body

    async def get(self, path_or_url: str, **kw: Any) -> Any:
        return await self.request("GET", path_or_url, **kw)

    async def post(self, path_or_url: str, **kw: Any) -> Any:
        return await self.request("POST", path_or_url, **kw)

    async def test_connection(self, method: str = "GET", path: str | None = None, **kw: Any) -> ConnectionTest:
        """Check the credentials (fetch a token, log in), then call `path` if given."""
        try:
            message = await self.auth.check()
            if path is not None:
                await self.request(method, path, **kw)
                done = f"{method.upper()} {path} succeeded"
                message = f"{message}; {done}" if self.auth.refreshable else f"credentials accepted: {done}"
            return ConnectionTest(True, message)
        except StepError as exc:
            return ConnectionTest(False, exc.message, kind=exc.kind, code=exc.code)
