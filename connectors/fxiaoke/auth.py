"""Fxiaoke's corp access token: app id, app secret and the corp's permanent code.

``POST /cgi/corpAccessToken/get/V2`` returns ``corpAccessToken`` and ``corpId``; every call
then carries both at the top level of its JSON body. The SDK's AppTokenAuth does the caching
(shared across runs and workers, single-flight), the refresh before expiry and the one retry
after errorCode 20016; this kind only adds the third credential.
"""
from __future__ import annotations

from typing import Any, Mapping

from connectors.sdk.auth import AppTokenAuth, AuthField, register_auth_kind, token_endpoint
from connectors.sdk.tokens import Token

TOKEN_PATH = "/cgi/corpAccessToken/get/V2"

#: Errors of the token endpoint: every non-zero errorCode (always HTTP 200).
TOKEN_RULES = [{"when": "errorCode != `0`", "kind": "PermissionDenied", "code": "errorCode", "message": "errorMessage"}]


@register_auth_kind
class FxiaokeCorpTokenAuth(AppTokenAuth):
    """App ID (``FSAID_…``), app secret and permanent code → a cached corp access token."""

    kind = "fxiaoke_corp_token"
    title = {"en": "Fxiaoke app (corp access token)", "zh": "纷享销客应用（corpAccessToken）"}
    fields = (
        AuthField("app_id", "App ID (FSAID_…)"),
        AuthField("app_secret", "App secret", secret=True),
        AuthField("permanent_code", "Permanent code", secret=True,
                  description="The corp's permanent authorization code of the app."),
    )
    aliases = {"appId": "app_id", "appSecret": "app_secret", "permanentCode": "permanent_code"}

    def __init__(self, app_id: str, app_secret: str, permanent_code: str, *, base_url: str, tenant: str = "") -> None:
        super().__init__(app_id, app_secret, fetch_token=self._fetch_token, location="body", name="corpAccessToken",
                         body_fields={"corpId": "corpId"}, tenant=tenant)
        self.permanent_code, self.base_url = permanent_code, base_url.rstrip("/")

    def cache_identity(self) -> tuple[str, str]:
        # one token per corp authorization of the app, on one Fxiaoke cloud
        return f"{self.base_url}|{self.app_id}|{self.permanent_code}", self.app_secret

    async def _fetch_token(self, app_id: str, app_secret: str) -> Token:
        fetch = token_endpoint(f"{self.base_url}{TOKEN_PATH}", method="POST", token="corpAccessToken",
                               expires_in="expiresIn", extra={"corpId": "corpId"}, error_rules=TOKEN_RULES,
                               json={"appId": "{app_id}", "appSecret": "{app_secret}", "permanentCode": "{permanent_code}"},
                               values={"permanent_code": self.permanent_code}, connector=self.connector)
        return await fetch(app_id, app_secret)


def auth_options(base_url: str | None) -> Mapping[str, Any]:
    """The connector's auth options: the token endpoint lives on the connection's base URL."""
    return {"base_url": base_url or ""}
