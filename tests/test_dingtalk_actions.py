"""DingTalk actions in flows (FlowEngine) against the fake served on 127.0.0.1: robot signing and
keyword mode, tokens on both hosts (shared, refreshed once on expiry), throttling codes,
cursor paging, work notifications, approvals, the custom API call and the contract kit."""
from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from connectors.dingtalk import connector
from connectors.dingtalk import sandbox as fk
from connectors.dingtalk.client import API_RULES, OAPI_RULES
from connectors.dingtalk.robot import robot_sign, signed_params
from connectors.dingtalk.sandbox import FakeDingTalk
from connectors.sdk import ConnectorRegistry
from connectors.sdk.contract import run_contract
from connectors.sdk.error_rules import ErrorRules
from connectors.sdk.sandbox import SandboxServer
from engine.store.tables import rate_buckets
from engine.runtime import FlowEngine
from tests.dingtalk_support import connection_fields, engine, fake, run, step  # noqa: F401

NO_RETRY: list = []


# ------------------------------------------------------------------ robot


def test_robot_sign_matches_the_reference_vector() -> None:
    sign = robot_sign("this is secret", 1700000000000)
    assert sign == "sSFWELbV2YwjdDQhWZwTcWlX5BWUx5J6TPpsZmuPii0="
    assert quote(sign, safe="") == "sSFWELbV2YwjdDQhWZwTcWlX5BWUx5J6TPpsZmuPii0%3D"
    params = signed_params("tok", "this is secret", now=1700000000.0)
    assert params == {"access_token": "tok", "timestamp": "1700000000000", "sign": sign}
    assert signed_params("tok", None) == {"access_token": "tok"}


async def test_robot_sends_signed_text_with_at(engine: FlowEngine, fake: FakeDingTalk) -> None:
    result = await run(engine, step("robot_send", {"content": "新订单", "at_mobiles": ["13800000001"], "at_all": False}))
    assert result.status == "succeeded", result.error
    [sent] = fake.robot_messages[fk.ROBOT_SIGN_TOKEN]
    assert sent == {"msgtype": "text", "text": {"content": "新订单"},
                    "at": {"atMobiles": ["13800000001"], "atUserIds": [], "isAtAll": False}}


@pytest.mark.parametrize("args, part", [
    ({"msgtype": "markdown", "title": "T", "text": "# hi"}, {"title": "T", "text": "# hi"}),
    ({"msgtype": "link", "title": "T", "text": "x", "message_url": "https://e.com"},
     {"title": "T", "text": "x", "messageUrl": "https://e.com", "picUrl": ""}),
    ({"msgtype": "actionCard", "title": "T", "text": "x", "single_title": "Open", "single_url": "https://e.com"},
     {"title": "T", "text": "x", "btnOrientation": "0", "singleTitle": "Open", "singleURL": "https://e.com"}),
    ({"msgtype": "feedCard", "links": [{"title": "A", "message_url": "https://e.com/a", "pic_url": "https://e.com/a.png"}]},
     {"links": [{"title": "A", "messageURL": "https://e.com/a", "picURL": "https://e.com/a.png"}]}),
])
async def test_robot_message_types(engine: FlowEngine, fake: FakeDingTalk, args: dict, part: dict) -> None:
    result = await run(engine, step("robot_send", args))
    assert result.status == "succeeded", result.error
    assert fake.robot_messages[fk.ROBOT_SIGN_TOKEN] == [{"msgtype": args["msgtype"], args["msgtype"]: part}]


async def test_robot_wrong_secret_is_rejected_by_the_platform(engine: FlowEngine, fake: FakeDingTalk) -> None:
    engine.connection_store.put("bad", "dingtalk", connection_fields(fake, robot_secret="SECwrong"))
    result = await run(engine, step("robot_send", {"content": "x"}, connection="bad", retry=NO_RETRY))
    assert result.status == "failed"
    assert result.error["type"] == "PermissionDenied" and result.error["code"] == "310000"
    assert "sign not match" in result.error["message"]
    assert fake.robot_messages[fk.ROBOT_SIGN_TOKEN] == []


