"""Auth kinds against tests/fake_token_platform.py: each kind is accepted where the
platform accepts it, rejected where it rejects, and refreshes/logs in again when told."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import httpx
import pytest

from connectors.sdk.auth import (
    AUTH_KINDS,
    ApiKeyAuth,
    AppTokenAuth,
    BasicAuth,
    BearerAuth,
    NoAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    SessionLoginAuth,
    SigningAuth,
    auth_from_connection,
    json_login,
)
from connectors.sdk.client import ConnectorClient
from connectors.sdk.tokens import TokenCache
from engine.errors import AuthExpired, InvalidInput, PermissionDenied
from tests import fake_token_platform as fp
from tests.fake_token_platform import FakePlatform, platform, platform_server, wecom_auth, wecom_client  # noqa: F401

V2_RULES = [{"when": "contains([`40014`, `42001`], code)", "kind": "AuthExpired", "code": "code", "message": "msg"}]


def oauth_code_auth(platform: FakePlatform, **fields) -> OAuth2AuthorizationCode:
    return OAuth2AuthorizationCode.from_connection({
        "client_id": fp.CLIENT_ID, "client_secret": fp.CLIENT_SECRET, "token_url": f"{platform.base_url}/oauth/token",
        "refresh_token": "rt-0", **fields})


# --------------------------------------------------------------------------- declared fields


def test_every_kind_declares_its_fields_and_secrets() -> None:
    for kind, cls in AUTH_KINDS.items():
        schema = cls.connection_schema()
        assert schema["type"] == "object", kind
        for f in cls.fields:
            assert f.name in schema["properties"]
            assert (schema["properties"][f.name].get("writeOnly") is True) == f.secret
    assert [f.name for f in AppTokenAuth.fields if f.secret] == ["app_secret"]
    assert {f.name for f in OAuth2AuthorizationCode.fields if f.secret} == {"client_secret", "refresh_token", "access_token"}
    assert BasicAuth.connection_schema()["required"] == ["username", "password"]


def test_from_connection_names_a_missing_field() -> None:
    with pytest.raises(InvalidInput, match="'app_secret' \\(App secret\\)"):
        AppTokenAuth.from_connection({"app_id": "x"}, fetch_token=lambda a, s: ("t", 1))
    with pytest.raises(InvalidInput, match="unknown auth kind 'kerberos'"):
        auth_from_connection("kerberos", {})
    auth = auth_from_connection("api_key", {"value": "k", "in": "query", "name": "key"})
    assert isinstance(auth, ApiKeyAuth) and auth.location == "query" and auth.name == "key"


# --------------------------------------------------------------------------- static credentials


async def test_basic_auth(platform: FakePlatform) -> None:
    good = ConnectorClient("erp", platform.base_url, BasicAuth.from_connection({"username": "bob", "password": "hunter2"}))
    assert await good.get("/basic/me") == {"user": "bob"}
    bad = ConnectorClient("erp", platform.base_url, BasicAuth("bob", "wrong"))
    with pytest.raises(AuthExpired) as info:
        await bad.get("/basic/me")
    assert info.value.status == 401 and "erp" in info.value.message
    result = await bad.test_connection("GET", "/basic/me")
    assert not result.ok and "HTTP 401" in result.message


async def test_bearer_auth(platform: FakePlatform) -> None:
    client = ConnectorClient("crm", platform.base_url, BearerAuth.from_connection({"token": fp.BEARER}))
    assert await client.get("/bearer/me") == {"ok": True}
    assert (await client.test_connection("GET", "/bearer/me")).ok
    with pytest.raises(AuthExpired):
        await ConnectorClient("crm", platform.base_url, BearerAuth("nope")).get("/bearer/me")


@pytest.mark.parametrize("location", ["header", "query"])
async def test_api_key_in_header_or_query(platform: FakePlatform, location: str) -> None:
    name = "X-API-Key" if location == "header" else "api_key"
    client = ConnectorClient("svc", platform.base_url, ApiKeyAuth(fp.API_KEY, name=name, location=location))
    assert await client.get("/apikey/me", params={"x": "1"}) == {"ok": True, "via": location}
    wrong = ConnectorClient("svc", platform.base_url, ApiKeyAuth("bad", name=name, location=location))
    with pytest.raises(PermissionDenied):
        await wrong.get("/apikey/me")


async def test_static_auths_work_as_plain_httpx_auth(platform: FakePlatform) -> None:
    async with httpx.AsyncClient(base_url=platform.base_url) as http:
        assert (await http.get("/basic/me", auth=BasicAuth("bob", "hunter2"))).status_code == 200
        assert (await http.get("/apikey/me", auth=ApiKeyAuth(fp.API_KEY))).status_code == 200
    with httpx.Client(base_url=platform.base_url) as http:
        assert http.get("/bearer/me", auth=BearerAuth(fp.BEARER)).status_code == 200
        with pytest.raises(RuntimeError, match="AsyncClient"):
            http.get("/api/me", auth=OAuth2ClientCredentials("a", "b", "http://x/token"))


# --------------------------------------------------------------------------- OAuth2 client credentials


@pytest.mark.parametrize("client_auth", ["body", "basic"])
async def test_client_credentials(platform: FakePlatform, client_auth: str) -> None:
    auth = OAuth2ClientCredentials.from_connection(
        {"client_id": fp.CLIENT_ID, "client_secret": fp.CLIENT_SECRET, "token_url": f"{platform.base_url}/oauth/token"},
        client_auth=client_auth)
    client = ConnectorClient("api", platform.base_url, auth, token_cache=TokenCache())
    results = await asyncio.gather(*(client.get("/api/me") for _ in range(10)))
    assert results == [{"id": 7, "name": "Alice"}] * 10
    assert platform.calls["oauth:client_credentials"] == 1
    platform.revoke_all()  # 401 -> new token -> retried once
    assert await client.get("/api/me") == {"id": 7, "name": "Alice"}
    assert platform.calls["oauth:client_credentials"] == 2
    assert platform.rejected["api_me"] == 1


async def test_client_credentials_connection_test_reports_a_wrong_secret(platform: FakePlatform) -> None:
    auth = OAuth2ClientCredentials(fp.CLIENT_ID, "wrong", f"{platform.base_url}/oauth/token")
    result = await ConnectorClient("api", platform.base_url, auth, token_cache=TokenCache()).test_connection()
    assert not result.ok and result.kind == "PermissionDenied" and result.code == "invalid_client"
    assert "client credentials rejected: invalid_client: Client authentication failed" in result.message
    assert "wrong" not in result.message
    good = OAuth2ClientCredentials(fp.CLIENT_ID, fp.CLIENT_SECRET, f"{platform.base_url}/oauth/token")
    result = await good.test()
    assert result.ok and "valid for 7200 s" in result.message


async def test_oauth2_through_httpx_auth_flow_refreshes_on_401(platform: FakePlatform) -> None:
    auth = OAuth2ClientCredentials(fp.CLIENT_ID, fp.CLIENT_SECRET, f"{platform.base_url}/oauth/token").bind("api", TokenCache())
    async with httpx.AsyncClient(base_url=platform.base_url) as http:
        assert (await http.get("/api/me", auth=auth)).status_code == 200
        platform.revoke_all()
        assert (await http.get("/api/me", auth=auth)).status_code == 200
    assert platform.calls["oauth:client_credentials"] == 2


# --------------------------------------------------------------------------- OAuth2 authorization code + refresh


async def test_authorization_code_refreshes_an_expired_token_and_keeps_the_rotated_refresh_token(platform: FakePlatform) -> None:
    auth = oauth_code_auth(platform, access_token="stale", expires_at=time.time() - 10)
    client = ConnectorClient("crm", platform.base_url, auth, token_cache=TokenCache())
    assert await client.get("/api/me") == {"id": 7, "name": "Alice"}
    assert platform.calls["oauth:refresh_token"] == 1
    assert "rt-0" not in platform.refresh_tokens  # rotated: the old refresh token is spent
    platform.revoke_all()
    assert await client.get("/api/me") == {"id": 7, "name": "Alice"}  # 401 -> refresh with the *new* refresh token
    assert platform.calls["oauth:refresh_token"] == 2
    assert platform.rejected["api_me"] == 1


async def test_authorization_code_refresh_triggered_by_a_code_in_a_200_body(platform: FakePlatform) -> None:
    platform.tokens["seeded"] = time.time() + 3600
    auth = oauth_code_auth(platform, access_token="seeded")
    client = ConnectorClient("crm", platform.base_url, auth, V2_RULES, TokenCache())
    assert await client.get("/api/v2/me") == {"code": 0, "data": {"id": 7}}
    assert platform.calls["oauth:refresh_token"] == 0  # the seeded access token was used as is
    platform.revoke_all()
    results = await asyncio.gather(*(client.get("/api/v2/me") for _ in range(20)))
    assert results == [{"code": 0, "data": {"id": 7}}] * 20
    assert platform.calls["oauth:refresh_token"] == 1
    assert platform.calls["api_v2_me"] == 1 + 20 + platform.rejected["api_v2_me"]


async def test_authorization_code_with_a_dead_refresh_token_says_so(platform: FakePlatform) -> None:
    auth = OAuth2AuthorizationCode(fp.CLIENT_ID, fp.CLIENT_SECRET, f"{platform.base_url}/oauth/token", "rt-revoked")
    result = await ConnectorClient("crm", platform.base_url, auth, token_cache=TokenCache()).test_connection()
    assert not result.ok and result.code == "invalid_grant"
    assert "refresh token rejected: invalid_grant" in result.message


async def test_authorization_code_exchange_and_authorize_url(platform: FakePlatform) -> None:
    fields = await OAuth2AuthorizationCode.exchange_code("code-1", "https://app/cb", client_id=fp.CLIENT_ID,
                                                         client_secret=fp.CLIENT_SECRET, token_url=f"{platform.base_url}/oauth/token")
    assert fields["refresh_token"] == "rt-from-code" and fields["access_token"].startswith("oa-")
    auth = OAuth2AuthorizationCode.from_connection({**fields, "authorize_url": "https://idp/authorize"})
    assert (await ConnectorClient("crm", platform.base_url, auth, token_cache=TokenCache()).get("/api/me"))["id"] == 7
    assert platform.calls["oauth:refresh_token"] == 0
    url = auth.authorization_url("https://app/cb", "st8", scope="read")
    assert url.startswith("https://idp/authorize?response_type=code&client_id=client-1") and "state=st8" in url
    with pytest.raises(PermissionDenied, match="authorization code rejected: invalid_grant"):
        await OAuth2AuthorizationCode.exchange_code("code-1", "https://app/cb", client_id=fp.CLIENT_ID,
                                                    client_secret=fp.CLIENT_SECRET, token_url=f"{platform.base_url}/oauth/token")


# --------------------------------------------------------------------------- app tokens


async def test_app_token_in_query_and_connection_test(platform: FakePlatform) -> None:
    client = wecom_client(platform.base_url, TokenCache())
    assert (await client.get("/cgi-bin/user/get", params={"userid": "zs"}))["name"] == "Zhang San"
    ok = await client.test_connection("GET", "/cgi-bin/user/get", params={"userid": "zs"})
    assert ok.ok and "got an access token (valid for 7200 s)" in ok.message and "succeeded" in ok.message

    wrong = await wecom_client(platform.base_url, TokenCache(), secret="not-the-secret").test_connection()
    assert not wrong.ok and wrong.kind == "PermissionDenied" and wrong.code == "40001"
    assert wrong.message.startswith("wecom: credentials rejected by the token endpoint: invalid credential, secret is wrong [code 40001]")
    assert "not-the-secret" not in wrong.message


async def test_app_token_from_a_plain_callable_into_a_header(platform: FakePlatform) -> None:
    calls = []

    def fetch_token(app_id: str, app_secret: str):
        calls.append((app_id, app_secret))
        return "static-token", 3600

    auth = AppTokenAuth("id", "secret", fetch_token=fetch_token, location="header", name="Authorization", prefix="Bearer ")
    client = ConnectorClient("x", platform.base_url, auth, token_cache=TokenCache())
    assert await client.get("/bearer/me") == {"ok": True}
    assert await client.get("/bearer/me") == {"ok": True}
    assert calls == [("id", "secret")]


# --------------------------------------------------------------------------- session login


def k3_auth(platform: FakePlatform, password: str = fp.PASSWORD) -> SessionLoginAuth:
    login = json_login(f"{platform.base_url}/k3cloud/login",
                       {"acctid": "{account}", "username": "{username}", "password": "{password}", "lcid": 2052},
                       success="LoginResultType == `1`", message="Message")
    return SessionLoginAuth.from_connection({"username": fp.USER, "password": password, "acct_id": "acct-9"}, login=login)


K3_RULES = [{"when": "Result.ResponseStatus.MsgCode == `1`", "kind": "AuthExpired", "code": "Result.ResponseStatus.MsgCode",
             "message": "Result.ResponseStatus.Errors[0].Message"},
            {"when": "Result.ResponseStatus.IsSuccess == `false`", "kind": "ConnectorError",
             "message": "Result.ResponseStatus.Errors[0].Message"}]


async def test_session_login_and_relogin_on_session_loss(platform: FakePlatform) -> None:
    client = ConnectorClient("kingdee", platform.base_url, k3_auth(platform), K3_RULES, TokenCache())
    rows = await asyncio.gather(*(client.post("/k3cloud/query", json={"FormId": "BD_MATERIAL"}) for _ in range(5)))
    assert rows == [[["100", "Material A"]]] * 5
    assert platform.calls["login"] == 1
    platform.drop_sessions()  # the server forgot every session
    rows = await asyncio.gather(*(client.post("/k3cloud/query", json={}) for _ in range(5)))
    assert rows == [[["100", "Material A"]]] * 5
    assert platform.calls["login"] == 2
    assert platform.rejected["query"] == 5 and platform.calls["query"] == 15


async def test_session_login_wrong_password_is_reported(platform: FakePlatform) -> None:
    result = await ConnectorClient("kingdee", platform.base_url, k3_auth(platform, "bad"), K3_RULES, TokenCache()).test_connection()
    assert not result.ok and result.kind == "PermissionDenied"
    assert "login rejected: 用户名或密码错误 (wrong user name or password)" in result.message
    assert (await k3_auth(platform).test()).ok


# --------------------------------------------------------------------------- request signing


def hmac_signer(request: httpx.Request, key_id: str, secret: str) -> None:
    ts = str(int(time.time()))
    message = f"{request.method}\n{request.url.path}\n{ts}\n".encode() + request.content
    request.headers.update({"X-Key": key_id, "X-Timestamp": ts,
                            "X-Signature": hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()})


async def test_signing_hook_adds_headers_the_platform_verifies(platform: FakePlatform) -> None:
    auth = SigningAuth.from_connection({"key_id": fp.KEY_ID, "secret": fp.SIGNING_SECRET}, sign=hmac_signer)
    client = ConnectorClient("pay", platform.base_url, auth)
    assert await client.post("/signed/echo", json={"amount": 12}) == {"ok": True, "token": None}
    bad = ConnectorClient("pay", platform.base_url, SigningAuth(fp.KEY_ID, "wrong", sign=hmac_signer))
    with pytest.raises(AuthExpired):
        await bad.post("/signed/echo", json={"amount": 12})


async def test_signing_wraps_a_token_auth_and_signs_the_final_request(platform: FakePlatform) -> None:
    auth = SigningAuth(fp.KEY_ID, fp.SIGNING_SECRET, sign=hmac_signer, inner=wecom_auth(platform.base_url))
    client = ConnectorClient("wecom", platform.base_url, auth, token_cache=TokenCache())
    out = await client.post("/signed/echo", json={"a": 1})
    assert out["ok"] and out["token"].startswith("wx-")
    assert auth.refreshable and (await auth.test()).ok


async def test_no_auth() -> None:
    assert (await NoAuth().test()).ok
