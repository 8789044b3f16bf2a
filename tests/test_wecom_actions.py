"""WeCom actions run inside flows through FlowEngine against the fake WeCom served on
127.0.0.1: messages, directory, customers with paging, tags, outreach, token expiry in the
middle of a run, rate limits (waiting on the shared budget, retrying a throttled call),
several corps and apps side by side, the connection test and the contract kit."""
from __future__ import annotations

import asyncio
import base64

import pytest

from connectors.sdk import Budget, build_client
from connectors.sdk.contract import check_connector
from connectors.wecom import connector as wecom
from connectors.wecom import fake_state as seed
from connectors.wecom.robot import connector as robot
from engine.runtime import FlowEngine
from tests.wecom_helpers import Served, engine, flow, run, served, step  # noqa: F401  (fixtures)


async def test_contract_kit_passes_for_both_connectors() -> None:
    for connector in (wecom, robot):
        report = await check_connector(connector)
        assert report.ok, "\n".join(report.lines())
        assert len([c for c in report.checks if c.name.startswith("example:")]) >= len(connector.actions)


# ---------------------------------------------------------------------------- messages
async def test_app_messages_report_invalid_recipients_and_upload_files_first(engine: FlowEngine, served: Served) -> None:
    definition = flow(
        step("text", "send_message", {"to_users": ["zhangsan", "ghost"], "to_departments": [2, 99], "to_tags": [1, 7],
                                      "content": "hello"}),
        step("file", "send_message", {"to_users": ["lisi"], "msgtype": "file",
                                      "file": {"filename": "q.txt", "content_base64": base64.b64encode(b"quarterly").decode()}}),
        step("upload", "upload_media", {"type": "image", "file": {"filename": "a.png", "content_base64": "iVBORw0KGgo="}}),
        step("image", "send_message", {"to_users": ["@all"], "msgtype": "image",
                                       "media_id": "{{ steps.upload.output.media_id }}"}),
        output={"text": {"$expr": "steps.text.output"}, "media": {"$expr": "steps.upload.output.media_id"}},
    )
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    assert result.output["text"]["invaliduser"] == ["ghost"]
    assert result.output["text"]["invalidparty"] == ["99"] and result.output["text"]["invalidtag"] == ["7"]
    sent = served.fake.corp().messages
    assert [m["msgtype"] for m in sent] == ["text", "file", "image"]
    assert sent[0]["agentid"] == seed.SANDBOX_AGENT and sent[0]["touser"] == "zhangsan|ghost"
    assert served.fake.corp().media[sent[1]["file"]["media_id"]]["data"] == b"quarterly"
    assert sent[2]["image"]["media_id"] == result.output["media"]


async def test_no_valid_recipient_and_bad_media_are_typed_errors(engine: FlowEngine, served: Served) -> None:
    definition = flow(
        step("nobody", "send_message", {"to_users": ["ghost"], "content": "x"},
             catch=[{"errors": ["wecom.81013"], "next": "media", "as": "e1"}]),
        step("unreached", "core.set", {"value": 1}, end=True),
        step("media", "send_message", {"to_users": ["zhangsan"], "msgtype": "image", "media_id": "no-such-media"},
             catch=[{"errors": ["InvalidInput"], "next": "done", "as": "e2"}]),
        step("done", "core.set", {"value": {"e1": {"$expr": "e1.code"}, "e2": {"$expr": "e2.code"}}}),
    )
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    assert result.output == {"e1": "81013", "e2": "40007"}
    assert served.fake.corp().messages == []


# ---------------------------------------------------------------------------- directory
async def test_members_and_departments(engine: FlowEngine, served: Served) -> None:
    definition = flow(
        step("mobile", "get_user_by_mobile", {"mobile": "13800000003"}),
        step("user", "get_user", {"userid": "{{ steps.mobile.output.userid }}"}),
        step("everyone", "list_department_members", {"department_id": 1, "fetch_child": True}),
        step("root_only", "list_department_members", {"department_id": 1}),
        step("depts", "list_departments", {}),
        step("missing", "get_user", {"userid": "ghost"}, catch=[{"errors": ["NotFound"], "next": "out", "as": "err"}]),
        step("out", "core.set", {"value": {
            "name": {"$expr": "steps.user.output.name"}, "all": {"$expr": "steps.everyone.output.userids"},
            "root": {"$expr": "steps.root_only.output.userids"}, "depts": {"$expr": "steps.depts.output.departments[].id"},
            "err": {"$expr": "err.code"}}}),
    )
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    assert result.output == {"name": "王五", "all": ["zhangsan", "lisi", "wangwu"], "root": [], "depts": [1, 2, 3],
                             "err": "60111"}


