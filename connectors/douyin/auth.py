"""Douyin credentials: the user's OAuth token (refresh + refresh-token renewal) and the app's client_token.

Two auth kinds, registered with the SDK so connections name them in ``auth``:

- ``douyin_oauth`` (default): a user authorized the app; the connection holds client_key,
  client_secret, the user's refresh_token and open_id. Access tokens (15 days) are
  refreshed through ``POST /oauth/refresh_token/`` shortly before they expire or when an
  API answers 10008/2190008. When the refresh token (30 days) would run out before the new
  access token does, it is renewed with ``POST /oauth/renew_refresh_token/`` (which
  invalidates the old one). Tokens, including the renewed refresh token, live in the SDK
  token cache, so every run and worker process shares one rotation.
- ``douyin_client_token``: app-level ``client_token`` (``POST /oauth/client_token/``, 2 h)
  for APIs that need no user.

Both send the token in the ``access-token`` header.
"""
from __future__ import annotations

from typing import Any, Mapping

import httpx

from connectors.douyin.errors import DOUYIN_RULES, REFRESH_EXPIRED_CODE
from connectors.sdk.auth import (
    AppTokenAuth,
    AuthField,
    CachedTokenAuth,
    register_auth_kind,
    token_endpoint,
)
from connectors.sdk.error_rules import ErrorRules, parse_body
from connectors.sdk.http import shared_client
from connectors.sdk.tokens import Token
from engine.errors import ConnectorError, PermissionDenied, Transient

DEFAULT_BASE_URL = "https://open.douyin.com"
TOKEN_HEADER = "access-token"
#: renew the refresh token when it would expire less than this long after the new access token
RENEW_MARGIN = 86400.0

_RULES = ErrorRules(DOUYIN_RULES)


def _base(base_url: str | None) -> str:
    return (base_url or DEFAULT_BASE_URL).rstrip("/")


