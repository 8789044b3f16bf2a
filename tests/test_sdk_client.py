"""Error rules as data and the ConnectorClient: statuses, body predicates, codes, Retry-After,
rate limiter calls, the single retry on AuthExpired, and a flow catching `<connector>.<code>`."""
from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from connectors.core import connector as core_connector
from connectors.sdk import Connector, ConnectorRegistry
from connectors.sdk.auth import AppTokenAuth, BearerAuth, NoAuth, token_endpoint
from connectors.sdk.client import ConnectorClient
from connectors.sdk.error_rules import DEFAULT_RULES, ErrorRule, ErrorRuleError, ErrorRules, parse_body
from connectors.sdk.tokens import TokenCache
from engine.errors import AuthExpired, ConnectorError, InvalidInput, NotFound, RateLimited, StepError, Transient
from engine.interpreter import Interpreter, MappingConnections
from engine.records import MemoryRecorder
from engine.validation import load_flow
from tests import fake_token_platform as fp
from tests.fake_http import FakeHttp, free_port
from tests.fake_token_platform import WECOM_RULES, WECOM_TOKEN_RULES, FakePlatform, platform, platform_server, wecom_client  # noqa: F401


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None,
           url: str = "https://api.example.com/cgi-bin/user/get?access_token=SECRET-TOKEN") -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request("GET", url))


def classify(rules: ErrorRules, status: int, body: Any = None, **kw: Any) -> StepError | None:
    response = answer(status, body, **kw)
    return rules.classify(response, parse_body(response), "wecom")


# --------------------------------------------------------------------------- error rules


@pytest.mark.parametrize("status,kind", [
    (200, None), (204, None), (400, "InvalidInput"), (401, "AuthExpired"), (403, "PermissionDenied"), (404, "NotFound"),
    (410, "NotFound"), (408, "Transient"), (409, "InvalidInput"), (418, "ConnectorError"), (422, "InvalidInput"),
    (429, "RateLimited"), (500, "Transient"), (503, "Transient"), (599, "Transient"), (304, "ConnectorError"),
])
def test_default_rules_map_plain_statuses(status: int, kind: str | None) -> None:
    error = classify(ErrorRules(), status, {"error": "x"} if status != 204 else None)
    assert (error.kind if error else None) == kind
    if error:
        assert error.status == status and error.connector == "wecom" and f"http.{status // 100}xx" in error.names()


def test_retry_after_header_becomes_retry_after() -> None:
    error = classify(ErrorRules(), 429, {}, headers={"Retry-After": "7"})
    assert isinstance(error, RateLimited) and error.retry_after == 7.0
    assert classify(ErrorRules(), 503, {}, headers={"Retry-After": "2"}).retry_after == 2.0
    rules = ErrorRules([{"status": 403, "when": "message == 'quota'", "kind": "RateLimited", "retry_after": "X-RateLimit-Reset"}])
    error = classify(rules, 403, {"message": "quota"}, headers={"X-RateLimit-Reset": "30"})
    assert isinstance(error, RateLimited) and error.retry_after == 30.0
    assert classify(rules, 403, {"message": "nope"}).kind == "PermissionDenied"


def test_body_predicates_extract_code_and_message() -> None:
    rules = ErrorRules(WECOM_RULES)
    error = classify(rules, 200, {"errcode": 45009, "errmsg": "api freq out of limit"})
    assert isinstance(error, RateLimited) and error.retry_after == 60.0
    assert error.code == "45009" and error.status == 200
    assert "wecom.45009" in error.names() and "RateLimited" in error.names()
    assert error.message == "wecom: api freq out of limit [code 45009] (HTTP 200 from GET https://api.example.com/cgi-bin/user/get)"
    assert "SECRET-TOKEN" not in error.message
    assert error.details == {"body": {"errcode": 45009, "errmsg": "api freq out of limit"}}
    assert isinstance(classify(rules, 200, {"errcode": 42001, "errmsg": "expired"}), AuthExpired)
    other = classify(rules, 200, {"errcode": 60111, "errmsg": "userid not found"})
    assert isinstance(other, ConnectorError) and other.to_dict()["code"] == "60111"
    assert classify(rules, 200, {"errcode": 0, "errmsg": "ok"}) is None


