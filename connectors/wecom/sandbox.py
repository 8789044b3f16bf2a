"""A contract-faithful fake of WeCom (企业微信) for tests, the contract kit and ``flowlink sandbox wecom``.

It serves ``/cgi-bin/...`` as qyapi.weixin.qq.com does, answering HTTP 200 with
``{"errcode", "errmsg", ...}``, and rejects what WeCom rejects:

- ``gettoken``: 41002/41004 missing corpid/corpsecret, 40013 unknown corp, 40001 wrong
  secret; the same token is returned while it is valid (``expires_in`` = ``token_ttl``);
- every other API: 41001 no ``access_token``, 40014 unknown token, 42001 expired (by the
  fake's clock), 48002 when the app lacks the API's permission, 45009 over the rate limit
  (per corp and API, a sliding window: WeCom's 10 000/min unless :meth:`set_limit` lowers
  it), 47001 a body that is not JSON, 40058/41009/44004... a missing or invalid field,
  60111/46004/60123/40096/84061/40068 unknown members, departments, customers, tags;
- group robots (``webhook/send?key=``): 93000 unknown key, 45009 after 20 messages a minute.

Test hooks (documented methods): :meth:`advance` the clock, :meth:`expire_tokens`,
:meth:`revoke_tokens`, :meth:`throttle` (the next calls of an API answer 45009),
:meth:`set_limit`; events that change the state and return the callback event WeCom would
push (:meth:`customer_added`, :meth:`text_message`...); and :meth:`send_callback` /
:meth:`verify_url`, which deliver them signed and encrypted to a Flowlink webhook exactly
as WeCom does (same delivery re-sent on failure).

Layout: this module holds the plumbing (tokens, permissions, rate windows), app messages,
media and the directory; ``fake_scrm`` the customer-contact APIs, ``fake_robot`` the group
robots, ``fake_events`` the callbacks it sends, ``fake_state`` the seeded data.
"""
from __future__ import annotations

import itertools
import secrets
import time
from collections import Counter, deque
from typing import Any, Callable

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connectors.wecom import fake_state as seed
from connectors.wecom.fake_events import CallbackSender
from connectors.wecom.fake_robot import RobotApi
from connectors.wecom.fake_scrm import ScrmApi
from connectors.wecom.fake_state import Call, Corp, FakeError, multipart_file

#: WeCom's per-corp per-API limit (doc 90312, newest figure).
DEFAULT_LIMIT = (10_000, 60.0)
ROBOT_LIMIT = (20, 60.0)
MEDIA_TYPES = {"image": 10 << 20, "voice": 2 << 20, "video": 10 << 20, "file": 20 << 20}


Handler = Callable[[Call], dict[str, Any]]


