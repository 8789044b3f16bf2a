"""The `sms` connector (Alibaba Cloud SMS) in flows against its fake, the RPC signature
against Alibaba's published example, and the fake's own strictness."""
from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from connectors.core import connector as core_connector
from connectors.sdk import ConnectorRegistry
from connectors.sdk.contract import check_connector
from connectors.sdk.sandbox import SandboxServer
from connectors.sms import connector as sms_connector
from connectors.sms import sandbox as fake
from connectors.sms.signing import signature, signed_params, string_to_sign
from engine.runtime import FlowEngine

CONNECTION = {"access_key": fake.ACCESS_KEY, "secret_key": fake.SECRET}
BIRTHDAY = "SMS_465391234"
CODE = "SMS_154950909"


@pytest.fixture()
def platform() -> Iterator[tuple[fake.FakeAliyunSms, str]]:
    sms = fake.FakeAliyunSms()
    with SandboxServer(sms.app) as server:
        yield sms, server.base_url


@pytest.fixture()
def engine(platform: tuple[fake.FakeAliyunSms, str], sqlite_url: str) -> Iterator[FlowEngine]:
    eng = FlowEngine(sqlite_url, registry=ConnectorRegistry([core_connector, sms_connector]))
    eng.connection_store.put("aliyun", "sms", {**CONNECTION, "base_url": platform[1]})
    eng.connection_store.put("wrong-secret", "sms", {**CONNECTION, "secret_key": "not-the-secret", "base_url": platform[1]})
    eng.connection_store.put("unknown-key", "sms", {**CONNECTION, "access_key": "LTAI5tNobody", "base_url": platform[1]})
    yield eng
    eng.close()


def flow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": "sms-test", "name": "sms test", "trigger": {"type": "manual"}, "steps": list(steps)}


def send(step_id: str = "send", connection: str = "aliyun", step: dict[str, Any] | None = None, **args: Any) -> dict[str, Any]:
    base = {"phone_numbers": "13800000000", "sign_name": fake.SIGN_NAME, "template_code": CODE, "template_param": {"code": "4096"}}
    return {"id": step_id, "type": "action", "action": "sms.send_sms", "connection": connection,
            "args": {**base, **args}, "retry": [], **(step or {})}