async def test_robot_keyword_mode(engine: FlowEngine, fake: FakeDingTalk) -> None:
    engine.connection_store.put("kw", "dingtalk", {"robot_access_token": fk.ROBOT_KEYWORD_TOKEN, "base_url": fake.base_url})
    ok = await run(engine, step("robot_send", {"content": "order SO-1 shipped"}, connection="kw"))
    assert ok.status == "succeeded", ok.error
    missing = await run(engine, step("robot_send", {"content": "hello"}, connection="kw", retry=NO_RETRY))
    assert missing.error["type"] == "InvalidInput" and "keywords not in content" in missing.error["message"]
    assert len(fake.robot_messages[fk.ROBOT_KEYWORD_TOKEN]) == 1


async def test_robot_throttled_and_unknown_token(engine: FlowEngine, fake: FakeDingTalk) -> None:
    fake.block_robot(fk.ROBOT_SIGN_TOKEN)
    blocked = await run(engine, step("robot_send", {"content": "x"}, retry=NO_RETRY))
    assert blocked.error["type"] == "RateLimited" and blocked.error["code"] == "130101"
    engine.connection_store.put("gone", "dingtalk", connection_fields(fake, robot_access_token="nope"))
    gone = await run(engine, step("robot_send", {"content": "x"}, connection="gone", retry=NO_RETRY))
    assert gone.error["type"] == "PermissionDenied" and gone.error["code"] == "300005"


async def test_robot_input_is_validated_before_sending(engine: FlowEngine, fake: FakeDingTalk) -> None:
    result = await run(engine, step("robot_send", {"msgtype": "markdown", "title": "only a title"}, retry=NO_RETRY))
    assert result.error["type"] == "InvalidInput" and "needs text" in result.error["message"]
    assert fake.calls["/robot/send"] == 0


# ------------------------------------------------------------------ tokens and errors


async def test_tokens_are_fetched_once_per_host_and_shared(engine: FlowEngine, fake: FakeDingTalk) -> None:
    steps = [step("get_user", {"userid": "user001"}, "a", next="b"),
             step("get_approval", {"instance_id": fk.SEEDED_INSTANCE}, "b", next="c"),
             step("get_user_by_mobile", {"mobile": "13800000002"}, "c")]
    first = await run(engine, *steps)
    second = await run(engine, *steps)
    assert first.status == second.status == "succeeded", first.error
    assert second.output == {"userid": "user002", "exclusive_account_userid_list": []}
    assert fake.calls["/gettoken"] == 1 and fake.calls["/v1.0/oauth2/accessToken"] == 1


async def test_expired_tokens_are_refreshed_and_retried_once(engine: FlowEngine, fake: FakeDingTalk) -> None:
    assert (await run(engine, step("get_user", {"userid": "user001"}))).status == "succeeded"
    assert (await run(engine, step("get_approval", {"instance_id": fk.SEEDED_INSTANCE}))).status == "succeeded"
    fake.advance(7300)  # past the 7200 s TTL: oapi answers 42001, the new API 401 InvalidAuthentication
    old = await run(engine, step("get_user", {"userid": "user001"}, retry=NO_RETRY))
    new = await run(engine, step("get_approval", {"instance_id": fk.SEEDED_INSTANCE}, retry=NO_RETRY))
    assert old.status == new.status == "succeeded", (old.error, new.error)
    assert fake.calls["/gettoken"] == 2 and fake.calls["/v1.0/oauth2/accessToken"] == 2
    assert fake.calls["/topapi/v2/user/get"] == 3 and fake.calls["/v1.0/workflow/processInstances"] == 3


async def test_revoked_token_errcode_88_is_refreshed(engine: FlowEngine, fake: FakeDingTalk) -> None:
    assert (await run(engine, step("get_user", {"userid": "user001"}))).status == "succeeded"
    fake.expire_tokens()  # early revocation: errcode 88, sub_code 40014
    result = await run(engine, step("get_user", {"userid": "user002"}, retry=NO_RETRY))
    assert result.status == "succeeded" and result.output["name"] == "员工2"
    assert fake.calls["/gettoken"] == 2


async def test_wrong_secret_is_permission_denied(engine: FlowEngine, fake: FakeDingTalk) -> None:
    engine.connection_store.put("bad", "dingtalk", connection_fields(fake, app_secret="wrong"))
    old = await run(engine, step("get_user", {"userid": "user001"}, connection="bad", retry=NO_RETRY))
    new = await run(engine, step("get_approval", {"instance_id": fk.SEEDED_INSTANCE}, connection="bad", retry=NO_RETRY))
    assert old.error["type"] == new.error["type"] == "PermissionDenied"
    assert old.error["code"] == "40001" and new.error["code"] == "invalidClientIdOrSecret"


