"""The fake Douyin rejects what the platform rejects: wrong secrets, unknown or expired
tokens, tokens of another account, over-limit calls, bad paging parameters, old refresh
tokens after renewal; and it pushes signed events, retried with the same Msg-Id."""
from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from connectors.douyin.sandbox import (
    ACCESS_TOKEN_TTL,
    MAX_RENEWALS,
    SANDBOX_CLIENT_KEY,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_OPEN_ID,
    SANDBOX_REFRESH_TOKEN,
    FakeDouyin,
)
from connectors.douyin.signature import sign

APP = {"client_key": SANDBOX_CLIENT_KEY, "client_secret": SANDBOX_CLIENT_SECRET}


@pytest.fixture()
def fake() -> FakeDouyin:
    return FakeDouyin()


@pytest.fixture()
def api(fake: FakeDouyin) -> TestClient:
    return TestClient(fake.app)


def code(answer: Any) -> int:
    body = answer.json()
    return body["err_no"] if "err_no" in body else body["data"]["error_code"]


def client_token(api: TestClient, **fields: str) -> Any:
    return api.post("/oauth/client_token/", json={**APP, "grant_type": "client_credential", **fields})


def refresh(api: TestClient, refresh_token: str = SANDBOX_REFRESH_TOKEN) -> Any:
    return api.post("/oauth/refresh_token/", data={"client_key": SANDBOX_CLIENT_KEY, "grant_type": "refresh_token",
                                                   "refresh_token": refresh_token})


def user_token(api: TestClient) -> str:
    return refresh(api).json()["data"]["access_token"]


def test_client_token_checks_the_app(api: TestClient) -> None:
    answer = client_token(api)
    assert code(answer) == 0 and answer.json()["data"]["expires_in"] == 7200
    assert answer.json()["data"]["access_token"].startswith("clt.")
    assert code(client_token(api, client_secret="wrong")) == 10013
    assert code(client_token(api, client_key="nobody")) == 10003
    assert code(client_token(api, grant_type="password")) == 10002
    assert code(api.post("/oauth/client_token/", json={"client_key": SANDBOX_CLIENT_KEY})) == 10002


def test_only_the_two_newest_client_tokens_work_and_the_older_for_five_minutes(api: TestClient, fake: FakeDouyin) -> None:
    first, second, third = (client_token(api).json()["data"]["access_token"] for _ in range(3))

    def works(token: str) -> bool:
        return code(api.get("/data/extern/billboard/hot_video/", headers={"access-token": token})) == 0

    assert not works(first) and works(second) and works(third)
    fake.advance(301)
    assert not works(second) and works(third)
    fake.advance(7200)
    assert not works(third)


def test_client_token_is_rate_limited(api: TestClient, fake: FakeDouyin) -> None:
    fake.client_token_calls[SANDBOX_CLIENT_KEY] = deque([fake.now()] * 499)  # 499 calls just now
    assert code(client_token(api)) == 0
    assert code(client_token(api)) == 10020
    fake.advance(301)
    assert code(client_token(api)) == 0


def test_authorization_code_refresh_and_renewal(api: TestClient, fake: FakeDouyin) -> None:
    auth_code = fake.authorize("open-new", nickname="New Shop")
    granted = api.post("/oauth/access_token/", data={**APP, "code": auth_code, "grant_type": "authorization_code"}).json()["data"]
    assert granted["open_id"] == "open-new" and granted["expires_in"] == ACCESS_TOKEN_TTL
    reused = api.post("/oauth/access_token/", data={**APP, "code": auth_code, "grant_type": "authorization_code"})
    assert code(reused) == 10007  # a code works once
    # refreshing a valid token extends it; an expired one is replaced
    again = refresh(api, granted["refresh_token"]).json()["data"]
    assert again["access_token"] == granted["access_token"]
    fake.expire_access_tokens()
    assert refresh(api, granted["refresh_token"]).json()["data"]["access_token"] != granted["access_token"]
    assert code(refresh(api, "rft.unknown")) == 10010
    # renewal rotates the refresh token: the old one stops working; five renewals at most
    current = granted["refresh_token"]
    for _ in range(MAX_RENEWALS):
        renewed = api.post("/oauth/renew_refresh_token/", data={"client_key": SANDBOX_CLIENT_KEY, "refresh_token": current})
        assert code(renewed) == 0
        assert code(refresh(api, current)) == 10010
        current = renewed.json()["data"]["refresh_token"]
    over = api.post("/oauth/renew_refresh_token/", data={"client_key": SANDBOX_CLIENT_KEY, "refresh_token": current})
    assert code(over) == 10010
    fake.advance(31 * 86400)
    assert code(refresh(api, current)) == 10010


