"""A contract-faithful fake of the Douyin Open Platform (a Starlette ASGI app).

What it enforces (see docs/connectors/douyin.md and the platform reference):

- ``POST /oauth/client_token/`` (JSON or form; client_key, client_secret, grant_type
  ``client_credential``) -> 2 h client_token; a new one leaves the previous valid for at
  most 5 more minutes; more than 500 calls in 5 minutes -> 10020; unknown key 10003,
  wrong secret 10013, missing field 10002.
- ``POST /oauth/access_token/`` (form; code from :meth:`FakeDouyin.authorize`) -> user
  token (15 days) + refresh_token (30 days) + open_id.
- ``POST /oauth/refresh_token/`` (form; client_key, grant_type, refresh_token) -> a new
  access token, or the same one with a longer expiry while it is still valid; an unknown
  or expired refresh token -> 10010.
- ``POST /oauth/renew_refresh_token/`` (form) -> a new refresh_token (30 days); the old one
  stops working; at most 5 renewals per authorization (then 10010).
- User APIs take the token in the ``access-token`` header (``access_token`` parameter on
  the older userinfo API) and ``open_id`` in the query; an expired token answers 10008
  (old envelope) or err_no 2190008 (new envelope, IM); a token of another account 2190004.
- ``GET|POST /oauth/userinfo/``; ``GET /api/douyin/v1/video/video_list/`` (cursor = a
  millisecond time, count 1-20, ``has_more``/``cursor``); ``GET /item/comment/list/`` and
  ``GET /item/comment/reply/list/`` (offset cursor, count 1-50); ``POST
  /item/comment/reply/`` (a reply shows in the reply list and counts on its comment);
  ``POST /im/send/msg/`` (replies to a received message within 24 h, at most 6 each).
- ``GET /data/extern/billboard/hot_video/``: app-level, client_token only.
- Throttling: :meth:`FakeDouyin.throttle` makes the next calls answer 10020;
  ``api_limit=(calls, seconds)`` limits API calls per token.

Test hooks: :meth:`advance` (the fake's clock), :meth:`expire_access_tokens`,
:meth:`expire_refresh_tokens`, :meth:`throttle`, :meth:`authorize`, the ``calls`` counter,
and, to push events like the platform does, the builders (:meth:`new_comment`,
:meth:`new_follower`, :meth:`new_private_message`, :meth:`lead_event`) with :meth:`deliver`
and :meth:`verify_webhook` (signed, ``Msg-Id``, retried with the same id).
"""
from __future__ import annotations

import itertools
import json
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.douyin.sandbox_webhooks import Delivery, deliver, verify_webhook_body

SANDBOX_CLIENT_KEY = "aw_sandbox_key"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret"
SANDBOX_OPEN_ID = "open-sandbox-1"
SANDBOX_REFRESH_TOKEN = "rft.sandbox-1"

CLIENT_TOKEN_TTL = 7200
ACCESS_TOKEN_TTL = 15 * 86400
REFRESH_TOKEN_TTL = 30 * 86400
MAX_RENEWALS = 5
IM_REPLY_WINDOW = 24 * 3600
IM_REPLIES_PER_MESSAGE = 6


def _ok(data: dict[str, Any]) -> JSONResponse:
    extra = {"error_code": 0, "description": "", "sub_error_code": 0, "sub_description": "", "logid": secrets.token_hex(8)}
    return JSONResponse({"data": {**data, "error_code": 0, "description": ""}, "extra": extra, "message": "success"})


def _err(code: int, description: str) -> JSONResponse:
    extra = {"error_code": code, "description": description, "sub_error_code": 0, "sub_description": "",
             "logid": secrets.token_hex(8)}
    return JSONResponse({"data": {"error_code": code, "description": description}, "extra": extra, "message": "error"})


def _new_ok(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"err_no": 0, "err_msg": "", "log_id": secrets.token_hex(8), "data": data})


def _new_err(code: int, message: str) -> JSONResponse:
    return JSONResponse({"err_no": code, "err_msg": message, "log_id": secrets.token_hex(8), "data": {}})


