"""A fake platform that rejects what real ones reject, for the SDK auth/client tests.

- WeCom style: ``GET /cgi-bin/gettoken?corpid=&corpsecret=`` (errcode 40001 for a wrong
  secret, in a 200 body) and ``GET /cgi-bin/user/get?access_token=`` (40014 invalid,
  42001 expired, 41001 missing, 45009 when `rate_limited` is set, all in 200 bodies);
- OAuth2: ``POST /oauth/token`` (client_credentials, refresh_token with rotation,
  authorization_code; 401 invalid_client, 400 invalid_grant), ``GET /api/me`` (401 for a
  bad token) and ``GET /api/v2/me`` (code 40014 in a 200 body for a bad token);
- ``/basic/me``, ``/bearer/me``, ``/apikey/me`` (header X-API-Key or ?api_key=);
- Kingdee style: ``POST /k3cloud/login`` sets a session cookie, ``POST /k3cloud/query``
  answers 200 with "session lost" (MsgCode 1) when the session is unknown;
- ``POST /signed/echo`` checks an HMAC-SHA256 signature of method, path, timestamp, body.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import time
from collections import Counter
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

APP_ID, APP_SECRET = "corp-1", "app-secret"
CLIENT_ID, CLIENT_SECRET = "client-1", "client-secret"
USER, PASSWORD = "alice", "pa55"
KEY_ID, SIGNING_SECRET = "key-1", "signing-secret"
API_KEY, BEARER, BASIC = "k-123", "static-token", ("bob", "hunter2")


def signature(secret: str, method: str, path: str, timestamp: str, body: bytes) -> str:
    message = f"{method}\n{path}\n{timestamp}\n".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class FakePlatform:
    def __init__(self) -> None:
        self.base_url = ""
        self._ids = itertools.count(1)
        self.reset()
        self.app = Starlette(routes=[
            Route("/cgi-bin/gettoken", self.gettoken),
            Route("/cgi-bin/user/get", self.user_get),
            Route("/oauth/token", self.oauth_token, methods=["POST"]),
            Route("/api/me", self.api_me),
            Route("/api/v2/me", self.api_v2_me),
            Route("/basic/me", self.basic_me),
            Route("/bearer/me", self.bearer_me),
            Route("/apikey/me", self.apikey_me),
            Route("/k3cloud/login", self.k3_login, methods=["POST"]),
            Route("/k3cloud/query", self.k3_query, methods=["POST"]),
            Route("/signed/echo", self.signed_echo, methods=["POST"]),
        ])

    def reset(self) -> None:
        self.calls: Counter[str] = Counter()
        self.tokens: dict[str, float] = {}  # access token -> expires at
        self.refresh_tokens: set[str] = {"rt-0"}
        self.sessions: set[str] = set()
        self.codes: dict[str, str] = {"code-1": "rt-from-code"}
        self.expires_in = 7200.0
        self.token_delay = 0.0
        self.rate_limited = False
        self.reject_all = False
        self.rejected: Counter[str] = Counter()
        self.user_get_times: list[float] = []  # when each /cgi-bin/user/get arrived (rate budget tests)

    def issue(self, prefix: str) -> str:
        token = f"{prefix}-{next(self._ids)}"
        self.tokens[token] = time.time() + self.expires_in
        return token

    def revoke_all(self) -> None:
        """Every access token issued so far stops working (the platform rotated them)."""
        self.tokens.clear()

    def drop_sessions(self) -> None:
        self.sessions.clear()

    def _token_error(self, token: str | None) -> tuple[int, str] | None:
        if not token:
            return 41001, "access_token missing"
        if self.reject_all:
            return 40014, "invalid access_token"
        if token not in self.tokens:
            return 40014, "invalid access_token"
        if self.tokens[token] < time.time():
            return 42001, "access_token expired"
        return None

    # ---------------------------------------------------------------- WeCom style

    async def gettoken(self, request: Request) -> Response:
        self.calls["gettoken"] += 1
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        q = request.query_params
        if q.get("corpid") != APP_ID:
            return JSONResponse({"errcode": 40013, "errmsg": "invalid corpid"})
        if q.get("corpsecret") != APP_SECRET:
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential, secret is wrong"})
        return JSONResponse({"errcode": 0, "errmsg": "ok", "access_token": self.issue("wx"), "expires_in": self.expires_in})

    async def user_get(self, request: Request) -> Response:
        self.calls["user_get"] += 1
        self.user_get_times.append(time.time())
        error = self._token_error(request.query_params.get("access_token"))
        if error:
            self.rejected["user_get"] += 1
            return JSONResponse({"errcode": error[0], "errmsg": error[1]})
        if self.rate_limited:
            return JSONResponse({"errcode": 45009, "errmsg": "api freq out of limit"})
        return JSONResponse({"errcode": 0, "errmsg": "ok", "userid": request.query_params.get("userid"), "name": "Zhang San"})

    # ---------------------------------------------------------------- OAuth2

    async def oauth_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}  # no python-multipart here
        grant = form.get("grant_type")
        self.calls[f"oauth:{grant}"] += 1
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client", "error_description": "Client authentication failed"}, status_code=401)
        if grant == "client_credentials":
            return JSONResponse({"access_token": self.issue("cc"), "token_type": "Bearer", "expires_in": self.expires_in})
        if grant == "refresh_token":
            old = form.get("refresh_token")
            if old not in self.refresh_tokens:
                return JSONResponse({"error": "invalid_grant", "error_description": "refresh token is invalid"}, status_code=400)
            self.refresh_tokens.discard(old)  # rotation: each refresh token works once
            new = f"rt-{next(self._ids)}"
            self.refresh_tokens.add(new)
            return JSONResponse({"access_token": self.issue("oa"), "refresh_token": new, "token_type": "Bearer",
                                 "expires_in": self.expires_in})
        if grant == "authorization_code":
            refresh = self.codes.pop(str(form.get("code")), None)
            if refresh is None:
                return JSONResponse({"error": "invalid_grant", "error_description": "code is invalid"}, status_code=400)
            self.refresh_tokens.add(refresh)
            return JSONResponse({"access_token": self.issue("oa"), "refresh_token": refresh, "expires_in": self.expires_in})
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

    def _bearer(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    async def api_me(self, request: Request) -> Response:
        self.calls["api_me"] += 1
        if self._token_error(self._bearer(request)):
            self.rejected["api_me"] += 1
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"id": 7, "name": "Alice"})

    async def api_v2_me(self, request: Request) -> Response:
        self.calls["api_v2_me"] += 1
        error = self._token_error(self._bearer(request))
        if error:
            self.rejected["api_v2_me"] += 1
            return JSONResponse({"code": error[0], "msg": error[1]})
        return JSONResponse({"code": 0, "data": {"id": 7}})

    # ---------------------------------------------------------------- static credentials

    async def basic_me(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{BASIC[0]}:{BASIC[1]}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "bad credentials"}, status_code=401)
        return JSONResponse({"user": BASIC[0]})

    async def bearer_me(self, request: Request) -> Response:
        if self._bearer(request) != BEARER:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"ok": True})

    async def apikey_me(self, request: Request) -> Response:
        if API_KEY not in (request.headers.get("x-api-key"), request.query_params.get("api_key")):
            return JSONResponse({"message": "Forbidden"}, status_code=403)
        return JSONResponse({"ok": True, "via": "header" if request.headers.get("x-api-key") else "query"})

    # ---------------------------------------------------------------- Kingdee style

    async def k3_login(self, request: Request) -> Response:
        self.calls["login"] += 1
        body = await request.json()
        if body.get("acctid") != "acct-9" or body.get("username") != USER or body.get("password") != PASSWORD:
            return JSONResponse({"LoginResultType": 0, "Message": "用户名或密码错误 (wrong user name or password)"})
        session = f"sess-{next(self._ids)}"
        self.sessions.add(session)
        response = JSONResponse({"LoginResultType": 1, "Message": ""})
        response.set_cookie("kdservice-sessionid", session)
        return response

    async def k3_query(self, request: Request) -> Response:
        self.calls["query"] += 1
        if request.cookies.get("kdservice-sessionid") not in self.sessions:
            self.rejected["query"] += 1
            return JSONResponse({"Result": {"ResponseStatus": {"IsSuccess": False, "MsgCode": 1,
                                                               "Errors": [{"Message": "会话信息已丢失，请重新登录"}]}}})
        return JSONResponse([["100", "Material A"]])

    # ---------------------------------------------------------------- signing

    async def signed_echo(self, request: Request) -> Response:
        body = await request.body()
        ts = request.headers.get("x-timestamp", "")
        expected = signature(SIGNING_SECRET, request.method, request.url.path, ts, body)
        if request.headers.get("x-key") != KEY_ID or not hmac.compare_digest(request.headers.get("x-signature", ""), expected):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if abs(time.time() - float(ts)) > 300:
            return JSONResponse({"error": "stale timestamp"}, status_code=401)
        return JSONResponse({"ok": True, "token": request.query_params.get("access_token")})


# ------------------------------------------------------------------ fixtures and helpers for the SDK tests

import pytest  # noqa: E402

WECOM_RULES = [
    {"when": "errcode == `45009`", "kind": "RateLimited", "code": "errcode", "message": "errmsg", "retry_after": 60},
    {"when": "contains([`40014`, `42001`, `41001`], errcode)", "kind": "AuthExpired", "code": "errcode", "message": "errmsg"},
    {"when": "errcode != `0`", "kind": "ConnectorError", "code": "errcode", "message": "errmsg"},
]
WECOM_TOKEN_RULES = [{"when": "errcode != `0`", "kind": "PermissionDenied", "code": "errcode", "message": "errmsg"}]


def wecom_auth(base_url: str, secret: str = APP_SECRET, app_id: str = APP_ID):
    """An AppTokenAuth for the WeCom-style endpoints, declared as data."""
    from connectors.sdk.auth import AppTokenAuth, token_endpoint

    fetch = token_endpoint(f"{base_url}/cgi-bin/gettoken", params={"corpid": "{app_id}", "corpsecret": "{app_secret}"},
                           error_rules=WECOM_TOKEN_RULES)
    return AppTokenAuth.from_connection({"app_id": app_id, "app_secret": secret}, fetch_token=fetch)


def wecom_client(base_url: str, cache=None, secret: str = APP_SECRET, **kw):
    from connectors.sdk.client import ConnectorClient

    return ConnectorClient("wecom", base_url, wecom_auth(base_url, secret), WECOM_RULES, cache, **kw)


@pytest.fixture(scope="module")
def platform_server():
    from tests.fake_http import ServerThread

    fake = FakePlatform()
    server = ServerThread(fake.app).start()
    fake.base_url = f"http://127.0.0.1:{server.port}"
    yield fake
    server.stop()


@pytest.fixture()
def platform(platform_server: FakePlatform) -> FakePlatform:
    """The fake platform with its state reset for this test."""
    platform_server.reset()
    return platform_server