def test_first_matching_rule_wins_and_ok_accepts() -> None:
    rules = ErrorRules([
        {"status": 404, "kind": "ok", "description": "deleting what is gone is fine"},
        {"status": "5xx", "when": "code == 'Throttled'", "kind": "RateLimited", "code": "code", "message": "detail"},
        {"status": ["4xx"], "when": "code", "kind": "InvalidInput", "code": "code"},
    ])
    assert classify(rules, 404, {"error": "gone"}) is None
    throttled = classify(rules, 503, {"code": "Throttled", "detail": "slow down"})
    assert isinstance(throttled, RateLimited) and throttled.code == "Throttled" and "slow down" in throttled.message
    assert isinstance(classify(rules, 503, {"code": "Boom"}), Transient)  # falls through to the defaults
    bad = classify(rules, 403, {"code": "E1"})
    assert isinstance(bad, InvalidInput) and bad.code == "E1"
    assert isinstance(ErrorRules([], defaults=True).classify(answer(410), None, None), NotFound)
    assert ErrorRules([], defaults=False).classify(answer(200, {"a": 1}), {"a": 1}) is None
    assert len(ErrorRules()) == len(DEFAULT_RULES)


def test_status_only_rules_leave_2xx_alone_and_body_rules_skip_text() -> None:
    rules = ErrorRules([{"status": "4xx", "kind": "NotFound"}, {"when": "contains(@, 'error')", "kind": "Transient"}])
    assert classify(rules, 200, {"ok": True}) is None
    text = httpx.Response(200, text="error page", request=httpx.Request("GET", "https://x/y"))
    assert rules.classify(text, parse_body(text)) is None
    explicit = ErrorRules([{"status": 202, "kind": "Transient", "description": "still processing"}])
    error = explicit.classify(answer(202, {}), {}, "erp")
    assert isinstance(error, Transient) and "still processing" in error.message


@pytest.mark.parametrize("rule,message", [
    ({"status": 500, "kind": "Oops"}, "kind 'Oops'"),
    ({"kind": "Transient"}, "needs `status`, `when`"),
    ({"status": "5x", "kind": "Transient"}, "not a status"),
    ({"status": 99, "kind": "Transient"}, "not an HTTP status"),
    ({"when": "errcode ==", "kind": "Transient"}, "when: invalid JMESPath"),
    ({"when": "a", "kind": "Transient", "retry": 3}, "unknown error rule field(s): retry"),
    ({"when": "a"}, "needs a `kind`"),
])
def test_malformed_rules_are_rejected_with_their_index(rule: dict, message: str) -> None:
    with pytest.raises(ErrorRuleError) as info:
        ErrorRules([{"status": 404, "kind": "NotFound"}, rule])
    assert str(info.value).startswith("error rule 1: ") and message in str(info.value)


def test_rules_compile_jmespath_once() -> None:
    rule = ErrorRule(kind="RateLimited", when="errcode == `45009`", code="errcode")
    assert rule._when is ErrorRule(kind="Transient", when="errcode == `45009`")._when  # shared compiled expression


# --------------------------------------------------------------------------- the client over HTTP


class CountingLimiter:
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def acquire(self, key: str) -> None:
        self.keys.append(key)


async def test_client_sends_params_json_headers_and_parses_json_and_text(http: FakeHttp) -> None:
    limiter = CountingLimiter()
    client = ConnectorClient("demo", http.base_url + "/", NoAuth(), rate_limiter=limiter, headers={"X-Tenant": "t1"})
    out = await client.request("POST", "echo", params={"q": "a b"}, json={"n": 1}, headers={"X-Trace": "7"})
    assert out["method"] == "POST" and out["query"] == {"q": "a b"} and out["body"] == {"n": 1}
    assert out["headers"]["x-tenant"] == "t1" and out["headers"]["x-trace"] == "7"
    assert out["headers"]["user-agent"].startswith("Flowlink/")
    form = await client.post("/echo", data={"a": "1"})
    assert form["body"] == "a=1"
    assert await client.get(f"{http.base_url}/text") == "hello 你好"
    full = await client.request_full("GET", "/echo", rate_key="demo:users")
    assert full.status == 200 and full.headers["content-type"] == "application/json" and full.attempts == 1
    assert limiter.keys == ["demo", "demo", "demo", "demo:users"]