def test_user_apis_check_token_account_and_paging(api: TestClient, fake: FakeDouyin) -> None:
    token = user_token(api)
    ok = api.get("/api/douyin/v1/video/video_list/", params={"open_id": SANDBOX_OPEN_ID, "count": 2},
                 headers={"access-token": token}).json()["data"]
    assert ok["has_more"] is True and len(ok["list"]) == 2 and ok["cursor"] == ok["list"][-1]["create_time"] * 1000
    assert "_owner" not in ok["list"][0]
    assert code(api.get("/api/douyin/v1/video/video_list/", params={"open_id": SANDBOX_OPEN_ID})) == 10008
    other = fake.authorize("open-other")
    other_token = api.post("/oauth/access_token/", data={**APP, "code": other, "grant_type": "authorization_code"}).json()
    assert code(api.get("/oauth/userinfo/", params={"open_id": SANDBOX_OPEN_ID},
                        headers={"access-token": other_token["data"]["access_token"]})) == 2190004
    assert code(api.get("/api/douyin/v1/video/video_list/", params={"open_id": SANDBOX_OPEN_ID, "count": 21},
                        headers={"access-token": token})) == 10002
    # the older userinfo form: the token as a form field
    form = api.post("/oauth/userinfo/?open_id=" + SANDBOX_OPEN_ID, data={"access_token": token})
    assert code(form) == 0 and form.json()["data"]["nickname"] == "Flowlink Tea House"
    fake.advance(ACCESS_TOKEN_TTL + 1)
    assert code(api.get("/oauth/userinfo/", params={"open_id": SANDBOX_OPEN_ID}, headers={"access-token": token})) == 10008


def test_per_token_rate_limit_and_throttle_hook(fake: FakeDouyin) -> None:
    limited = FakeDouyin(api_limit=(2, 60.0))
    api = TestClient(limited.app)
    token = user_token(api)
    params, headers = {"open_id": SANDBOX_OPEN_ID}, {"access-token": token}
    assert [code(api.get("/oauth/userinfo/", params=params, headers=headers)) for _ in range(3)] == [0, 0, 10020]
    limited.advance(61)
    assert code(api.get("/oauth/userinfo/", params=params, headers=headers)) == 0
    limited.throttle(1)
    assert code(api.get("/oauth/userinfo/", params=params, headers=headers)) == 10020


def test_im_reply_rules(api: TestClient, fake: FakeDouyin) -> None:
    token = user_token(api)
    message = fake.seeded_message
    body = {"msg_id": message.server_message_id, "conversation_id": message.conversation_short_id,
            "to_user_id": message.from_user_id, "content": {"msg_type": "text", "text": "hi"}, "scene": "im_reply_msg"}

    def send(**changes: Any) -> Any:
        return api.post("/im/send/msg/", params={"open_id": SANDBOX_OPEN_ID}, json={**body, **changes},
                        headers={"access-token": token})

    assert code(send(scene="other")) == 10002
    assert code(send(content={"msg_type": "text", "text": ""})) == 10002
    assert code(send(msg_id="smsg-unknown")) == 2190002
    assert [code(send()) for _ in range(7)] == [0] * 6 + [10020]
    assert len(message.replies) == 6
    assert code(api.post("/im/send/msg/", params={"open_id": SANDBOX_OPEN_ID}, json=body)) == 2190008  # new envelope


def test_comment_reply_validation(api: TestClient, fake: FakeDouyin) -> None:
    token = user_token(api)

    def reply(**body: Any) -> Any:
        return api.post("/item/comment/reply/", params={"open_id": SANDBOX_OPEN_ID}, json=body, headers={"access-token": token})

    assert code(reply(item_id=fake.seeded_item_id, content="")) == 10002
    assert code(reply(item_id="@unknown", content="x")) == 2190002
    assert code(reply(item_id=fake.seeded_item_id, comment_id="cmt-unknown", content="x")) == 2190002
    top = reply(item_id=fake.seeded_item_id, content="Thanks all")
    assert code(top) == 0
    listed = api.get("/item/comment/list/", params={"open_id": SANDBOX_OPEN_ID, "item_id": fake.seeded_item_id},
                     headers={"access-token": token}).json()["data"]
    assert listed["list"][0]["content"] == "Thanks all" and listed["has_more"] is False


def test_pushed_events_are_signed_and_retried_with_the_same_msg_id(fake: FakeDouyin) -> None:
    seen: list[tuple[str, str, bytes]] = []

    async def flaky(request: Request) -> JSONResponse:
        seen.append((request.headers["msg-id"], request.headers["x-douyin-signature"], await request.body()))
        return JSONResponse({}, status_code=500 if len(seen) < 3 else 200)

    receiver = TestClient(Starlette(routes=[Route("/hook", flaky, methods=["POST"])]))
    delivery = fake.deliver("/hook", fake.new_follower("open-fan-1", "Li Na"), client=receiver)
    assert delivery.statuses == [500, 500, 200] and delivery.delivered
    assert len({msg_id for msg_id, _, _ in seen}) == 1 and seen[0][0] == delivery.msg_id
    assert all(signature == sign(SANDBOX_CLIENT_SECRET, body) for _, signature, body in seen)
    assert all(body == delivery.body for _, _, body in seen)