def caught(step: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The step with a catch-all that ends the run with the error as its output."""
    return ({**step, "catch": [{"errors": ["*"], "next": "failed"}], "end": True},
            {"id": "failed", "type": "set", "value": {"$expr": "error"}, "end": True})


# ------------------------------------------------------------------ signing


def test_signature_matches_alibabas_published_example() -> None:
    # help.aliyun.com "签名机制" example: DescribeRegions, AccessKey testid / testsecret
    params = {"TimeStamp": "2016-02-23T12:46:24Z", "Format": "XML", "AccessKeyId": "testid", "Action": "DescribeRegions",
              "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
              "Version": "2014-05-26", "SignatureVersion": "1.0"}
    assert string_to_sign("GET", params) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
        "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
        "%26TimeStamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26")
    assert signature("testsecret", "GET", params) == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_percent_encoding_rules() -> None:
    # space -> %20 (not +), * -> %2A, ~ kept, UTF-8 bytes encoded; names sorted after encoding
    sts = string_to_sign("POST", {"b": "a b*c~", "a": "阿"})
    assert sts == "POST&%2F&a%3D%25E9%2598%25BF%26b%3Da%2520b%252Ac~"


# ------------------------------------------------------------------ actions in flows


async def test_send_then_query_delivery_status(engine: FlowEngine, platform: tuple[fake.FakeAliyunSms, str]) -> None:
    sms, _ = platform
    run = await engine.run(engine.compile(flow(send(out_id="order-17", step={"end": True}))))
    assert run.status == "succeeded", run.error
    sent = run.output
    assert sent["code"] == "OK" and sent["phone_numbers"] == ["13800000000"] and sent["biz_id"].endswith("^0")
    assert [m.content for m in sms.sent] == ["【阿里云短信测试】您正在使用阿里云短信测试服务，体验验证码是：4096，如非本人操作，请忽略本短信！"]

    query = {"id": "query", "type": "action", "action": "sms.query_send_details", "connection": "aliyun",
             "args": {"phone_number": "13800000000", "biz_id": sent["biz_id"]}, "end": True}
    waiting = await engine.run(engine.compile(flow(query)))
    assert waiting.status == "succeeded", waiting.error
    assert waiting.output["total_count"] == 1 and waiting.output["details"][0]["status"] == "waiting"
    assert sms.deliver(sent["biz_id"]) == 1
    done = await engine.run(engine.compile(flow(query)))
    detail = done.output["details"][0]
    assert detail["status"] == "delivered" and detail["err_code"] == "DELIVERED" and detail["out_id"] == "order-17"
    assert detail["receive_date"] is not None and detail["template_code"] == CODE


async def test_batch_renders_each_recipients_variables(engine: FlowEngine, platform: tuple[fake.FakeAliyunSms, str]) -> None:
    sms, _ = platform
    people = [{"mobile": "13900000001", "name": "张三", "coupon": "A1"}, {"mobile": "+8613900000002", "name": "李四", "coupon": 88}]
    step = {"id": "batch", "type": "action", "action": "sms.send_batch_sms", "connection": "aliyun", "end": True,
            "args": {"template_code": BIRTHDAY, "messages": {"$expr": "trigger.people[].{phone_number: mobile, "
                     "sign_name: '阿里云短信测试', template_param: {name: name, coupon: coupon, expire: '2026-12-31'}}"}}}
    run = await engine.run(engine.compile(flow(step)), {"people": people})
    assert run.status == "succeeded", run.error
    assert run.output["phone_numbers"] == ["13900000001", "+8613900000002"]
    assert [(m.phone, m.content) for m in sms.sent] == [
        ("13900000001", "【阿里云短信测试】张三，生日快乐！送您一张优惠券：A1，有效期至2026-12-31。"),
        ("13900000002", "【阿里云短信测试】李四，生日快乐！送您一张优惠券：88，有效期至2026-12-31。"),
    ]
    assert {m.biz_id for m in sms.sent} == {run.output["biz_id"]}


@pytest.mark.parametrize(("args", "code", "kind"), [
    ({"phone_numbers": "1380000"}, "isv.MOBILE_NUMBER_ILLEGAL", "InvalidInput"),
    ({"template_param": {}}, "isv.TEMPLATE_MISSING_PARAMETERS", "InvalidInput"),
    ({"sign_name": "不存在的签名"}, "isv.SMS_SIGNATURE_ILLEGAL", "InvalidInput"),
    ({"template_code": "SMS_000000"}, "isv.SMS_TEMPLATE_ILLEGAL", "InvalidInput"),
])
async def test_business_errors_are_typed(engine: FlowEngine, platform: tuple[fake.FakeAliyunSms, str],
                                         args: dict[str, Any], code: str, kind: str) -> None:
    run = await engine.run(engine.compile(flow(*caught(send(**args)))))
    assert run.status == "succeeded", run.error
    assert run.output["code"] == code and run.output["type"] == kind and run.output["connector"] == "sms"
    assert platform[0].sent == []


async def test_flow_control_is_rate_limited_and_catchable(engine: FlowEngine, platform: tuple[fake.FakeAliyunSms, str]) -> None:
    sms, _ = platform
    steps = [send("first", step={"next": "second"}),
             {**send("second"), "catch": [{"errors": ["sms.isv.BUSINESS_LIMIT_CONTROL"], "next": "throttled"}], "end": True},
             {"id": "throttled", "type": "set", "value": {"$expr": "error"}, "end": True}]
    run = await engine.run(engine.compile(flow(*steps)))
    assert run.status == "succeeded", run.error
    assert run.output["type"] == "RateLimited" and run.output["retry_after"] == 60
    assert "分钟级流控" in run.output["message"] and len(sms.sent) == 1
    sms.advance(61)  # the minute window has passed
    again = await engine.run(engine.compile(flow(send(step={"end": True}))))
    assert again.status == "succeeded", again.error
    assert len(sms.sent) == 2


async def test_throttle_hook_answers_business_limit_control(engine: FlowEngine, platform: tuple[fake.FakeAliyunSms, str]) -> None:
    sms, _ = platform
    sms.throttle_next()
    run = await engine.run(engine.compile(flow(*caught(send(phone_numbers=["13700000000"])))))
    assert run.output["type"] == "RateLimited" and run.output["code"] == "isv.BUSINESS_LIMIT_CONTROL" and sms.sent == []
    after = await engine.run(engine.compile(flow(send(phone_numbers=["13700000000"], step={"end": True}))))
    assert after.status == "succeeded", after.error


@pytest.mark.parametrize(("connection", "code", "status"), [
    ("wrong-secret", "SignatureDoesNotMatch", 400),
    ("unknown-key", "InvalidAccessKeyId.NotFound", 404),
])
async def test_bad_credentials_are_permission_denied(engine: FlowEngine, platform: tuple[fake.FakeAliyunSms, str],
                                                     connection: str, code: str, status: int) -> None:
    run = await engine.run(engine.compile(flow(*caught(send(connection=connection)))))
    assert run.output["type"] == "PermissionDenied" and run.output["code"] == code and run.output["status"] == status
    assert fake.SECRET not in run.output["message"] and platform[0].sent == []


# ------------------------------------------------------------------ the fake's strictness


def _signed(**params: str) -> dict[str, str]:
    base = {"Action": "SendSms", "Version": "2017-05-25", "Format": "JSON", "RegionId": "cn-hangzhou",
            "PhoneNumbers": "13800000000", "SignName": fake.SIGN_NAME, "TemplateCode": CODE, "TemplateParam": '{"code":"1"}'}
    return signed_params({**base, **params}, "POST", fake.ACCESS_KEY, fake.SECRET)


def test_fake_refuses_replays_tampering_stale_timestamps_and_unsigned_calls(platform: tuple[fake.FakeAliyunSms, str]) -> None:
    sms, url = platform
    with httpx.Client(base_url=url) as client:
        signed = _signed()
        assert client.post("/", params=signed).json()["Code"] == "OK"
        replay = client.post("/", params=signed)
        assert (replay.status_code, replay.json()["Code"]) == (400, "SignatureNonceUsed")

        tampered = {**_signed(), "PhoneNumbers": "13900000000"}
        answer = client.post("/", params=tampered)
        assert (answer.status_code, answer.json()["Code"]) == (400, "SignatureDoesNotMatch")
        assert "server string to sign is:POST&%2F&" in answer.json()["Message"]

        form = client.post("/", data=_signed(PhoneNumbers="13600000000"))  # a form body is read and signed alike
        assert form.json()["Code"] == "OK"

        unsigned = {k: v for k, v in _signed().items() if k != "Signature"}
        assert client.post("/", params=unsigned).json()["Code"] == "IncompleteSignature"

        sms.advance(16 * 60)  # the client's timestamp is now 16 minutes old
        stale = client.post("/", params=_signed(PhoneNumbers="13500000000"))
        assert (stale.status_code, stale.json()["Code"]) == (400, "InvalidTimeStamp.Expired")
    assert [m.phone for m in sms.sent] == ["13800000000", "13600000000"]


def test_fake_checks_json_params_and_counts(platform: tuple[fake.FakeAliyunSms, str]) -> None:
    _, url = platform
    with httpx.Client(base_url=url) as client:
        numeric = client.post("/", params=_signed(TemplateParam='{"code": 1234}')).json()
        assert numeric["Code"] == "isv.INVALID_JSON_PARAM"
        many = client.post("/", params=_signed(PhoneNumbers=",".join(f"138{i:08d}" for i in range(1001)))).json()
        assert many["Code"] == "isv.MOBILE_COUNT_OVER_LIMIT"
        missing = client.post("/", params=_signed(SignName=""))
        assert (missing.status_code, missing.json()["Code"]) == (400, "MissingSignName")
        query = client.post("/", params=_signed(Action="QuerySendDetails", PhoneNumber="13800000000",
                                                SendDate="20200101", PageSize="10", CurrentPage="1")).json()
        assert query["Code"] == "isv.INVALID_PARAMETERS"  # older than 30 days


# ------------------------------------------------------------------ contract kit


async def test_contract_kit_passes() -> None:
    report = await check_connector(sms_connector)
    assert report.ok, "\n".join(report.lines())
    assert {c.name.split(" — ")[0] for c in report.checks if c.name.startswith("example")} == {
        "example: send_sms", "example: send_batch_sms", "example: query_send_details", "example: custom_api_call"}


def test_connection_test_through_the_api(api_client, platform: tuple[fake.FakeAliyunSms, str]) -> None:  # noqa: ANN001
    _, url = platform
    for name, secret in (("good", fake.SECRET), ("bad", "not-the-secret")):
        created = api_client.post("/api/connections", json={"name": name, "connector": "sms",
                                                            "fields": {**CONNECTION, "secret_key": secret, "base_url": url}})
        assert created.status_code in (200, 201), created.text
    good = api_client.post("/api/connections/good/test").json()
    assert good["ok"] is True and fake.ACCESS_KEY in good["message"]
    bad = api_client.post("/api/connections/bad/test").json()
    assert bad["ok"] is False and bad["code"] == "SignatureDoesNotMatch" and bad["kind"] == "PermissionDenied"