# ---------------------------------------------------------------------------- customers and tags
async def test_batch_get_follows_every_cursor(engine: FlowEngine, served: Served) -> None:
    for i in range(7):
        served.fake.customer_added("zhangsan", f"Customer {i}", external_userid=f"wmNew{i:03d}")
    definition = flow(step("all", "list_customers_detail", {"userids": ["zhangsan"], "page_size": 2}),
                      output={"$expr": "steps.all.output"})
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    ids = [c["external_contact"]["external_userid"] for c in result.output["customers"]]
    assert result.output["count"] == 9 and len(set(ids)) == 9
    assert {f"wmNew{i:03d}" for i in range(7)} <= set(ids)
    assert served.fake.calls["externalcontact/batch/get_by_user"] == 5  # 2+2+2+2+1


async def test_tag_a_customer_remark_and_read_back(engine: FlowEngine, served: Served) -> None:
    definition = flow(
        step("group", "add_corp_tags", {"group_name": "意向", "tags": [{"name": "高"}, {"name": "低"}]}),
        step("mark", "mark_customer_tags", {"userid": "zhangsan", "external_userid": "wmCustomer002",
                                            "add_tags": [{"$expr": "steps.group.output.tag[0].id"}, "etTagVip"]}),
        step("rename", "edit_corp_tag", {"id": "etTagVip", "name": "VIP+"}),
        step("remark", "update_customer_remark", {"userid": "zhangsan", "external_userid": "wmCustomer002",
                                                  "remark": "韩 (广告)", "remark_mobiles": ["13900000000"]}),
        step("customer", "get_customer", {"external_userid": "wmCustomer002"}),
        step("unmark", "mark_customer_tags", {"userid": "zhangsan", "external_userid": "wmCustomer002",
                                              "remove_tags": ["etTagVip"]}),
        step("drop", "delete_corp_tags", {"group_ids": [{"$expr": "steps.group.output.group_id"}]}),
        step("after", "get_customer", {"external_userid": "wmCustomer002"}),
        step("tags", "list_corp_tags", {}),
        step("list", "list_customers", {"userid": "zhangsan"}),
        output={"tags": {"$expr": "steps.customer.output.follow_user[0].tags[].tag_name"},
                "remark": {"$expr": "steps.customer.output.follow_user[0].remark"},
                "after": {"$expr": "steps.after.output.follow_user[0].tags"},
                "labels": {"$expr": "steps.tags.output.tags[].label"},
                "list": {"$expr": "steps.list.output.external_userids"}},
    )
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    assert result.output == {"tags": ["高", "VIP+"], "remark": "韩 (广告)", "after": [],
                             "labels": ["来源 / 广告", "来源 / 展会", "客户等级 / VIP+"],
                             "list": ["wmCustomer001", "wmCustomer002"]}
    follow = served.fake.corp().follows[("zhangsan", "wmCustomer002")]
    assert follow["remark_mobiles"] == ["13900000000"]


async def test_customer_errors_are_catchable_by_code(engine: FlowEngine) -> None:
    definition = flow(
        step("not_mine", "mark_customer_tags", {"userid": "lisi", "external_userid": "wmCustomer001", "add_tags": ["etTagVip"]},
             catch=[{"errors": ["wecom.84061"], "next": "bad_tag", "as": "e1"}]),
        step("x", "core.set", {"value": 0}, end=True),
        step("bad_tag", "mark_customer_tags", {"userid": "zhangsan", "external_userid": "wmCustomer001", "add_tags": ["etNope"]},
             catch=[{"errors": ["wecom.40068"], "next": "unknown", "as": "e2"}]),
        step("unknown", "get_customer", {"external_userid": "wmGhost"}, catch=[{"errors": ["NotFound"], "next": "out", "as": "e3"}]),
        step("out", "core.set", {"value": [{"$expr": "e1.type"}, {"$expr": "e2.type"}, {"$expr": "e3.code"}]}),
    )
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    assert result.output == ["NotFound", "NotFound", "40096"]


async def test_welcome_message_once_within_twenty_seconds(engine: FlowEngine, served: Served) -> None:
    fresh = served.fake.customer_added("lisi", "Lucy", state="ad")
    stale = served.fake.customer_added("lisi", "Lily")
    definition = flow(
        step("welcome", "send_welcome_message", {"welcome_code": fresh["WelcomeCode"], "text": "欢迎 Lucy"}),
        step("again", "send_welcome_message", {"welcome_code": fresh["WelcomeCode"], "text": "again"},
             catch=[{"errors": ["wecom.41051"], "next": "late", "as": "e1"}]),
        step("x", "core.set", {"value": 0}, end=True),
        step("late", "send_welcome_message", {"welcome_code": stale["WelcomeCode"], "text": "too late"},
             catch=[{"errors": ["wecom.41051"], "next": "out", "as": "e2"}]),
        step("out", "core.set", {"value": [{"$expr": "e1.code"}, {"$expr": "e2.code"}]}),
    )
    served.fake.corp().welcome_codes[stale["WelcomeCode"]]["expires_at"] = served.fake.now() - 1  # issued > 20 s ago
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    assert result.output == ["41051", "41051"]
    assert served.fake.corp().welcome_messages == [
        {"userid": "lisi", "external_userid": fresh["ExternalUserID"], "text": {"content": "欢迎 Lucy"}}]