@pytest.mark.parametrize("path, action, args, code", [
    ("/topapi/v2/user/get", "get_user", {"userid": "user001"}, 90018),
    ("/topapi/v2/user/get", "get_user", {"userid": "user001"}, 90002),
    ("/topapi/v2/user/getbymobile", "get_user_by_mobile", {"mobile": "13800000001"}, 90020),
    ("/v1.0/workflow/processInstances", "get_approval", {"instance_id": fk.SEEDED_INSTANCE},
     "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"),
    ("/v1.0/workflow/processInstances", "get_approval", {"instance_id": fk.SEEDED_INSTANCE},
     "Forbidden.AccessDenied.ApiCountLimitForOrg"),
])
async def test_throttling_codes_are_rate_limited(engine: FlowEngine, fake: FakeDingTalk, path: str, action: str,
                                                 args: dict, code: object) -> None:
    fake.throttle(path, code=code)
    result = await run(engine, step(action, args, retry=NO_RETRY))
    assert result.error["type"] == "RateLimited" and result.error["code"] == str(code)


async def test_a_flow_catches_throttling_and_reads_are_retried(engine: FlowEngine, fake: FakeDingTalk) -> None:
    fake.throttle("/topapi/v2/user/get", times=1)
    retried = await run(engine, step("get_user", {"userid": "user001"}))  # the action's default retry
    assert retried.status == "succeeded" and fake.calls["/topapi/v2/user/get"] == 2
    fake.throttle("/topapi/v2/user/get", times=1)
    caught = await run(engine, step("get_user", {"userid": "user001"}, retry=NO_RETRY,
                                    catch=[{"errors": ["dingtalk.90018"], "next": "later"}]),
                       {"id": "later", "type": "set", "value": "throttled"})
    assert caught.status == "succeeded" and caught.output == "throttled"


async def test_budget_is_counted_per_app_and_api(engine: FlowEngine, fake: FakeDingTalk) -> None:
    result = await run(engine, step("get_user", {"userid": "user001"}, "a", next="b"),
                       step("get_user_by_mobile", {"mobile": "13800000001"}, "b", next="c"),
                       step("get_approval", {"instance_id": fk.SEEDED_INSTANCE}, "c"))
    assert result.status == "succeeded", result.error
    with engine.db.connect() as conn:
        keys = {row.key for row in conn.execute(sa.select(rate_buckets.c.key)) if "#" not in row.key}
    assert keys == {"dingtalk:dt:/topapi/v2/user/get", "dingtalk:dt:/topapi/v2/user/getbymobile",
                    "dingtalk:dt:/v1.0/workflow/processInstances"}


async def test_the_fake_enforces_20_calls_per_second_per_api(sqlite_url: str) -> None:
    frozen = FakeDingTalk(clock=lambda: 1_800_000_000.0)  # every call lands in the same second
    with SandboxServer(frozen.app) as server:
        frozen.base_url = server.base_url  # type: ignore[attr-defined]
        eng = FlowEngine(sqlite_url, registry=ConnectorRegistry([connector]))
        eng.connection_store.put("dt", "dingtalk", connection_fields(frozen))
        try:
            runs = [await run(eng, step("get_user", {"userid": "user001"}, retry=NO_RETRY)) for _ in range(21)]
            other = await run(eng, step("get_user_by_mobile", {"mobile": "13800000001"}, retry=NO_RETRY))
        finally:
            eng.close()
    assert [r.status for r in runs] == ["succeeded"] * 20 + ["failed"]
    assert runs[-1].error["type"] == "RateLimited" and runs[-1].error["code"] == "90018"
    assert other.status == "succeeded"  # another API has its own 20


# ------------------------------------------------------------------ contacts


async def test_unknown_user_and_mobile_are_not_found(engine: FlowEngine, fake: FakeDingTalk) -> None:
    by_id = await run(engine, step("get_user", {"userid": "ghost"}, retry=NO_RETRY))
    by_mobile = await run(engine, step("get_user_by_mobile", {"mobile": "13999999999"}, retry=NO_RETRY))
    assert by_id.error["type"] == by_mobile.error["type"] == "NotFound"
    assert by_id.error["code"] == by_mobile.error["code"] == "60121"


