"""The two ways a ``kingdee`` connection authenticates, as SDK auth kinds.

- ``kingdee_session``: ``AuthService.LoginByAppSecret`` once, then the session cookies on every
  call (a :class:`SessionLoginAuth`: the session is cached and shared, and a "session lost"
  answer logs in again and retries the call once);
- ``kingdee_signed``: no login, every request signed with ``X-Api-*``/``X-Kd-*`` headers
  (a :class:`SigningAuth`, see :mod:`connectors.kingdee.signing`).

Both need more connection fields than the generic kinds (data center, user, app id and
secret, language), so they are kinds of their own, registered in ``AUTH_KINDS`` on import.
"""
from __future__ import annotations

from functools import partial

import httpx

from connectors.sdk.auth import AUTH_KINDS, AuthField, SessionLoginAuth, SigningAuth, json_login
from connectors.kingdee.signing import sign_request
from engine.errors import InvalidInput

LOGIN_PATH = "Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret.common.kdsvc"

_ACCT = AuthField("acct_id", "Data center ID (账套 ID)", description="System management → data center list, the ID column.")
_USER = AuthField("username", "User name", description="The integration user the third-party app is bound to.")
_APP_ID = AuthField("app_id", "App ID", description="第三方系统登录授权: the app's 应用ID (e.g. 240001_xxxxxxxx).")
_APP_SECRET = AuthField("app_secret", "App secret", secret=True, description="The app's 应用密钥.")
_LCID = AuthField("lcid", "Language (LCID)", required=False, default="2052", description="2052 Simplified Chinese, 1033 English.")


class KingdeeSessionAuth(SessionLoginAuth):
    """LoginByAppSecret session (cookies ``kdservice-sessionid`` and ``ASP.NET_SessionId``)."""

    kind = "kingdee_session"
    title = {"en": "Kingdee app login (session)", "zh": "金蝶第三方应用登录（会话）"}
    fields = (_ACCT, _USER, _APP_ID, _APP_SECRET, _LCID)
    aliases = {"acctid": "acct_id", "appid": "app_id", "appsecret": "app_secret"}

    def __init__(self, acct_id: str, username: str, app_id: str, app_secret: str, lcid: str | int = "2052", *,
                 server_url: str = "", session_ttl: float | None = 1200.0, tenant: str = "") -> None:
        if not server_url:
            raise InvalidInput("kingdee: the connection needs base_url, the K3Cloud server URL (http://host/K3Cloud)")
        self.app_id, self.lcid = app_id, int(lcid)
        body = {"acctID": "{account}", "username": "{username}", "appId": app_id, "appSecret": "{password}", "lcid": self.lcid}
        login = json_login(f"{server_url.rstrip('/')}/{LOGIN_PATH}", body, success="LoginResultType == `1`",
                           message="Message", code="LoginResultType", connector="kingdee")
        super().__init__(username, app_secret, acct_id, login=login, session_ttl=session_ttl, tenant=tenant)

    def cache_identity(self) -> tuple[str, str]:
        """One session per data center, user and app."""
        return f"{self.account}|{self.username}|{self.app_id}", self.password


class KingdeeSignedAuth(SigningAuth):
    """Per-request ``X-Api-*``/``X-Kd-*`` signatures (no session)."""

    kind = "kingdee_signed"
    title = {"en": "Kingdee signed requests", "zh": "金蝶签名认证"}
    fields = (_ACCT, _USER, _APP_ID, _APP_SECRET, _LCID,
              AuthField("org_num", "Organisation number", required=False, default="0",
                        description="The organisation the calls act in (0: the user's default)."))
    aliases = KingdeeSessionAuth.aliases

    def __init__(self, acct_id: str, username: str, app_id: str, app_secret: str, lcid: str | int = "2052",
                 org_num: str | int = "0", tenant: str = "") -> None:
        sign = partial(_sign, acct_id=acct_id, username=username, lcid=str(lcid), org_num=str(org_num))
        super().__init__(app_id, app_secret, sign=sign, tenant=tenant)


def _sign(request: httpx.Request, key_id: str, secret: str, **account: str) -> None:
    """SigningAuth's hook: the key id is the app id, the secret the app secret."""
    sign_request(request, app_id=key_id, app_secret=secret, **account)


for _kind in (KingdeeSessionAuth, KingdeeSignedAuth):
    AUTH_KINDS.setdefault(_kind.kind, _kind)