async def test_mass_message_and_contact_way(engine: FlowEngine, served: Served) -> None:
    definition = flow(
        step("mass", "create_mass_message", {"sender": "zhangsan", "external_userids": ["wmCustomer001", "wmCustomer003"],
                                             "text": "Sale", "attachments": [{"msgtype": "link",
                                                                              "link": {"title": "t", "url": "https://e.com"}}]}),
        step("way", "create_contact_way", {"type": 2, "users": ["zhangsan", "lisi"], "state": "wechat-ad", "remark": "ad"}),
        step("read", "get_contact_way", {"config_id": "{{ steps.way.output.config_id }}"}),
        step("raw", "custom_api_call", {"method": "POST", "path": "/cgi-bin/externalcontact/get_contact_way",
                                        "json": {"config_id": "nope"}}, retry=[],
             catch=[{"errors": ["wecom.41044"], "next": "out", "as": "err"}]),
        step("out", "core.set", {"value": {"fail": {"$expr": "steps.mass.output.fail_list"},
                                           "state": {"$expr": "steps.read.output.state"},
                                           "users": {"$expr": "steps.read.output.user"},
                                           "qr": {"$expr": "starts_with(steps.way.output.qr_code, 'https://')"},
                                           "err": {"$expr": "err.type"}}}),
    )
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    assert result.output == {"fail": ["wmCustomer003"], "state": "wechat-ad", "users": ["zhangsan", "lisi"], "qr": True,
                             "err": "NotFound"}
    (task,) = served.fake.corp().msg_templates.values()
    assert task["sender"] == "zhangsan" and task["text"] == {"content": "Sale"}


# ---------------------------------------------------------------------------- tokens
async def test_token_expiring_mid_flow_is_refreshed_and_the_call_retried_once(engine: FlowEngine, served: Served) -> None:
    definition = flow(
        step("before", "get_user", {"userid": "zhangsan"}),
        step("expire", "fakecontrol.expire_tokens"),
        step("after", "get_customer", {"external_userid": "wmCustomer001"}),
        step("send", "send_message", {"to_users": ["zhangsan"], "content": "still works"}),
        output={"$expr": "steps.after.output.external_contact.name"},
    )
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    assert result.output == "李雷"
    assert served.fake.calls["gettoken"] == 2  # the first token, then one refresh
    assert served.fake.errors[42001] == 1  # only the call that met the expired token
    assert len(served.fake.corp().messages) == 1


async def test_one_token_shared_by_concurrent_runs_and_revocation(engine: FlowEngine, served: Served) -> None:
    compiled = engine.compile(flow(step("user", "get_user", {"userid": "lisi"})))
    runs = await asyncio.gather(*(engine.run(compiled) for _ in range(8)))
    assert [r.status for r in runs] == ["succeeded"] * 8
    assert served.fake.calls["gettoken"] == 1
    served.fake.revoke_tokens()  # WeCom invalidated it early (40014)
    again = await engine.run(compiled)
    assert again.status == "succeeded" and served.fake.calls["gettoken"] == 2 and served.fake.errors[40014] == 1


# ---------------------------------------------------------------------------- several corps and apps
async def test_two_corps_and_two_apps_side_by_side(engine: FlowEngine, served: Served) -> None:
    definition = flow(
        step("a", "get_user", {"userid": "zhangsan"}),
        step("b", "get_user", {"userid": "zhaoliu"}, connection="wecom-second"),
        step("b_cannot_see_a", "get_user", {"userid": "zhangsan"}, connection="wecom-second",
             catch=[{"errors": ["wecom.60111"], "next": "limited", "as": "e1"}]),
        step("x", "core.set", {"value": 0}, end=True),
        step("limited", "list_customers", {"userid": "zhangsan"}, connection="wecom-limited",
             catch=[{"errors": ["wecom.48002"], "next": "limited_msg", "as": "e2"}]),
        step("limited_msg", "send_message", {"to_users": ["lisi"], "content": "from the other app"}, connection="wecom-limited"),
        step("out", "core.set", {"value": [{"$expr": "steps.a.output.name"}, {"$expr": "steps.b.output.name"},
                                           {"$expr": "e2.type"}]}),
    )
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    assert result.output == ["张三", "赵六", "PermissionDenied"]
    owners = {(info["corp_id"], info["agentid"]) for info in served.fake.tokens.values()}
    assert owners == {(seed.SANDBOX_CORP, seed.SANDBOX_AGENT), (seed.SANDBOX_CORP, seed.LIMITED_AGENT),
                      (seed.SECOND_CORP, seed.SANDBOX_AGENT)}
    assert served.fake.calls["gettoken"] == 3
    assert served.fake.corp().messages[0]["agentid"] == seed.LIMITED_AGENT
    keys = {build_client(wecom, served.connection(**kw)).auth.bind("wecom").key for kw in (
        {}, {"secret": seed.LIMITED_SECRET}, {"corp_id": seed.SECOND_CORP, "secret": seed.SECOND_SECRET})}
    assert len(keys) == 3