async def test_department_members_follow_the_cursor(engine: FlowEngine, fake: FakeDingTalk) -> None:
    result = await run(engine, step("list_department_users", {"dept_id": 2, "page_size": 4}))
    assert result.status == "succeeded", result.error
    users = result.output["users"]
    assert [u["userid"] for u in users] == [f"user{i:03d}" for i in range(1, 16)] + ["manager01"]
    assert fake.calls["/topapi/v2/user/list"] == 4
    page = await run(engine, step("list_department_users", {"dept_id": 2, "page_size": 4, "cursor": 12}))
    assert [u["userid"] for u in page.output["users"]] == ["user013", "user014", "user015", "manager01"]
    assert page.output["next_cursor"] is None
    unknown = await run(engine, step("list_department_users", {"dept_id": 99}, retry=NO_RETRY))
    assert unknown.error["type"] == "NotFound" and unknown.error["code"] == "60003"


# ------------------------------------------------------------------ work notifications


async def test_work_notification_round_trip(engine: FlowEngine, fake: FakeDingTalk) -> None:
    result = await run(engine,
                       step("send_work_notification", {"userids": ["user001", "nobody"], "dept_ids": [3],
                                                       "msgtype": "markdown", "title": "审批", "text": "**通过**"},
                            "send", next="status"),
                       step("get_work_notification_status", {"task_id": "{{ steps.send.output.task_id }}"}, "status"))
    assert result.status == "succeeded", result.error
    assert result.output["done"] is True
    assert result.output["result"]["invalid_user_id_list"] == ["nobody"]
    assert sorted(result.output["result"]["unread_user_id_list"]) == ["user001"] + [f"user{i:03d}" for i in range(16, 26)]
    assert fake.inbox["user001"] == [{"msgtype": "markdown", "markdown": {"title": "审批", "text": "**通过**"}}]


async def test_work_notification_errors(engine: FlowEngine, fake: FakeDingTalk) -> None:
    wrong_agent = await run(engine, step("send_work_notification", {"userids": ["user001"], "content": "x", "agent_id": 7},
                                         retry=NO_RETRY))
    assert wrong_agent.error["type"] == "PermissionDenied" and wrong_agent.error["code"] == "60011"
    engine.connection_store.put("no-agent", "dingtalk", connection_fields(fake, agent_id=None))
    no_agent = await run(engine, step("send_work_notification", {"userids": ["user001"], "content": "x"},
                                      connection="no-agent", retry=NO_RETRY))
    assert no_agent.error["type"] == "InvalidInput" and "agent_id" in no_agent.error["message"]
    unknown = await run(engine, step("get_work_notification_status", {"task_id": 42}, retry=NO_RETRY))
    assert unknown.error["type"] == "InvalidInput" and unknown.error["code"] == "40035"


# ------------------------------------------------------------------ approvals


async def test_approval_create_query_and_finish(engine: FlowEngine, fake: FakeDingTalk) -> None:
    created = await run(engine, step("create_approval", {
        "process_code": fk.PROCESS_CODE, "originator_user_id": "user003", "dept_id": 2, "approvers": ["manager01"],
        "cc_list": ["user001"], "form": [{"name": "订单号", "value": "SO-9"}, {"name": "金额", "value": "500000"}, {"name": "客户", "value": "X"}]}))
    assert created.status == "succeeded", created.error
    instance_id = created.output["instance_id"]
    running = await run(engine, step("get_approval", {"instance_id": instance_id}))
    assert running.output["status"] == "RUNNING" and running.output["originatorUserId"] == "user003"
    assert {"name": "金额", "value": "500000"} in running.output["formComponentValues"]
    fake.refuse(instance_id)
    done = await run(engine, step("get_approval", {"instance_id": instance_id}))
    assert (done.output["status"], done.output["result"]) == ("COMPLETED", "refuse")