async def test_client_raises_typed_errors_with_status_and_retry_after(http: FakeHttp) -> None:
    client = ConnectorClient("demo", http.base_url)
    with pytest.raises(Transient) as info:
        await client.get("/status/503", params={"retry_after": "3"})
    assert info.value.status == 503 and info.value.retry_after == 3.0 and info.value.connector == "demo"
    with pytest.raises(RateLimited) as info:
        await client.get("/limited/k1", params={"fail": "1", "retry_after": "5"})
    assert info.value.retry_after == 5.0 and "http.429" in info.value.names()
    with pytest.raises(NotFound):
        await client.get("/status/404")
    with pytest.raises(InvalidInput, match="no base_url"):
        await ConnectorClient("demo").get("/x")


async def test_static_auth_error_is_not_retried(http: FakeHttp) -> None:
    limiter = CountingLimiter()
    client = ConnectorClient("demo", http.base_url, BearerAuth("bad-token"), rate_limiter=limiter)
    with pytest.raises(AuthExpired):
        await client.get("/auth/bearer")
    assert len(http.hits["bearer"]) == 1 and len(limiter.keys) == 1
    assert await ConnectorClient("demo", http.base_url, BearerAuth("good-token")).get("/auth/bearer") == {"ok": True}


async def test_connection_failure_is_transient() -> None:
    client = ConnectorClient("demo", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Transient, match="demo: GET http://127.0.0.1:\\d+/x failed: ConnectError"):
        await client.get("/x", params={"access_token": "secret"})


async def test_auth_retry_calls_the_rate_limiter_for_each_attempt(platform: FakePlatform) -> None:
    limiter = CountingLimiter()
    client = wecom_client(platform.base_url, TokenCache(), rate_limiter=limiter, rate_key="wecom:user")
    await client.get("/cgi-bin/user/get")
    platform.revoke_all()
    full = await client.request_full("GET", "/cgi-bin/user/get")
    assert full.attempts == 2 and full.body["errcode"] == 0
    assert limiter.keys == ["wecom:user"] * 3


# --------------------------------------------------------------------------- in a flow


class GetUser(BaseModel):
    userid: str


def wecom_connector(base_url: str, cache: TokenCache) -> Connector:
    connector = Connector(name="wecom", version="1.0.0", title={"en": "WeCom"}, connection_kinds=("app_token",))

    @connector.action("get_user", input=GetUser)
    async def get_user(ctx, inp: GetUser) -> dict[str, Any]:
        auth = AppTokenAuth.from_connection(ctx.connection, fetch_token=token_endpoint(
            f"{base_url}/cgi-bin/gettoken", params={"corpid": "{app_id}", "corpsecret": "{app_secret}"},
            error_rules=WECOM_TOKEN_RULES))
        client = ConnectorClient("wecom", base_url, auth, WECOM_RULES, cache)
        return await client.get("/cgi-bin/user/get", params={"userid": inp.userid})

    return connector


async def test_a_flow_catches_a_platform_code(platform: FakePlatform) -> None:
    registry = ConnectorRegistry([core_connector, wecom_connector(platform.base_url, TokenCache())])
    doc = {"id": "t", "name": "t", "trigger": {"type": "manual"}, "steps": [
        {"id": "user", "type": "action", "action": "wecom.get_user", "connection": "wecom-main", "args": {"userid": "zs"},
         "retry": [], "catch": [{"errors": ["wecom.45009"], "next": "throttled"}], "end": True},
        {"id": "throttled", "type": "succeed"},
    ]}
    result = load_flow(doc, registry)
    assert result.ok, result.issues
    connections = MappingConnections({"wecom-main": {"app_id": fp.APP_ID, "app_secret": fp.APP_SECRET}})
    run = await Interpreter(MemoryRecorder(), connections).execute(result.flow, None)
    assert run.status == "succeeded", run.error
    assert run.output["name"] == "Zhang San"
    platform.rate_limited = True
    run = await Interpreter(MemoryRecorder(), connections).execute(result.flow, None)
    assert run.status == "succeeded", run.error
    step = [s for s in run.steps if s.step_id == "user"][0]
    assert step.error["code"] == "45009" and step.error["type"] == "RateLimited" and step.error["connector"] == "wecom"