async def test_connection_test_names_a_wrong_secret(served: Served) -> None:
    good = await build_client(wecom, served.connection()).test_connection()
    assert good.ok and "access token" in good.message
    bad = await build_client(wecom, served.connection(secret="typo")).test_connection()
    assert not bad.ok and bad.code == "40001" and "app secret is wrong" in bad.message
    corp = await build_client(wecom, served.connection(corp_id="ww-nope")).test_connection()
    assert not corp.ok and corp.code == "40013" and "corp ID is wrong" in corp.message


# ---------------------------------------------------------------------------- rate limits
async def test_a_throttled_call_waits_and_succeeds(engine: FlowEngine, served: Served) -> None:
    served.fake.throttle("message/send", 2)
    retry = [{"errors": ["wecom.45009"], "max_attempts": 3, "interval": 0.05, "backoff_rate": 1}]
    result = await run(engine, flow(step("send", "send_message", {"to_users": ["zhangsan"], "content": "hi"}, retry=retry)))
    assert result.status == "succeeded", result.error
    assert served.fake.errors[45009] == 2  # two throttled attempts, then the third went through
    assert len(served.fake.corp().messages) == 1
    served.fake.throttle("message/send", 1)
    failed = await run(engine, flow(step("send", "send_message", {"to_users": ["zhangsan"], "content": "hi"})))
    assert failed.status == "failed" and failed.error["type"] == "RateLimited" and failed.error["code"] == "45009"


async def test_robot_budget_keeps_under_the_platform_limit(engine: FlowEngine, served: Served,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # WeCom allows 20 robot messages a minute; scaled down here to a budget of 3 per second
    # against a platform window of 3 per 0.5 s: the margin absorbs the time between a grant
    # and the request's arrival, and 7 messages sent at once would still exceed the window.
    served.fake.set_limit("webhook/send", 3, 0.5)
    monkeypatch.setattr(robot, "rate_budget", Budget(3, 1.0, "wecom_robot"))
    definition = flow({"id": "fan", "type": "map", "items": "trigger.lines", "max_concurrency": 7,
                       "steps": [step("say", "wecom_robot.send_text", {"content": "{{ item }}"}, connection="robot")]})
    result = await run(engine, definition, {"lines": [f"line {i}" for i in range(7)]})
    assert result.status == "succeeded", result.error
    assert served.fake.errors[45009] == 0  # the budget waited instead of hitting the limit
    assert sorted(m["text"]["content"] for m in served.fake.robots[seed.ROBOT_KEY]["messages"]) == [f"line {i}" for i in range(7)]


async def test_robot_messages(engine: FlowEngine, served: Served) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake-image").decode()
    definition = flow(
        step("text", "wecom_robot.send_text", {"content": "deploy done", "mentioned_list": ["@all"]}, connection="robot"),
        step("md", "wecom_robot.send_markdown", {"content": "**ok** <@zhangsan>"}, connection="robot"),
        step("img", "wecom_robot.send_image", {"content_base64": png}, connection="robot"),
        step("news", "wecom_robot.send_news", {"articles": [{"title": "t", "url": "https://e.com"}]}, connection="robot"),
        step("file", "wecom_robot.send_file", {"file": {"filename": "a.csv", "content_base64": base64.b64encode(b"a,b\n1,2\n").decode()}},
             connection="robot"),
    )
    result = await run(engine, definition)
    assert result.status == "succeeded", result.error
    robot_state = served.fake.robots[seed.ROBOT_KEY]
    assert [m["msgtype"] for m in robot_state["messages"]] == ["text", "markdown", "image", "news", "file"]
    assert robot_state["messages"][0]["text"]["mentioned_list"] == ["@all"]
    assert robot_state["media"][robot_state["messages"][4]["file"]["media_id"]]["data"] == b"a,b\n1,2\n"


async def test_robot_with_a_wrong_key_is_denied(engine: FlowEngine, served: Served) -> None:
    engine.connection_store.put("robot-bad", "wecom_robot", {"key": "nope", "base_url": served.base_url})
    result = await run(engine, flow(step("t", "wecom_robot.send_text", {"content": "x"}, connection="robot-bad")))
    assert result.status == "failed" and result.error["type"] == "PermissionDenied" and result.error["code"] == "93000"


