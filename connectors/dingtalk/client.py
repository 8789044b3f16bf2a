"""DingTalk HTTP plumbing as data: the two token endpoints, error rules, the rate budget.

DingTalk has two API generations on two hosts, each with its own token call:

* ``oapi.dingtalk.com`` (the connector's ``base_url``): ``GET /gettoken?appkey&appsecret``,
  token in the ``access_token`` query parameter, errors as ``errcode`` in 200 bodies;
* ``api.dingtalk.com``: ``POST /v1.0/oauth2/accessToken {appKey, appSecret}``, token in the
  ``x-acs-dingtalk-access-token`` header, errors as HTTP status plus ``code``.

Both tokens are cached in the engine's shared token cache under different keys, and every
call is counted against a 20 calls/s budget per app *and API* (DingTalk's standard quota).
"""
from __future__ import annotations

from typing import Any, Mapping

from connectors.sdk import ActionContext, Budget
from connectors.sdk.action import rate_key_for
from connectors.sdk.auth import AppTokenAuth, token_endpoint
from connectors.sdk.client import ConnectorClient
from connectors.sdk.error_rules import ErrorRules

NAME = "dingtalk"
OAPI_BASE = "https://oapi.dingtalk.com"
API_BASE = "https://api.dingtalk.com"
API_TOKEN_HEADER = "x-acs-dingtalk-access-token"

#: 20 calls per second per app and API (old 90018 / new QpsLimitForAppkeyAndApi beyond it), counted
#: over 1.1 s so that network jitter between our grant and DingTalk's count does not overrun it.
BUDGET = Budget(20, 1.1, NAME)

_OAPI_THROTTLED = "errcode == `90018` || errcode == `90002` || errcode == `90019` || errcode == `90020`"
_OAPI_TOKEN_BAD = "errcode == `40014` || errcode == `42001` || errcode == `40001` || errcode == `33001`"

#: Old API (oapi): HTTP 200 with a non-zero ``errcode``. 88 wraps auth/permission errors in ``sub_code``.
OAPI_RULES: list[dict[str, Any]] = [
    {"when": _OAPI_THROTTLED, "kind": "RateLimited", "code": "errcode", "message": "errmsg", "retry_after": 1},
    {"when": "errcode == `88` && contains(['40014', '42001', '40001', '33001'], to_string(sub_code))",
     "kind": "AuthExpired", "code": "sub_code", "message": "sub_msg || errmsg"},
    {"when": "errcode == `88`", "kind": "PermissionDenied", "code": "sub_code || errcode", "message": "sub_msg || errmsg"},
    {"when": _OAPI_TOKEN_BAD, "kind": "AuthExpired", "code": "errcode", "message": "errmsg"},
    {"when": "errcode == `-1`", "kind": "Transient", "code": "errcode", "message": "errmsg", "retry_after": 1},
    {"when": "errcode == `60011` || errcode == `300005`", "kind": "PermissionDenied", "code": "errcode", "message": "errmsg"},
    {"when": "errcode == `60121` || errcode == `60003` || errcode == `60020`", "kind": "NotFound", "code": "errcode",
     "message": "errmsg"},
    # robot: 130101 "send too fast" blocks the robot for 10 minutes; 660026 per-minute cap
    {"when": "errcode == `130101` || errcode == `660026`", "kind": "RateLimited", "code": "errcode", "message": "errmsg",
     "retry_after": 60},
    # work notifications: per-minute and daily quotas
    {"when": "errcode == `143103` || errcode == `143104` || errcode == `143105`", "kind": "RateLimited",
     "code": "errcode", "message": "errmsg", "retry_after": 60},
    {"when": "errcode == `310000` && contains(errmsg, 'not match') || errcode == `310000` && contains(errmsg, 'whitelist')",
     "kind": "PermissionDenied", "code": "errcode", "message": "errmsg"},
    {"when": "errcode == `310000` || errcode == `40035` || errcode == `143106`", "kind": "InvalidInput", "code": "errcode",
     "message": "errmsg"},
    {"when": "errcode != null && errcode != `0`", "kind": "ConnectorError", "code": "errcode", "message": "errmsg"},
]

#: New API (api.dingtalk.com): HTTP status plus ``{"code", "message", "requestid"}``.
API_RULES: list[dict[str, Any]] = [
    {"when": "code == 'InvalidAuthentication'", "kind": "AuthExpired", "code": "code", "message": "message"},
    {"status": 403, "when": "starts_with(code, 'Forbidden.AccessDenied.') && contains(code, 'Limit')",
     "kind": "RateLimited", "code": "code", "message": "message", "retry_after": 1},
    {"status": 403, "kind": "PermissionDenied", "code": "code", "message": "message"},
    {"status": 404, "kind": "NotFound", "code": "code", "message": "message"},
    {"status": "4xx", "when": "contains(code, 'NotExist') || contains(code, 'NotFound')", "kind": "NotFound",
     "code": "code", "message": "message"},
    {"status": "5xx", "kind": "Transient", "code": "code", "message": "message"},
    {"status": "4xx", "kind": "InvalidInput", "code": "code", "message": "message"},
]