@pytest.mark.parametrize("args, code", [
    ({"process_code": fk.PROCESS_CODE, "originator_user_id": "user003", "form": {"订单号": "SO-9", "金额": "1"}},
     "InvalidParameter.FormComponentValues"),
    ({"process_code": "PROC-NOPE", "originator_user_id": "user003", "form": {"a": "b"}}, "InvalidParameter.ProcessCodeNotExist"),
    ({"process_code": fk.PROCESS_CODE, "originator_user_id": "ghost", "form": {"a": "b"}}, "InvalidParameter.UserNotExist"),
    ({"process_code": fk.PROCESS_CODE, "originator_user_id": "user003", "dept_id": 3,
      "form": {"订单号": "SO-9", "金额": "1", "客户": "X"}}, "InvalidParameter.DeptId"),
    ({"process_code": fk.PROCESS_CODE, "originator_user_id": "user003", "approvers": ["ghost"],
      "form": {"订单号": "SO-9", "金额": "1", "客户": "X"}}, "InvalidParameter.Approvers"),
])
async def test_approval_create_rejections(engine: FlowEngine, fake: FakeDingTalk, args: dict, code: str) -> None:
    result = await run(engine, step("create_approval", args, retry=NO_RETRY))
    assert result.status == "failed" and result.error["code"] == code
    assert result.error["type"] == ("NotFound" if "NotExist" in code else "InvalidInput")
    assert len(fake.instances) == 1


async def test_unknown_approval_is_not_found(engine: FlowEngine, fake: FakeDingTalk) -> None:
    result = await run(engine, step("get_approval", {"instance_id": "nope"}, retry=NO_RETRY))
    assert result.error["type"] == "NotFound"


# ------------------------------------------------------------------ custom call and contract


async def test_custom_api_call_on_both_hosts(engine: FlowEngine, fake: FakeDingTalk) -> None:
    old = await run(engine, step("custom_api_call", {"method": "POST", "path": "/topapi/v2/user/get",
                                                     "json": {"userid": "manager01"}}))
    assert old.output["body"]["result"]["name"] == "王经理"
    new = await run(engine, step("custom_api_call", {"api": "api", "method": "POST",
                                                     "path": "/v1.0/workflow/processes/instanceIds/query",
                                                     "json": {"processCode": fk.PROCESS_CODE, "startTime": 0}}))
    assert new.output["body"]["result"]["list"] == [fk.SEEDED_INSTANCE]
    failing = await run(engine, step("custom_api_call", {"path": "/topapi/v2/user/get", "method": "POST", "json": {}},
                                     retry=NO_RETRY))
    assert failing.error["type"] == "InvalidInput" and failing.error["code"] == "40035"


def test_contract_kit_passes() -> None:
    report = run_contract(connector)
    assert report.ok, "\n".join(report.lines())
    assert sum(1 for c in report.checks if c.name.startswith("example:")) >= len(connector.actions)


@pytest.mark.parametrize("rules, status, body, kind", [
    (OAPI_RULES, 200, {"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token"}, "AuthExpired"),
    (OAPI_RULES, 200, {"errcode": 88, "sub_code": "60011", "sub_msg": "没有权限"}, "PermissionDenied"),
    (OAPI_RULES, 200, {"errcode": 33001, "errmsg": "无效的企业ID"}, "AuthExpired"),
    (OAPI_RULES, 200, {"errcode": -1, "errmsg": "系统繁忙"}, "Transient"),
    (OAPI_RULES, 200, {"errcode": 90019, "errmsg": "ISV QPS"}, "RateLimited"),
    (OAPI_RULES, 200, {"errcode": 143105, "errmsg": "超过每日发送上限"}, "RateLimited"),
    (OAPI_RULES, 200, {"errcode": 0, "errmsg": "ok"}, None),
    (API_RULES, 400, {"code": "InvalidAuthentication", "message": "不合法的access_token"}, "AuthExpired"),
    (API_RULES, 401, {"code": "InvalidAuthentication", "message": "不合法的access_token"}, "AuthExpired"),
    (API_RULES, 403, {"code": "Forbidden.AccessDenied.QpsLimitForApi", "message": "限流"}, "RateLimited"),
    (API_RULES, 403, {"code": "Forbidden.AccessDenied.AccessTokenPermissionDenied", "message": "无权限"}, "PermissionDenied"),
    (API_RULES, 400, {"code": "MissingprocessCode", "message": "processCode is mandatory"}, "InvalidInput"),
    (API_RULES, 200, {"result": {}}, None),
])
def test_error_rules(rules: list, status: int, body: dict, kind: str | None) -> None:
    response = httpx.Response(status, json=body, request=httpx.Request("POST", "https://oapi.dingtalk.com/x"))
    error = ErrorRules(rules).classify(response, body, "dingtalk")
    assert (error.kind if error is not None else None) == kind
