"""The Yonyou app token: a signed ``getAccessToken`` call, cached by the SDK's AppTokenAuth."""
from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from connectors.sdk.auth import token_endpoint
from connectors.yonyou.signing import token_signature

TOKEN_PATH = "/open-auth/selfAppAuth/base/v1/getAccessToken"

#: Answers of the token endpoint: success is code "00000".
TOKEN_RULES = [
    {"when": "contains(['310032', '310039', '310042', '310046'], to_string(code))", "kind": "RateLimited",
     "code": "code", "message": "message", "retry_after": 1},
    {"when": "to_string(code) != '00000'", "kind": "PermissionDenied", "code": "code", "message": "message"},
]


def token_base(gateway_url: str) -> str:
    """The auth host for a gateway: ``…/iuap-api-gateway`` → ``…/iuap-api-auth``, else the same address."""
    base = gateway_url.rstrip("/")
    if base.endswith("/iuap-api-gateway"):
        return base[: -len("/iuap-api-gateway")] + "/iuap-api-auth"
    return base


def signed_token_fetcher(gateway_url: str) -> Callable[[str, str], Awaitable[tuple[str, float | None]]]:
    """A `fetch_token` for AppTokenAuth: GET getAccessToken with a fresh timestamp and signature."""
    url = token_base(gateway_url) + TOKEN_PATH

    async def fetch_token(app_key: str, app_secret: str) -> tuple[str, float | None]:
        """A new token and its lifetime; PermissionDenied when the platform refuses the app."""
        params: dict[str, Any] = {"appKey": app_key, "timestamp": str(int(time.time() * 1000))}
        params["signature"] = token_signature(params, app_secret)
        endpoint = token_endpoint(url, params=params, token="data.access_token", expires_in="data.expire",
                                  error_rules=TOKEN_RULES, connector="yonyou")
        return await endpoint(app_key, app_secret)

    return fetch_token