#: Answers of the token endpoints (a rejected secret becomes PermissionDenied in token_endpoint).
OAPI_TOKEN_RULES: list[dict[str, Any]] = [
    {"when": _OAPI_THROTTLED, "kind": "RateLimited", "code": "errcode", "message": "errmsg", "retry_after": 1},
    {"when": "errcode != null && errcode != `0`", "kind": "ConnectorError", "code": "errcode", "message": "errmsg"},
]
API_TOKEN_RULES: list[dict[str, Any]] = [
    {"status": 403, "when": "contains(code, 'Limit')", "kind": "RateLimited", "code": "code", "message": "message",
     "retry_after": 1},
    {"status": "4xx", "kind": "ConnectorError", "code": "code", "message": "message"},
]


def oapi_auth_options(base_url: str | None) -> dict[str, Any]:
    """The ``app_token`` options for the old API: ``GET <base>/gettoken``, token as a query parameter."""
    base = (base_url or OAPI_BASE).rstrip("/")
    fetch = token_endpoint(f"{base}/gettoken", params={"appkey": "{app_id}", "appsecret": "{app_secret}"},
                           token="access_token", expires_in="expires_in", error_rules=OAPI_TOKEN_RULES, connector=NAME)
    return {"fetch_token": fetch, "location": "query", "name": "access_token"}


class NewApiTokenAuth(AppTokenAuth):
    """The api.dingtalk.com token: a kind of its own so it is cached apart from the oapi token."""

    kind = "dingtalk_api_token"


def api_base_url(connection: Mapping[str, Any] | None) -> str:
    """The new API's address: ``api_base_url``, else ``base_url`` (a proxy or the sandbox serving both), else api.dingtalk.com."""
    fields = connection or {}
    return str(fields.get("api_base_url") or fields.get("base_url") or API_BASE).rstrip("/")


def new_api_auth(connection: Mapping[str, Any] | None) -> NewApiTokenAuth:
    """The api.dingtalk.com token auth of a connection: ``POST /v1.0/oauth2/accessToken``, header token."""
    fields = {k: v for k, v in (connection or {}).items() if k != "auth"}
    fetch = token_endpoint(f"{api_base_url(fields)}/v1.0/oauth2/accessToken", method="POST",
                           json={"appKey": "{app_id}", "appSecret": "{app_secret}"}, token="accessToken",
                           expires_in="expireIn", error_rules=API_TOKEN_RULES, connector=NAME)
    return NewApiTokenAuth.from_connection(fields, fetch_token=fetch, location="header", name=API_TOKEN_HEADER)


def new_api_client(ctx: ActionContext | Any) -> ConnectorClient:
    """A client for api.dingtalk.com with the connection's app key/secret, the shared token cache and budget."""
    from connectors.dingtalk.base import connector  # base imports this module

    auth = new_api_auth(ctx.connection)
    base = api_base_url(ctx.connection)
    limiter, rate_key = None, None
    if ctx.rate_limiter is not None:
        limiter = ctx.rate_limiter.with_budget(BUDGET)
        rate_key = rate_key_for(connector, ctx.connection_name, BUDGET)
    return ConnectorClient(NAME, base, auth, ErrorRules(API_RULES), ctx.token_cache, limiter, rate_key=rate_key)


def api_rate_key(client: ConnectorClient, path: str) -> str:
    """The budget key of one API: DingTalk counts 20 QPS per app *per API*."""
    return f"{client.rate_key}:{path.split('?', 1)[0]}"


async def oapi(ctx: ActionContext, path: str, body: Mapping[str, Any] | None = None, *, method: str = "POST",
               params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Call an oapi endpoint with the app token; the parsed answer (errors already raised by the rules)."""
    client = ctx.client
    return await client.request(method, path, json=dict(body) if body is not None else None, params=params,
                                rate_key=api_rate_key(client, path))


async def api(ctx: ActionContext, method: str, path: str, *, json: Any = None,
              params: Mapping[str, Any] | None = None) -> Any:
    """Call an api.dingtalk.com endpoint with the new-style token."""
    client = new_api_client(ctx)
    return await client.request(method, path, json=json, params=params, rate_key=api_rate_key(client, path))