@register_auth_kind
class DouyinUserAuth(CachedTokenAuth):
    """A Douyin account's OAuth token, refreshed and renewed as described in the module docstring."""

    kind = "douyin_oauth"
    title = {"en": "Douyin account (OAuth)", "zh": "抖音账号授权"}
    fields = (
        AuthField("client_key", "Client key"),
        AuthField("client_secret", "Client secret", secret=True),
        AuthField("refresh_token", "Refresh token", secret=True),
        AuthField("open_id", "Open ID of the authorized account", required=False),
        AuthField("access_token", "Access token", secret=True, required=False),
        AuthField("expires_at", "Access token expiry (epoch seconds)", required=False),
        AuthField("base_url", "API base URL", required=False, default=DEFAULT_BASE_URL),
    )

    def __init__(self, client_key: str, client_secret: str, refresh_token: str, *, open_id: str | None = None,
                 access_token: str | None = None, expires_at: float | str | None = None,
                 base_url: str = DEFAULT_BASE_URL, tenant: str = "") -> None:
        self.client_key, self.client_secret, self.refresh_token = client_key, client_secret, refresh_token
        self.open_id, self.access_token, self.base_url, self.tenant = open_id, access_token, _base(base_url), tenant
        self.expires_at = float(expires_at) if expires_at not in (None, "") else None

    def cache_identity(self) -> tuple[str, str]:
        return f"{self.base_url}|{self.client_key}|{self.open_id or ''}", f"{self.client_secret}\x1f{self.refresh_token}"

    def _now(self) -> float:
        return self.cache.clock()  # the cache's clock, so tests can move time for both

    async def fetch(self, previous: Token | None) -> Token:
        now = self._now()
        if previous is None and self.access_token and self.expires_at is not None and self.expires_at > now + 60:
            return Token(self.access_token, self.expires_at, issued_at=now, extra={"refresh_token": self.refresh_token})
        extra = dict(previous.extra) if previous is not None else {}
        refresh = extra.get("refresh_token") or self.refresh_token
        data = await self._call("/oauth/refresh_token/", {"client_key": self.client_key, "grant_type": "refresh_token",
                                                           "refresh_token": refresh})
        if not data.get("access_token"):
            raise self._error(ConnectorError, "the refresh answered without an access_token")
        token = Token.issue(str(data["access_token"]), float(data["expires_in"]) if data.get("expires_in") else None, now=now)
        refresh = data.get("refresh_token") or refresh
        refresh_expires_at = now + float(data["refresh_expires_in"]) if data.get("refresh_expires_in") else extra.get("refresh_expires_at")
        if refresh_expires_at is not None and token.expires_at is not None and refresh_expires_at < token.expires_at + RENEW_MARGIN:
            refresh, refresh_expires_at = await self._renew(refresh, refresh_expires_at, now)
        return Token(token.value, token.expires_at, token.issued_at,
                     {"refresh_token": refresh, "refresh_expires_at": refresh_expires_at,
                      "open_id": data.get("open_id") or extra.get("open_id") or self.open_id, "scope": data.get("scope")})

    async def _renew(self, refresh: str, refresh_expires_at: float, now: float) -> tuple[str, float]:
        """A renewed refresh token and its expiry; the current one when renewal is refused
        (renewals used up): it keeps working until it expires, then the user re-authorizes."""
        try:
            renewed = await self._call("/oauth/renew_refresh_token/", {"client_key": self.client_key, "refresh_token": refresh})
        except PermissionDenied:
            return refresh, refresh_expires_at
        return str(renewed["refresh_token"]), now + float(renewed.get("expires_in") or 0)

    async def _call(self, path: str, form: Mapping[str, str]) -> dict[str, Any]:
        """POST a form to an OAuth endpoint and return its ``data``; typed errors on failure."""
        url = f"{self.base_url}{path}"
        try:
            response = await shared_client().post(url, data=dict(form))
        except httpx.HTTPError as exc:
            raise self._error(Transient, f"{path} failed: {type(exc).__name__}: {exc}") from None
        body = parse_body(response)
        error = _RULES.classify(response, body, self.connector)
        if error is not None:
            if str(error.code) == str(REFRESH_EXPIRED_CODE):
                raise PermissionDenied(f"{error.message}; the Douyin account must authorize the app again for a new "
                                       "refresh_token", code=error.code, status=error.status, connector=error.connector)
            if error.kind == "AuthExpired":  # an expired token at the refresh endpoint means the grant is gone
                raise PermissionDenied(error.message, code=error.code, status=error.status, connector=error.connector)
            raise error
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise self._error(ConnectorError, f"{path} answered without a data object")
        return data

    async def check(self) -> str:
        token = await self.credential()
        who = token.extra.get("open_id") or self.open_id or "?"
        return f"authorized: access token for open_id {who} available"

    def apply(self, request: httpx.Request, credential: Any) -> None:
        request.headers[TOKEN_HEADER] = credential.value


@register_auth_kind
class DouyinClientTokenAuth(AppTokenAuth):
    """The app's client_token (no user): ``POST /oauth/client_token/`` with client_key and secret."""

    kind = "douyin_client_token"
    title = {"en": "Douyin app (client_token)", "zh": "抖音应用凭证"}
    fields = (
        AuthField("client_key", "Client key"),
        AuthField("client_secret", "Client secret", secret=True),
        AuthField("base_url", "API base URL", required=False, default=DEFAULT_BASE_URL),
    )
    aliases: dict[str, str] = {}

    def __init__(self, client_key: str, client_secret: str, *, base_url: str = DEFAULT_BASE_URL, tenant: str = "") -> None:
        fetch = token_endpoint(f"{_base(base_url)}/oauth/client_token/", method="POST",
                               json={"client_key": "{app_id}", "client_secret": "{app_secret}",
                                     "grant_type": "client_credential"},
                               token="data.access_token", expires_in="data.expires_in", error_rules=DOUYIN_RULES,
                               connector="douyin")
        super().__init__(client_key, client_secret, fetch_token=fetch, location="header", name=TOKEN_HEADER, tenant=tenant)
        self.base_url = _base(base_url)

    def cache_identity(self) -> tuple[str, str]:
        return f"{self.base_url}|{self.app_id}", self.app_secret