class Reject(Exception):
    """A platform error answer (code and description), raised inside a handler."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description


@dataclass
class Grant:
    """One user authorization: its refresh token and current access token."""

    open_id: str
    client_key: str
    scope: str
    refresh_token: str
    refresh_expires_at: float
    access_token: str = ""
    renewals: int = 0


@dataclass
class ImMessage:
    """A private message the account received (the reply window hangs on it)."""

    server_message_id: str
    conversation_short_id: str
    from_user_id: str
    to_user_id: str
    text: str
    create_time: int
    replies: list[dict[str, Any]] = field(default_factory=list)


class FakeDouyin:
    """The fake platform's state and its ASGI `app` (see the module docstring)."""

    def __init__(self, apps: dict[str, str] | None = None, *, seed: bool = True,
                 api_limit: tuple[int, float] | None = None) -> None:
        self.apps = dict(apps or {SANDBOX_CLIENT_KEY: SANDBOX_CLIENT_SECRET})
        self.offset = 0.0
        self.api_limit = api_limit
        self.calls: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self.client_tokens: dict[str, dict[str, float]] = {}  # client_key -> token -> expires at
        self.client_token_calls: dict[str, deque[float]] = {}
        self.grants: dict[str, Grant] = {}  # refresh token -> grant
        self.access_tokens: dict[str, tuple[Grant, float]] = {}  # token -> (grant, expires at)
        self.codes: dict[str, tuple[str, str]] = {}  # authorization code -> (client_key, open_id)
        self.users: dict[str, dict[str, Any]] = {}
        self.videos: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}  # item_id -> top-level comments, newest first
        self.replies: dict[str, list[dict[str, Any]]] = {}  # comment_id -> replies, oldest first
        self.im_messages: dict[str, ImMessage] = {}
        self.throttled = 0
        self.api_calls: dict[str, deque[float]] = {}
        self.deliveries: list[Delivery] = []
        if seed:
            self._seed()
        self.app = Starlette(routes=[
            Route("/oauth/client_token/", self.client_token, methods=["POST"]),
            Route("/oauth/access_token/", self.access_token, methods=["POST"]),
            Route("/oauth/refresh_token/", self.refresh_token, methods=["POST"]),
            Route("/oauth/renew_refresh_token/", self.renew_refresh_token, methods=["POST"]),
            Route("/oauth/userinfo/", self.userinfo, methods=["GET", "POST"]),
            Route("/api/douyin/v1/video/video_list/", self.video_list, methods=["GET"]),
            Route("/item/comment/list/", self.comment_list, methods=["GET"]),
            Route("/item/comment/reply/list/", self.reply_list, methods=["GET"]),
            Route("/item/comment/reply/", self.comment_reply, methods=["POST"]),
            Route("/im/send/msg/", self.im_send, methods=["POST"]),
            Route("/data/extern/billboard/hot_video/", self.hot_videos, methods=["GET"]),
        ])

    # ------------------------------------------------------------------ clock and test hooks

    def now(self) -> float:
        """The fake's clock: real time plus what :meth:`advance` added."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (tokens and reply windows expire on it)."""
        self.offset += seconds

    def expire_access_tokens(self) -> None:
        """Every user access token and client_token issued so far expires now."""
        for token, (grant, _) in list(self.access_tokens.items()):
            self.access_tokens[token] = (grant, self.now() - 1)
        for tokens in self.client_tokens.values():
            for token in tokens:
                tokens[token] = self.now() - 1

    def expire_refresh_tokens(self) -> None:
        """Every refresh token expires now (the user must authorize again)."""
        for grant in self.grants.values():
            grant.refresh_expires_at = self.now() - 1

    def throttle(self, calls: int = 1) -> None:
        """The next `calls` API calls answer 10020 (over the rate limit)."""
        self.throttled += calls

    def authorize(self, open_id: str, client_key: str = SANDBOX_CLIENT_KEY, nickname: str | None = None) -> str:
        """The user `open_id` authorizes the app: an authorization code for /oauth/access_token/."""
        self.users.setdefault(open_id, self._user(open_id, nickname or open_id))
        code = f"code-{next(self._ids)}"
        self.codes[code] = (client_key, open_id)
        return code

    def grant(self, open_id: str, refresh_token: str, client_key: str = SANDBOX_CLIENT_KEY) -> Grant:
        """Register an authorization whose refresh token is already known (a stored connection)."""
        self.users.setdefault(open_id, self._user(open_id, open_id))
        grant = Grant(open_id, client_key, "user_info,video.list.bind,item.comment,im.direct_message", refresh_token,
                      self.now() + REFRESH_TOKEN_TTL)
        self.grants[refresh_token] = grant
        return grant

    def add_video(self, open_id: str, title: str, create_time: int | None = None) -> dict[str, Any]:
        """A video published by `open_id`."""
        item_id = f"@9VwK{next(self._ids):06d}"
        created = create_time if create_time is not None else int(self.now()) - len(self.videos) * 60
        video = {"item_id": item_id, "title": title, "create_time": created, "cover": f"https://p3.douyinpic.com/{item_id}.jpg",
                 "share_url": f"https://www.iesdouyin.com/share/video/{item_id}/", "is_top": False, "is_reviewed": True,
                 "video_status": 5, "media_type": 4,
                 "statistics": {"digg_count": 0, "comment_count": 0, "download_count": 0, "forward_count": 0,
                                "play_count": 0, "share_count": 0}, "_owner": open_id}
        self.videos[item_id] = video
        self.comments[item_id] = []
        return video

    def add_comment(self, item_id: str, user_open_id: str, text: str) -> dict[str, Any]:
        """A viewer comments on a video (top level)."""
        comment = {"comment_id": f"cmt-{next(self._ids)}", "comment_user_id": user_open_id, "content": text,
                   "create_time": int(self.now()), "digg_count": 0, "reply_comment_total": 0, "top": False}
        self.comments[item_id].insert(0, comment)
        self.videos[item_id]["statistics"]["comment_count"] += 1
        return comment

    def add_private_message(self, from_user_id: str, text: str, to_user_id: str = SANDBOX_OPEN_ID) -> ImMessage:
        """`from_user_id` sends the account a private message (opens a 24 h reply window)."""
        message = ImMessage(f"smsg-{next(self._ids)}", f"conv-{from_user_id}", from_user_id, to_user_id, text,
                            int(self.now()))
        self.im_messages[message.server_message_id] = message
        return message

    # ------------------------------------------------------------------ webhook events (platform -> us)

    def new_comment(self, item_id: str, user_open_id: str, text: str) -> dict[str, Any]:
        """Record a comment and return its ``item_comment_reply`` event (to :meth:`deliver`)."""
        comment = self.add_comment(item_id, user_open_id, text)
        owner = self.videos[item_id]["_owner"]
        content = {**comment, "reply_to_item_id": item_id, "reply_to_comment_id": "", "nick_name": f"user {user_open_id}",
                   "avatar": f"https://p3.douyinpic.com/avatar/{user_open_id}.jpg"}
        return self._event("item_comment_reply", user_open_id, owner, content)

    def new_follower(self, follower_open_id: str, nickname: str, to_open_id: str = SANDBOX_OPEN_ID) -> dict[str, Any]:
        """A user follows the account: the ``new_follow_action`` event."""
        content = {"open_id": follower_open_id, "nick_name": nickname, "avatar": "", "create_time": int(self.now())}
        return self._event("new_follow_action", follower_open_id, to_open_id, content)

    def new_private_message(self, from_user_id: str, text: str, to_user_id: str = SANDBOX_OPEN_ID) -> dict[str, Any]:
        """Record a received private message and return its ``im_receive_msg`` event."""
        message = self.add_private_message(from_user_id, text, to_user_id)
        content = {"conversation_short_id": message.conversation_short_id, "server_message_id": message.server_message_id,
                   "conversation_type": 1, "create_time": message.create_time * 1000, "message_type": "text",
                   "text": text, "user_infos": [{"open_id": from_user_id, "nick_name": f"user {from_user_id}", "avatar": ""}]}
        return self._event("im_receive_msg", from_user_id, to_user_id, content)

    def lead_event(self, content: dict[str, Any], event: str = "website_contact", from_user_id: str = "",
                   to_user_id: str = SANDBOX_OPEN_ID) -> dict[str, Any]:
        """A lead (clue) push with the given content (its shape is not confirmed by Douyin's docs)."""
        return self._event(event, from_user_id, to_user_id, dict(content))

    def _event(self, event: str, from_user_id: str, to_user_id: str, content: dict[str, Any],
               client_key: str = SANDBOX_CLIENT_KEY) -> dict[str, Any]:
        return {"event": event, "client_key": client_key, "from_user_id": from_user_id, "to_user_id": to_user_id,
                "content": json.dumps(content, ensure_ascii=False), "log_id": secrets.token_hex(10)}

    def deliver(self, url: str, event: dict[str, Any], *, client: httpx.Client | None = None, msg_id: str | None = None,
                secret: str | None = None, retries: int = 3) -> Delivery:
        """POST `event` to `url` as Douyin does: signed, with ``Msg-Id``, retried (same id) until a 200."""
        client_key = event.get("client_key") or SANDBOX_CLIENT_KEY
        delivery = deliver(url, event, secret=secret or self.apps[client_key], client=client,
                           msg_id=msg_id or f"msg-{secrets.token_hex(8)}", retries=retries)
        self.deliveries.append(delivery)
        return delivery

    def verify_webhook(self, url: str, *, client: httpx.Client | None = None, challenge: int | None = None) -> httpx.Response:
        """Send the ``verify_webhook`` request the console sends when the URL is saved."""
        body = verify_webhook_body(SANDBOX_CLIENT_KEY, challenge if challenge is not None else next(self._ids) * 7919)
        return deliver(url, body, secret=self.apps[SANDBOX_CLIENT_KEY], client=client,
                       msg_id=f"msg-{secrets.token_hex(8)}", retries=0).responses[-1]

    # ------------------------------------------------------------------ OAuth endpoints

    async def client_token(self, request: Request) -> JSONResponse:
        self.calls["client_token"] += 1
        try:
            form = await _fields(request)
            client_key = self._app(form, need_secret=True)
            if form.get("grant_type") != "client_credential":
                raise Reject(10002, "grant_type must be client_credential")
            calls = self.client_token_calls.setdefault(client_key, deque())
            now = self.now()
            while calls and calls[0] <= now - 300:
                calls.popleft()
            if len(calls) >= 500:
                raise Reject(10020, "client_token requested too often (over 500 in 5 minutes)")
            calls.append(now)
            tokens = self.client_tokens.setdefault(client_key, {})
            newest = max(tokens, key=tokens.__getitem__, default=None)
            for token in list(tokens):
                if token != newest:
                    del tokens[token]  # only the newest two stay valid
            if newest is not None:
                tokens[newest] = min(tokens[newest], now + 300)
            token = f"clt.{secrets.token_hex(12)}"
            tokens[token] = now + CLIENT_TOKEN_TTL
            return _ok({"access_token": token, "expires_in": CLIENT_TOKEN_TTL})
        except Reject as exc:
            return _err(exc.code, exc.description)

    async def access_token(self, request: Request) -> JSONResponse:
        self.calls["access_token"] += 1
        try:
            form = await _fields(request)
            client_key = self._app(form, need_secret=True)
            if form.get("grant_type") != "authorization_code":
                raise Reject(10002, "grant_type must be authorization_code")
            found = self.codes.pop(form.get("code") or "", None)
            if found is None or found[0] != client_key:
                raise Reject(10007, "authorization code expired or unknown")
            grant = self.grant(found[1], f"rft.{secrets.token_hex(12)}", client_key)
            return _ok(self._issue_access(grant))
        except Reject as exc:
            return _err(exc.code, exc.description)

    async def refresh_token(self, request: Request) -> JSONResponse:
        self.calls["refresh_token"] += 1
        try:
            form = await _fields(request)
            client_key = self._app(form, need_secret=False)
            if form.get("grant_type") != "refresh_token":
                raise Reject(10002, "grant_type must be refresh_token")
            grant = self._live_grant(client_key, form.get("refresh_token"))
            current = self.access_tokens.get(grant.access_token)
            if current is not None and current[1] > self.now():  # still valid: only the expiry is extended
                self.access_tokens[grant.access_token] = (grant, self.now() + ACCESS_TOKEN_TTL)
                return _ok(self._token_data(grant))
            return _ok(self._issue_access(grant))
        except Reject as exc:
            return _err(exc.code, exc.description)

    async def renew_refresh_token(self, request: Request) -> JSONResponse:
        self.calls["renew_refresh_token"] += 1
        try:
            form = await _fields(request)
            client_key = self._app(form, need_secret=False)
            grant = self._live_grant(client_key, form.get("refresh_token"))
            if grant.renewals >= MAX_RENEWALS:
                raise Reject(10010, "refresh_token renewed too many times: authorize again")
            del self.grants[grant.refresh_token]
            grant.refresh_token = f"rft.{secrets.token_hex(12)}"
            grant.refresh_expires_at = self.now() + REFRESH_TOKEN_TTL
            grant.renewals += 1
            self.grants[grant.refresh_token] = grant
            return _ok({"refresh_token": grant.refresh_token, "expires_in": REFRESH_TOKEN_TTL})
        except Reject as exc:
            return _err(exc.code, exc.description)

    def _app(self, form: dict[str, str], *, need_secret: bool) -> str:
        client_key = form.get("client_key")
        if not client_key or (need_secret and not form.get("client_secret")):
            raise Reject(10002, "missing client_key" if not client_key else "missing client_secret")
        if client_key not in self.apps:
            raise Reject(10003, "unknown client_key")
        if need_secret and form["client_secret"] != self.apps[client_key]:
            raise Reject(10013, "client_key and client_secret do not match")
        return client_key

    def _live_grant(self, client_key: str, refresh_token: str | None) -> Grant:
        if not refresh_token:
            raise Reject(10002, "missing refresh_token")
        grant = self.grants.get(refresh_token)
        if grant is None or grant.client_key != client_key or grant.refresh_expires_at <= self.now():
            raise Reject(10010, "refresh_token expired or invalid")
        return grant

    def _issue_access(self, grant: Grant) -> dict[str, Any]:
        self.access_tokens.pop(grant.access_token, None)
        grant.access_token = f"act.{secrets.token_hex(12)}"
        self.access_tokens[grant.access_token] = (grant, self.now() + ACCESS_TOKEN_TTL)
        return self._token_data(grant)

    def _token_data(self, grant: Grant) -> dict[str, Any]:
        return {"access_token": grant.access_token, "expires_in": ACCESS_TOKEN_TTL, "open_id": grant.open_id,
                "refresh_token": grant.refresh_token, "refresh_expires_in": int(grant.refresh_expires_at - self.now()),
                "scope": grant.scope}

    # ------------------------------------------------------------------ user APIs

    def _user_call(self, request: Request, name: str, token: str | None, *, new_envelope: bool = False) -> str:
        """Check throttling, the token and open_id of a user API call; the caller's open_id."""
        self.calls[name] += 1
        expired = 2190008 if new_envelope else 10008
        if self.throttled > 0:
            self.throttled -= 1
            raise Reject(10020, "request too frequent")
        found = self.access_tokens.get(token or "")
        if found is None:
            raise Reject(expired, "access_token invalid")
        grant, expires_at = found
        if expires_at <= self.now():
            raise Reject(expired, "access_token expired")
        open_id = request.query_params.get("open_id")
        if not open_id:
            raise Reject(10002, "missing open_id")
        if open_id != grant.open_id:
            raise Reject(2190004, "the access_token was not issued for this open_id")
        self._count_rate(token or "")
        return open_id

    def _count_rate(self, key: str) -> None:
        if self.api_limit is None:
            return
        limit, window = self.api_limit
        calls = self.api_calls.setdefault(key, deque())
        now = self.now()
        while calls and calls[0] <= now - window:
            calls.popleft()
        if len(calls) >= limit:
            raise Reject(10020, "request too frequent")
        calls.append(now)

    async def userinfo(self, request: Request) -> JSONResponse:
        try:
            form = await _fields(request) if request.method == "POST" else {}
            token = request.headers.get("access-token") or form.get("access_token") or request.query_params.get("access_token")
            open_id = self._user_call(request, "userinfo", token)
            return _ok(dict(self.users[open_id]))
        except Reject as exc:
            return _err(exc.code, exc.description)

    async def video_list(self, request: Request) -> JSONResponse:
        try:
            open_id = self._user_call(request, "video_list", request.headers.get("access-token"))
            count = _int(request.query_params.get("count", "10"), "count", 1, 20)
            cursor = _int(request.query_params.get("cursor", "0"), "cursor", 0, None)
            mine = sorted((v for v in self.videos.values() if v["_owner"] == open_id), key=lambda v: -v["create_time"])
            if cursor:
                mine = [v for v in mine if v["create_time"] * 1000 < cursor]
            page = mine[:count]
            items = [{k: v for k, v in video.items() if not k.startswith("_")} for video in page]
            next_cursor = page[-1]["create_time"] * 1000 if page else cursor
            return _ok({"list": items, "cursor": next_cursor, "has_more": len(mine) > count})
        except Reject as exc:
            return _err(exc.code, exc.description)

    def _own_video(self, open_id: str, item_id: str | None) -> dict[str, Any]:
        if not item_id:
            raise Reject(10002, "missing item_id")
        video = self.videos.get(item_id)
        if video is None or video["_owner"] != open_id:
            raise Reject(2190002, f"item_id {item_id} is not a video of this account")
        return video

    async def comment_list(self, request: Request) -> JSONResponse:
        try:
            open_id = self._user_call(request, "comment_list", request.headers.get("access-token"))
            video = self._own_video(open_id, request.query_params.get("item_id"))
            comments = list(self.comments[video["item_id"]])
            if request.query_params.get("sort_type") == "time_asc":
                comments.reverse()
            return _ok(_offset_page(comments, request))
        except Reject as exc:
            return _err(exc.code, exc.description)

    async def reply_list(self, request: Request) -> JSONResponse:
        try:
            open_id = self._user_call(request, "reply_list", request.headers.get("access-token"))
            video = self._own_video(open_id, request.query_params.get("item_id"))
            comment = self._comment(video["item_id"], request.query_params.get("comment_id"))
            return _ok(_offset_page(list(self.replies.get(comment["comment_id"], [])), request))
        except Reject as exc:
            return _err(exc.code, exc.description)

    def _comment(self, item_id: str, comment_id: str | None) -> dict[str, Any]:
        if not comment_id:
            raise Reject(10002, "missing comment_id")
        for comment in self.comments[item_id]:
            if comment["comment_id"] == comment_id:
                return comment
        raise Reject(2190002, f"comment_id {comment_id} is not a comment of this video")

    async def comment_reply(self, request: Request) -> JSONResponse:
        try:
            open_id = self._user_call(request, "comment_reply", request.headers.get("access-token"))
            body = await _json(request)
            video = self._own_video(open_id, body.get("item_id"))
            content = body.get("content")
            if not isinstance(content, str) or not content.strip() or len(content) > 1000:
                raise Reject(10002, "content must be 1-1000 characters")
            reply = {"comment_id": f"cmt-{next(self._ids)}", "comment_user_id": open_id, "content": content,
                     "create_time": int(self.now()), "digg_count": 0, "reply_comment_total": 0, "top": False}
            if body.get("comment_id"):
                parent = self._comment(video["item_id"], body["comment_id"])
                self.replies.setdefault(parent["comment_id"], []).append(reply)
                parent["reply_comment_total"] += 1
            else:
                self.comments[video["item_id"]].insert(0, reply)
            video["statistics"]["comment_count"] += 1
            return _ok({"comment_id": reply["comment_id"]})
        except Reject as exc:
            return _err(exc.code, exc.description)

    async def im_send(self, request: Request) -> JSONResponse:
        try:
            open_id = self._user_call(request, "im_send", request.headers.get("access-token"), new_envelope=True)
            body = await _json(request)
            if body.get("scene") != "im_reply_msg":
                raise Reject(10002, "scene must be im_reply_msg")
            message = self.im_messages.get(body.get("msg_id") or "")
            if message is None or message.to_user_id != open_id:
                raise Reject(2190002, "msg_id is not a message this account received")
            if body.get("conversation_id") != message.conversation_short_id or body.get("to_user_id") != message.from_user_id:
                raise Reject(2190002, "conversation_id or to_user_id does not match the message")
            if self.now() - message.create_time > IM_REPLY_WINDOW:
                raise Reject(2190002, "the reply window of this message (24 h) has closed")
            if len(message.replies) >= IM_REPLIES_PER_MESSAGE:
                raise Reject(10020, "at most 6 replies per received message")
            content = body.get("content")
            if (not isinstance(content, dict) or content.get("msg_type") != "text" or not isinstance(content.get("text"), str)
                    or not content["text"].strip()):
                raise Reject(10002, "content must be {\"msg_type\": \"text\", \"text\": ...}")
            sent = {"msg_id": f"smsg-{next(self._ids)}", "text": content["text"], "create_time": int(self.now())}
            message.replies.append(sent)
            return _new_ok({"msg_id": sent["msg_id"]})
        except Reject as exc:
            return _new_err(exc.code, exc.description)

    async def hot_videos(self, request: Request) -> JSONResponse:
        self.calls["hot_videos"] += 1
        token = request.headers.get("access-token") or ""
        if self.throttled > 0:
            self.throttled -= 1
            return _err(10020, "request too frequent")
        if not any(self.client_tokens.get(key, {}).get(token, 0) > self.now() for key in self.apps):
            return _err(10008, "client_token invalid or expired")
        items = sorted(self.videos.values(), key=lambda v: -v["statistics"]["play_count"])[:50]
        return _ok({"list": [{"rank": i + 1, "title": v["title"], "share_url": v["share_url"]} for i, v in enumerate(items)],
                    "active_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.now()))})

    # ------------------------------------------------------------------ seed data

    def _user(self, open_id: str, nickname: str) -> dict[str, Any]:
        return {"open_id": open_id, "union_id": f"union-{open_id}", "nickname": nickname,
                "avatar": f"https://p3.douyinpic.com/avatar/{open_id}.jpg",
                "avatar_larger": f"https://p3.douyinpic.com/avatar/{open_id}~large.jpg", "e_account_role": "EAccountM"}

    def _seed(self) -> None:
        """The sandbox account: an authorization, five videos, comments and one private message."""
        self.grant(SANDBOX_OPEN_ID, SANDBOX_REFRESH_TOKEN)
        self.users[SANDBOX_OPEN_ID] = self._user(SANDBOX_OPEN_ID, "Flowlink Tea House")
        base = int(self.now()) - 86400
        videos = [self.add_video(SANDBOX_OPEN_ID, f"Tea ceremony #{n}", create_time=base - n * 3600) for n in range(1, 6)]
        self.seeded_item_id = videos[0]["item_id"]
        self.seeded_comment_id = self.add_comment(videos[0]["item_id"], "open-viewer-1", "How much is the oolong?")["comment_id"]
        self.add_comment(videos[0]["item_id"], "open-viewer-2", "Lovely cups")
        self.seeded_message = self.add_private_message("open-viewer-1", "Do you ship to Hangzhou?")


def _int(raw: str, name: str, low: int, high: int | None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise Reject(10002, f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise Reject(10002, f"{name} must be between {low} and {high}" if high is not None else f"{name} must be >= {low}")
    return value


def _offset_page(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    count = _int(request.query_params.get("count", "20"), "count", 1, 50)
    cursor = _int(request.query_params.get("cursor", "0"), "cursor", 0, None)
    page = items[cursor:cursor + count]
    return {"list": page, "cursor": cursor + len(page), "has_more": cursor + len(page) < len(items)}


async def _fields(request: Request) -> dict[str, str]:
    """Form or JSON fields of an OAuth request."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise Reject(10002, "body is not JSON") from None
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"null")
    except ValueError:
        raise Reject(10002, "body is not JSON") from None
    if not isinstance(data, dict):
        raise Reject(10002, "body must be a JSON object")
    return data


def sandbox() -> Any:
    """A fresh fake (its ASGI app) with the sandbox app, account, videos and messages."""
    return FakeDouyin().app