class FakeWeCom(ScrmApi, RobotApi, CallbackSender):
    """The fake's state and its ASGI ``app``; see the module docstring."""

    def __init__(self, *, token_ttl: float = 7200.0) -> None:
        self.offset = 0.0
        self.token_ttl = token_ttl
        created = int(self.now()) - 86400
        self.corps: dict[str, Corp] = {c.corp_id: c for c in (seed.sandbox_corp(created), seed.second_corp())}
        self.corps[seed.SANDBOX_CORP].welcome_codes[seed.SANDBOX_WELCOME_CODE] = {
            "userid": "zhangsan", "external_userid": "wmCustomer001", "expires_at": self.now() + 600, "used": False}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.errors: Counter[int] = Counter()
        self.limits: dict[str, tuple[int, float]] = {}
        self.forced: Counter[str] = Counter()
        self.windows: dict[tuple[str, str], deque[float]] = {}
        self.robots: dict[str, dict[str, Any]] = {seed.ROBOT_KEY: {"messages": [], "media": {}}}
        self._ids = itertools.count(1)
        self.apis: dict[str, tuple[str, str, Handler]] = {
            "message/send": ("POST", "message", self.message_send),
            "media/upload": ("POST", "media", self.media_upload),
            "user/get": ("GET", "directory", self.user_get),
            "user/getuserid": ("POST", "directory", self.user_getuserid),
            "user/simplelist": ("GET", "directory", self.user_simplelist),
            "department/list": ("GET", "directory", self.department_list),
            **self.scrm_apis(),
        }
        self.app = Starlette(routes=[
            Route("/cgi-bin/gettoken", self.gettoken, methods=["GET"]),
            Route("/cgi-bin/webhook/send", self.robot_send, methods=["POST"]),
            Route("/cgi-bin/webhook/upload_media", self.robot_upload, methods=["POST"]),
            Route("/cgi-bin/{api:path}", self.dispatch, methods=["GET", "POST"]),
        ])

    # ------------------------------------------------------------------ test hooks
    def now(self) -> float:
        """The fake's clock: real time plus what :meth:`advance` added."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (tokens, welcome codes and rate windows age)."""
        self.offset += seconds

    def expire_tokens(self) -> None:
        """Every issued access token is past its TTL: calls answer 42001."""
        for info in self.tokens.values():
            info["expires_at"] = self.now() - 1

    def revoke_tokens(self) -> None:
        """Every issued access token is forgotten (invalidated early): calls answer 40014."""
        self.tokens.clear()

    def throttle(self, api: str, times: int = 1) -> None:
        """The next `times` calls of `api` (e.g. ``"message/send"``, ``"webhook/send"``) answer 45009."""
        self.forced[api] += times

    def set_limit(self, api: str, rate: int, per: float) -> None:
        """Lower the limit of `api` to `rate` calls per `per` seconds (per corp, or per robot key)."""
        self.limits[api] = (rate, per)

    def corp(self, corp_id: str = seed.SANDBOX_CORP) -> Corp:
        """A corp's state (members, customers, messages sent ...)."""
        return self.corps[corp_id]

    # ------------------------------------------------------------------ plumbing
    def answer(self, data: dict[str, Any] | None = None, errcode: int = 0, errmsg: str = "ok") -> JSONResponse:
        """WeCom's answer shape (HTTP 200 always); error answers are counted in `errors`."""
        if errcode:
            self.errors[errcode] += 1
        return JSONResponse({"errcode": errcode, "errmsg": errmsg, **(data or {})})

    def _over_limit(self, api: str, scope: str) -> bool:
        if self.forced[api] > 0:
            self.forced[api] -= 1
            return True
        rate, per = self.limits.get(api, ROBOT_LIMIT if api.startswith("webhook/") else DEFAULT_LIMIT)
        window = self.windows.setdefault((scope, api), deque())
        now = self.now()
        while window and window[0] <= now - per:
            window.popleft()
        if len(window) >= rate:
            return True
        window.append(now)
        return False

    def _token(self, value: str | None) -> dict[str, Any]:
        if not value:
            raise FakeError(41001, "access_token missing")
        info = self.tokens.get(value)
        if info is None:
            raise FakeError(40014, "invalid access_token")
        if info["expires_at"] <= self.now():
            raise FakeError(42001, "access_token expired")
        return info

    async def gettoken(self, request: Request) -> Response:
        """``GET /cgi-bin/gettoken?corpid=&corpsecret=``."""
        self.calls["gettoken"] += 1
        corp_id, secret = request.query_params.get("corpid"), request.query_params.get("corpsecret")
        if not corp_id:
            return self.answer(errcode=41002, errmsg="corpid missing")
        if not secret:
            return self.answer(errcode=41004, errmsg="corpsecret missing")
        corp = self.corps.get(corp_id)
        if corp is None:
            return self.answer(errcode=40013, errmsg="invalid corpid")
        app = corp.app_by_secret(secret)
        if app is None:
            return self.answer(errcode=40001, errmsg="invalid credential, secret is wrong")
        if self._over_limit("gettoken", corp_id):
            return self.answer(errcode=45009, errmsg="api freq out of limit")
        now = self.now()
        for token, info in self.tokens.items():  # one token per app while it is valid
            if info["corp_id"] == corp_id and info["agentid"] == app.agentid and info["expires_at"] > now:
                return self.answer({"access_token": token, "expires_in": int(info["expires_at"] - now)})
        token = f"tk-{corp_id}-{app.agentid}-{secrets.token_hex(12)}"
        self.tokens[token] = {"corp_id": corp_id, "agentid": app.agentid, "expires_at": now + self.token_ttl}
        return self.answer({"access_token": token, "expires_in": int(self.token_ttl)})

    async def dispatch(self, request: Request) -> Response:
        """Every token-authenticated API: token, permission, rate limit, body, then the handler."""
        api = request.path_params["api"]
        if api not in self.apis:
            return PlainTextResponse("404 page not found", status_code=404)
        method, scope, handler = self.apis[api]
        self.calls[api] += 1
        try:
            if request.method != method:
                raise FakeError(43001 if method == "GET" else 43002, f"require {method} method")
            info = self._token(request.query_params.get("access_token"))
            corp = self.corps[info["corp_id"]]
            app = corp.apps[info["agentid"]]
            if scope not in app.scopes:
                raise FakeError(48002, "api forbidden")
            if self._over_limit(api, corp.corp_id):
                raise FakeError(45009, "api freq out of limit")
            raw, ctype = await request.body(), request.headers.get("content-type", "")
            body: dict[str, Any] = {}
            if method == "POST" and not ctype.startswith("multipart/form-data"):  # uploads are multipart, the rest JSON
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    raise FakeError(47001, "data format error") from None
                if not isinstance(body, dict):
                    raise FakeError(47001, "data format error")
            result = handler(Call(corp, app, request.query_params, body, raw, ctype))
        except FakeError as exc:
            return self.answer(errcode=exc.errcode, errmsg=exc.errmsg)
        return self.answer(result)

    # ------------------------------------------------------------------ messages
    def _check_content(self, body: dict[str, Any], media: dict[str, Any]) -> None:
        msgtype = body.get("msgtype")
        content = body.get(msgtype) if isinstance(msgtype, str) else None
        if msgtype not in ("text", "markdown", "textcard", "news", "image", "file", "voice", "video", "template_card"):
            raise FakeError(40008, f"invalid message type: {msgtype}")
        if not isinstance(content, dict):
            raise FakeError(40058, f"missing required parameter: {msgtype}")
        if msgtype in ("text", "markdown"):
            text = content.get("content")
            if not isinstance(text, str) or not text:
                raise FakeError(44004, "empty content")
            if len(text.encode()) > (2048 if msgtype == "text" else 4096):
                raise FakeError(45002, "content size out of limit")
        elif msgtype == "textcard":
            for name in ("title", "description", "url"):
                if not content.get(name):
                    raise FakeError(40058, f"missing required parameter: textcard.{name}")
        elif msgtype == "news":
            articles = content.get("articles")
            if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
                raise FakeError(40058, "news.articles must hold 1 to 8 articles")
            if any(not isinstance(a, dict) or not a.get("title") or not a.get("url") for a in articles):
                raise FakeError(40058, "missing required parameter: news.articles[].title/url")
        elif msgtype == "template_card":
            if content.get("card_type") not in ("text_notice", "news_notice", "button_interaction", "vote_interaction",
                                                "multiple_interaction"):
                raise FakeError(40058, "invalid template_card.card_type")
            if not (content.get("main_title") or {}).get("title") and content.get("card_type") != "vote_interaction":
                raise FakeError(40058, "missing required parameter: template_card.main_title.title")
        else:
            item = media.get(str(content.get("media_id")))
            if item is None or item["expires_at"] <= self.now():
                raise FakeError(40007, "invalid media_id")

    def message_send(self, call: Call) -> dict[str, Any]:
        """``POST message/send``: recipients checked one by one, partial failures reported."""
        body, corp = call.body, call.corp
        agentid = call.field("agentid", int, code=41011)
        if agentid != call.app.agentid:
            raise FakeError(40056, "invalid agentid")
        self._check_content(body, corp.media)
        users, parties, tags = (str(body.get(k) or "") for k in ("touser", "toparty", "totag"))
        if not (users or parties or tags):
            raise FakeError(40058, "missing required parameter: touser, toparty or totag")
        to_all = users == "@all"
        ulist = [] if to_all else [u for u in users.split("|") if u]
        plist, tlist = [p for p in parties.split("|") if p], [t for t in tags.split("|") if t]
        if len(ulist) > 1000 or len(plist) > 100 or len(tlist) > 100:
            raise FakeError(40058, "too many recipients: touser <= 1000, toparty and totag <= 100")
        invalid_users = [u for u in ulist if u not in corp.users]
        invalid_parties = [p for p in plist if not p.isdigit() or int(p) not in corp.departments]
        invalid_tags = [t for t in tlist if not t.isdigit() or int(t) not in corp.member_tags]
        if not to_all and len(invalid_users) == len(ulist) and len(invalid_parties) == len(plist) and len(invalid_tags) == len(tlist):
            raise FakeError(81013, "user & party & tag all invalid")
        msgid = f"msg{next(self._ids)}"
        corp.messages.append({**body, "msgid": msgid, "sent_at": self.now()})
        result: dict[str, Any] = {"invaliduser": "|".join(invalid_users), "invalidparty": "|".join(invalid_parties),
                                  "invalidtag": "|".join(invalid_tags), "unlicenseduser": "", "msgid": msgid}
        card = body.get("template_card") if body.get("msgtype") == "template_card" else None
        if card and card.get("card_type") in ("button_interaction", "vote_interaction", "multiple_interaction"):
            result["response_code"] = secrets.token_hex(16)
        return result

    def media_upload(self, call: Call) -> dict[str, Any]:
        """``POST media/upload?type=`` with a multipart field ``media`` (filename and length required)."""
        kind = call.query.get("type")
        if kind not in MEDIA_TYPES:
            raise FakeError(40004, "invalid media type")
        data, filename = multipart_file(call.content_type, call.raw)
        if data is None or not filename:
            raise FakeError(41005, "media data missing")
        if len(data) < 5 or len(data) > MEDIA_TYPES[kind]:
            raise FakeError(40006, "invalid file size")
        media_id = f"media-{kind}-{next(self._ids)}"
        call.corp.media[media_id] = {"type": kind, "filename": filename, "data": data, "expires_at": self.now() + 3 * 86400}
        return {"type": kind, "media_id": media_id, "created_at": str(int(self.now()))}

    # ------------------------------------------------------------------ directory
    def user_get(self, call: Call) -> dict[str, Any]:
        """``GET user/get?userid=``."""
        return dict(call.user(call.query.get("userid")))

    def user_getuserid(self, call: Call) -> dict[str, Any]:
        """``POST user/getuserid {mobile}``."""
        mobile = call.field("mobile", str)
        found = next((u for u in call.corp.users.values() if u["mobile"] == mobile), None)
        if found is None:
            raise FakeError(46004, "user no exist")
        return {"userid": found["userid"]}

    def _department(self, call: Call, raw: Any) -> int:
        if raw in (None, ""):
            raise FakeError(40058, "missing required parameter: department_id")
        if not str(raw).isdigit() or int(raw) not in call.corp.departments:
            raise FakeError(60123, f"invalid party: {raw}")
        return int(raw)

    def user_simplelist(self, call: Call) -> dict[str, Any]:
        """``GET user/simplelist?department_id=&fetch_child=``."""
        root = self._department(call, call.query.get("department_id"))
        depts = call.corp.department_ids(root, call.query.get("fetch_child") == "1")
        users = [{"userid": u["userid"], "name": u["name"], "department": u["department"], "open_userid": u["open_userid"]}
                 for u in call.corp.users.values() if set(u["department"]) & depts]
        return {"userlist": users}

    def department_list(self, call: Call) -> dict[str, Any]:
        """``GET department/list[?id=]``: the department and every one below it."""
        raw = call.query.get("id")
        ids = call.corp.department_ids(self._department(call, raw), True) if raw else set(call.corp.departments)
        return {"department": [call.corp.departments[d] for d in sorted(ids)]}


def create_app() -> Any:
    """A fresh fake (the connector's ``sandbox`` factory)."""
    return FakeWeCom().app
