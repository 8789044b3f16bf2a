"""The douyin connector's actions in flows (FlowEngine) against the fake served on 127.0.0.1:
every action, cursor paging, token expiry and refresh (also before expiry), refresh-token
renewal shared by two engines on one database, re-authorization, throttling, client_token."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from connectors.core import connector as core_connector
from connectors.douyin import connector as douyin_connector
from connectors.douyin.sandbox import ACCESS_TOKEN_TTL, MAX_RENEWALS, SANDBOX_REFRESH_TOKEN
from connectors.sdk import ConnectorRegistry
from connectors.sdk.contract import check_connector
from engine.runtime import FlowEngine, FlowInvalid
from tests.douyin_helpers import ServedFake, douyin, flow, step  # noqa: F401

DAY = 86400.0


def make_engine(url: str, served: ServedFake, **connection: Any) -> FlowEngine:
    engine = FlowEngine(url, registry=ConnectorRegistry([core_connector, douyin_connector]))
    engine.connection_store.put("dy", "douyin", served.connection(**connection))
    engine.token_cache.clock = served.fake.now  # the engine and the fake share one (movable) clock
    return engine


@pytest.fixture()
def engine(sqlite_url: str, douyin: ServedFake) -> Iterator[FlowEngine]:
    eng = make_engine(sqlite_url, douyin)
    yield eng
    eng.close()


async def run(engine: FlowEngine, *steps: dict[str, Any], output: Any = None) -> Any:
    return await engine.run(engine.compile(flow(*steps, output=output)))


async def test_the_contract_kit_passes() -> None:
    report = await check_connector(douyin_connector)
    failed = [(c.name, c.message) for c in report.checks if not c.ok]
    assert failed == [] and len(report.checks) >= 15


async def test_user_info_with_one_token_for_every_step(engine: FlowEngine, douyin: ServedFake) -> None:
    result = await run(engine, step("get_user_info", id="a", next="b"), step("get_user_info", id="b"),
                       output={"$expr": "steps.a.output"})
    assert result.status == "succeeded", result.error
    assert result.output["open_id"] == "open-sandbox-1" and result.output["nickname"] == "Flowlink Tea House"
    assert "error_code" not in result.output
    assert douyin.fake.calls["refresh_token"] == 1 and douyin.fake.calls["userinfo"] == 2


async def test_list_videos_follows_the_cursor(engine: FlowEngine, douyin: ServedFake) -> None:
    first = await run(engine, step("list_videos", {"count": 2}))
    assert first.status == "succeeded", first.error
    page = first.output
    assert page["has_more"] is True and len(page["list"]) == 2
    second = await run(engine, step("list_videos", {"count": 2, "cursor": page["cursor"]}))
    assert second.status == "succeeded", second.error
    everything = await run(engine, step("list_videos", {"count": 2, "all_pages": True}))
    assert everything.status == "succeeded", everything.error
    ids = [v["item_id"] for v in everything.output["list"]]
    assert len(ids) == 5 == len(set(ids)) and ids[:4] == [v["item_id"] for v in page["list"] + second.output["list"]]
    times = [v["create_time"] for v in everything.output["list"]]
    assert times == sorted(times, reverse=True)
    assert douyin.fake.calls["video_list"] == 2 + 3  # two single pages, then three pages of 2, 2, 1
    capped = await run(engine, step("list_videos", {"count": 2, "all_pages": True, "max_items": 3}))
    assert capped.status == "failed" and "more than 3 items" in capped.error["message"]


async def test_a_reply_shows_up_under_its_comment(engine: FlowEngine, douyin: ServedFake) -> None:
    item, comment = douyin.fake.seeded_item_id, douyin.fake.seeded_comment_id
    result = await run(
        engine,
        step("reply_comment", {"item_id": item, "comment_id": comment, "content": "38 yuan per 100 g"}, id="reply", next="replies"),
        step("list_comments", {"item_id": item, "comment_id": comment}, id="replies", next="comments"),
        step("list_comments", {"item_id": item}, id="comments"),
        output={"reply": {"$expr": "steps.reply.output"}, "replies": {"$expr": "steps.replies.output.list"},
                "comments": {"$expr": "steps.comments.output.list"}},
    )
    assert result.status == "succeeded", result.error
    out = result.output
    assert [r["content"] for r in out["replies"]] == ["38 yuan per 100 g"]
    assert out["replies"][0]["comment_id"] == out["reply"]["comment_id"]
    parent = next(c for c in out["comments"] if c["comment_id"] == comment)
    assert parent["reply_comment_total"] == 1


async def test_unknown_ids_and_bad_input_are_invalid_input(engine: FlowEngine) -> None:
    unknown = await run(engine, step("list_comments", {"item_id": "@nope"}, retry=[]))
    assert unknown.status == "failed"
    assert unknown.error["type"] == "InvalidInput" and unknown.error["code"] == "2190002"
    with pytest.raises(FlowInvalid, match="args/count"):
        await run(engine, step("list_videos", {"count": 50}))
    too_many = await run(engine, step("list_videos", {"count": {"$expr": "`50`"}}))  # known only at run time
    assert too_many.status == "failed" and too_many.error["type"] == "InvalidInput" and "count" in too_many.error["message"]


async def test_an_expired_access_token_is_refreshed_once(engine: FlowEngine, douyin: ServedFake) -> None:
    assert (await run(engine, step("get_user_info"))).status == "succeeded"
    douyin.fake.expire_access_tokens()
    result = await run(engine, step("get_user_info"))
    assert result.status == "succeeded", result.error
    assert douyin.fake.calls["refresh_token"] == 2
    assert douyin.fake.calls["userinfo"] == 3  # the rejected call (10008) and its retry


async def test_the_new_envelope_expiry_code_refreshes_too(engine: FlowEngine, douyin: ServedFake) -> None:
    message = douyin.fake.seeded_message
    args = {"msg_id": message.server_message_id, "conversation_id": message.conversation_short_id,
            "to_user_id": message.from_user_id, "text": "Yes, two days to Hangzhou"}
    assert (await run(engine, step("get_user_info"))).status == "succeeded"
    douyin.fake.expire_access_tokens()
    result = await run(engine, step("send_im_reply", args))
    assert result.status == "succeeded", result.error
    assert result.output["msg_id"].startswith("smsg-")
    assert [r["text"] for r in message.replies] == ["Yes, two days to Hangzhou"]
    assert douyin.fake.calls["im_send"] == 2 and douyin.fake.calls["refresh_token"] == 2


async def test_the_token_is_refreshed_before_it_expires(engine: FlowEngine, douyin: ServedFake) -> None:
    assert (await run(engine, step("get_user_info"))).status == "succeeded"
    douyin.fake.advance(ACCESS_TOKEN_TTL - 120)  # still valid on the platform, inside the refresh margin
    result = await run(engine, step("get_user_info"))
    assert result.status == "succeeded", result.error
    assert douyin.fake.calls["refresh_token"] == 2 and douyin.fake.calls["userinfo"] == 2  # no rejected call


async def test_a_renewed_refresh_token_is_shared_by_every_engine(sqlite_url: str, douyin: ServedFake) -> None:
    first, second = make_engine(sqlite_url, douyin), make_engine(sqlite_url, douyin)
    try:
        assert (await run(first, step("get_user_info"))).status == "succeeded"
        douyin.fake.advance(ACCESS_TOKEN_TTL + 60)  # the token expired; the refresh token has 15 days left
        result = await run(first, step("get_user_info"))
        assert result.status == "succeeded", result.error
        assert douyin.fake.calls["renew_refresh_token"] == 1
        assert SANDBOX_REFRESH_TOKEN not in douyin.fake.grants  # the connection's refresh token is dead now
        refreshes = douyin.fake.calls["refresh_token"]
        # another process: the token (and the renewed refresh token) come from the database
        assert (await run(second, step("get_user_info"))).status == "succeeded"
        assert douyin.fake.calls["refresh_token"] == refreshes
        douyin.fake.expire_access_tokens()
        result = await run(second, step("get_user_info"))
        assert result.status == "succeeded", result.error  # refreshed with the renewed refresh token
        assert douyin.fake.calls["refresh_token"] == refreshes + 1
    finally:
        first.close()
        second.close()


async def test_a_refused_renewal_keeps_the_current_refresh_token(engine: FlowEngine, douyin: ServedFake) -> None:
    douyin.fake.grants[SANDBOX_REFRESH_TOKEN].renewals = MAX_RENEWALS  # renewals used up
    assert (await run(engine, step("get_user_info"))).status == "succeeded"
    douyin.fake.advance(ACCESS_TOKEN_TTL + 60)
    result = await run(engine, step("get_user_info"))
    assert result.status == "succeeded", result.error
    assert douyin.fake.calls["renew_refresh_token"] == 1 and SANDBOX_REFRESH_TOKEN in douyin.fake.grants
    douyin.fake.advance(ACCESS_TOKEN_TTL)  # now the refresh token itself has expired
    failed = await run(engine, step("get_user_info", retry=[]))
    assert failed.status == "failed" and failed.error["code"] == "10010"


async def test_an_expired_refresh_token_asks_for_a_new_authorization(engine: FlowEngine, douyin: ServedFake) -> None:
    douyin.fake.expire_refresh_tokens()
    result = await run(engine, step("get_user_info", retry=[], catch=[{"errors": ["douyin.10010"], "next": "reauth"}]),
                       {"id": "reauth", "type": "set", "value": {"$expr": "error"}, "end": True})
    assert result.status == "succeeded", result.error
    assert result.output["type"] == "PermissionDenied" and result.output["code"] == "10010"
    assert "authorize" in result.output["message"]


async def test_throttling_is_rate_limited_and_retried(engine: FlowEngine, douyin: ServedFake) -> None:
    douyin.fake.throttle(1)
    caught = await run(engine, step("list_videos", retry=[], catch=[{"errors": ["douyin.10020"], "next": "slow"}]),
                       {"id": "slow", "type": "set", "value": {"$expr": "error"}, "end": True})
    assert caught.status == "succeeded", caught.error
    assert caught.output["type"] == "RateLimited" and caught.output["code"] == "10020"
    douyin.fake.throttle(2)
    retried = await run(engine, step("list_videos", retry=[{"errors": ["RateLimited"], "max_attempts": 3, "interval": 0.05}]))
    assert retried.status == "succeeded", retried.error
    assert douyin.fake.throttled == 0


async def test_the_im_reply_window_closes_after_a_day(engine: FlowEngine, douyin: ServedFake) -> None:
    message = douyin.fake.seeded_message
    args = {"msg_id": message.server_message_id, "conversation_id": message.conversation_short_id,
            "to_user_id": message.from_user_id, "text": "late"}
    douyin.fake.advance(DAY + 60)
    result = await run(engine, step("send_im_reply", args))
    assert result.status == "failed" and result.error["code"] == "2190002" and "24 h" in result.error["message"]
    wrong_user = await run(engine, step("send_im_reply", {**args, "to_user_id": "open-someone-else"}))
    assert wrong_user.status == "failed" and wrong_user.error["type"] == "InvalidInput"
    assert message.replies == []


async def test_a_client_token_connection_calls_app_level_apis(engine: FlowEngine, douyin: ServedFake) -> None:
    app_only = {"auth": "douyin_client_token", "client_key": "aw_sandbox_key", "client_secret": "sandbox-client-secret",
                "base_url": douyin.base_url}
    engine.connection_store.put("dy-app", "douyin", app_only)
    billboard = step("custom_api_call", {"path": "/data/extern/billboard/hot_video/"}, connection="dy-app")
    result = await run(engine, billboard)
    assert result.status == "succeeded", result.error
    assert result.output["status"] == 200 and len(result.output["body"]["data"]["list"]) == 5
    assert douyin.fake.calls["client_token"] == 1
    douyin.fake.expire_access_tokens()
    assert (await run(engine, billboard)).status == "succeeded"
    assert douyin.fake.calls["client_token"] == 2
    user_action = await run(engine, step("get_user_info", connection="dy-app"))
    assert user_action.status == "failed" and "douyin_oauth" in user_action.error["message"]
    engine.connection_store.put("dy-bad", "douyin", {**app_only, "client_secret": "wrong"})
    rejected = await run(engine, {**billboard, "connection": "dy-bad", "retry": []})
    assert rejected.status == "failed" and rejected.error["type"] == "PermissionDenied" and rejected.error["code"] == "10013"
    assert "wrong" not in rejected.error["message"]
