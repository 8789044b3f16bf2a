"""A contract-faithful fake of DingTalk (oapi.dingtalk.com and api.dingtalk.com on one server).

It follows docs/connectors/dingtalk.md and the reference contract: both token endpoints
(7200 s tokens, the same token while valid, rejected after their TTL), ``errcode`` answers on
oapi and HTTP status + ``code`` on the new API, required fields, unknown ids, 20 calls/s per
app and API (90018 / ``Forbidden.AccessDenied.QpsLimitForAppkeyAndApi``), cursor and
nextToken paging, custom robots (sign and keyword security, 20 messages/min), work
notifications, and approval instances that can be approved or refused and then pushed as the
signed, encrypted ``bpms_instance_change`` callback.

Test hooks (documented, for tests and manual tries): :meth:`FakeDingTalk.advance` /
``now`` (the fake's clock), :meth:`expire_tokens`, :meth:`throttle` (the next calls of an
API answer a throttling code), :meth:`approve` / :meth:`refuse`, :meth:`subscribe` and
:meth:`send_callback` / :meth:`send_check_url` (push callbacks to a URL, with redelivery, see
:mod:`connectors.dingtalk.fake_push`), :meth:`block_robot`, :meth:`add_instance`, :meth:`hire` /
:meth:`dismiss` (contact changes, pushed when subscribed).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import time
from collections import defaultdict, deque
from typing import Any, Callable, Sequence

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.dingtalk.fake_push import CallbackDelivery, CallbackPusher

# ------------------------------------------------------------------ seeded identities
APP_KEY, APP_SECRET = "dingsandboxappkey01", "sandbox-app-secret"
CORP_ID, AGENT_ID = "dingsandboxcorp", 100001
ROBOT_SIGN_TOKEN, ROBOT_SECRET = "robot-sign-token", "SECsandbox0robot0secret"
ROBOT_KEYWORD_TOKEN, ROBOT_KEYWORDS = "robot-keyword-token", ("订单", "order")
PROCESS_CODE = "PROC-SANDBOX-ORDER"
PROCESS_FORM = ("订单号", "金额", "客户")  # required form components of the seeded template
SEEDED_INSTANCE = "sandbox-instance-0001"
SEEDED_TASK_ID = 100000000001  # a delivered work notification
CALLBACK_TOKEN, CALLBACK_AES_KEY = "sandbox-callback-token", "Sandbox0CallbackAesKey000000000000000000001"

TOKEN_TTL = 7200
QPS_PER_APP_API = 20
ROBOT_PER_MINUTE = 20
ROBOT_BLOCK_SECONDS = 600


def _ok(**data: Any) -> JSONResponse:
    return JSONResponse({"errcode": 0, "errmsg": "ok", **data, "request_id": secrets.token_hex(8)})


def _err(errcode: int, errmsg: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "errmsg": errmsg, **extra, "request_id": secrets.token_hex(8)})


def _api_err(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "requestid": secrets.token_hex(8)}, status_code=status)


class _Reject(Exception):
    """Short-circuits a handler with a ready answer."""

    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def robot_sign(secret: str, timestamp: int | str) -> str:
    """The custom robot's signature: Base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>")), not URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class FakeDingTalk:
    """The fake's state and its Starlette app (``.app``); see the module docstring."""

    def __init__(self, *, clock: Callable[[], float] = time.time, ack_deadline: float = 1.5) -> None:
        self._clock = clock
        self._offset = 0.0
        self._ids = itertools.count(1)
        self.apps = {APP_KEY: {"secret": APP_SECRET, "corp_id": CORP_ID, "agent_id": AGENT_ID}}
        self.oapi_tokens: dict[str, tuple[str, float]] = {}
        self.api_tokens: dict[str, tuple[str, float]] = {}
        self.calls: dict[str, int] = defaultdict(int)
        self._window: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._throttles: dict[str, list[str | int]] = defaultdict(list)
        self.departments = {1: {"dept_id": 1, "name": "Sandbox Corp", "parent_id": None},
                            2: {"dept_id": 2, "name": "销售部", "parent_id": 1},
                            3: {"dept_id": 3, "name": "财务部", "parent_id": 1}}
        self.users: dict[str, dict[str, Any]] = {}
        self._seed_users()
        self.robots = {ROBOT_SIGN_TOKEN: {"secret": ROBOT_SECRET, "keywords": ()},
                       ROBOT_KEYWORD_TOKEN: {"secret": None, "keywords": ROBOT_KEYWORDS}}
        self.robot_messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._robot_sent: dict[str, deque[float]] = defaultdict(deque)
        self._robot_blocked_until: dict[str, float] = {}
        self.notifications: dict[int, dict[str, Any]] = {}
        self.inbox: dict[str, list[dict[str, Any]]] = defaultdict(list)  # userid -> notifications received
        self._delivered_today: set[tuple[str, str, int]] = set()
        self.notifications[SEEDED_TASK_ID] = {"agent_id": AGENT_ID, "msg": {"msgtype": "text", "text": {"content": "hi"}},
                                              "result": _send_result(read=["user001"], unread=["user002"])}
        self.processes = {PROCESS_CODE: {"name": "大额订单审批", "required": PROCESS_FORM}}
        self.instances: dict[str, dict[str, Any]] = {}
        self._seed_instance()
        self.push = CallbackPusher(self.now, ack_deadline)
        self.app = Starlette(routes=[
            Route("/gettoken", self.gettoken, methods=["GET"]),
            Route("/topapi/v2/user/getbymobile", self.user_getbymobile, methods=["POST"]),
            Route("/topapi/v2/user/get", self.user_get, methods=["POST"]),
            Route("/topapi/v2/user/list", self.user_list, methods=["POST"]),
            Route("/topapi/message/corpconversation/asyncsend_v2", self.asyncsend, methods=["POST"]),
            Route("/topapi/message/corpconversation/getsendprogress", self.sendprogress, methods=["POST"]),
            Route("/topapi/message/corpconversation/getsendresult", self.sendresult, methods=["POST"]),
            Route("/robot/send", self.robot_send, methods=["POST"]),
            Route("/v1.0/oauth2/accessToken", self.api_token, methods=["POST"]),
            Route("/v1.0/workflow/processInstances", self.process_instances, methods=["GET", "POST"]),
            Route("/v1.0/workflow/processes/instanceIds/query", self.instance_ids, methods=["POST"]),
        ])

    # ------------------------------------------------------------------ test hooks
    def now(self) -> float:
        """The fake's clock (epoch seconds): the real clock plus :meth:`advance` offsets."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (tokens expire after 7200 s, robot blocks after 600 s)."""
        self._offset += seconds

    def expire_tokens(self) -> None:
        """Revoke every issued token at once (as DingTalk may do before the TTL)."""
        self.oapi_tokens.clear()
        self.api_tokens.clear()

    def throttle(self, path: str, times: int = 1, code: str | int | None = None) -> None:
        """The next `times` calls of `path` answer a throttling error (default 90018 / QpsLimitForAppkeyAndApi)."""
        default: str | int = "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi" if path.startswith("/v1.0/") else 90018
        self._throttles[path].extend([code if code is not None else default] * times)

    def add_instance(self, originator: str = "user001", form: list[dict[str, Any]] | None = None,
                     process_code: str = PROCESS_CODE) -> str:
        """Start an approval instance as if from the DingTalk app; returns its id."""
        instance_id = f"sandbox-instance-{next(self._ids):04d}"
        form = form or [{"name": n, "value": "1"} for n in self.processes[process_code]["required"]]
        self.instances[instance_id] = self._new_instance(instance_id, process_code, originator,
                                                         self.users[originator]["dept_id_list"][0], form,
                                                         int(self.now() * 1000))
        return instance_id

    def hire(self, userid: str, name: str, mobile: str, dept_id: int = 2) -> dict[str, Any]:
        """Add an employee; pushes ``user_add_org`` when subscribed. Returns the event."""
        self.users[userid] = {"userid": userid, "unionid": f"union-{userid}", "name": name, "mobile": mobile,
                              "dept_id_list": [dept_id], "title": "", "active": True, "admin": False}
        return self._contact_event("user_add_org", userid)

    def dismiss(self, userid: str) -> dict[str, Any]:
        """Remove an employee; pushes ``user_leave_org`` when subscribed. Returns the event."""
        del self.users[userid]
        return self._contact_event("user_leave_org", userid)

    def _contact_event(self, kind: str, userid: str) -> dict[str, Any]:
        event = {"EventType": kind, "TimeStamp": str(int(self.now() * 1000)), "UserId": [userid], "CorpId": CORP_ID}
        if self.push.subscribed:
            self.send_callback(event)
        return event

    def block_robot(self, access_token: str) -> None:
        """The robot sent too fast: it answers 130101 for the next 10 minutes (fake clock)."""
        self._robot_blocked_until[access_token] = self.now() + ROBOT_BLOCK_SECONDS

    def approve(self, instance_id: str, remark: str = "同意") -> dict[str, Any]:
        """The pending approver agrees: the instance is COMPLETED with result agree."""
        return self._finish(instance_id, "agree", remark)

    def refuse(self, instance_id: str, remark: str = "拒绝") -> dict[str, Any]:
        """The pending approver refuses: the instance is COMPLETED with result refuse."""
        return self._finish(instance_id, "refuse", remark)

    def subscribe(self, url: str, *, token: str = CALLBACK_TOKEN, aes_key: str = CALLBACK_AES_KEY,
                  owner_key: str = APP_KEY, client: httpx.Client | None = None) -> None:
        """Configure the app's event subscription: approval and contact changes are then pushed to
        `url` (through `client` when given, e.g. a FastAPI TestClient). See :class:`CallbackPusher`."""
        self.push.subscribe(url, token=token, aes_key=aes_key, owner_key=owner_key, client=client)

    def send_check_url(self, url: str | None = None, **kw: Any) -> CallbackDelivery:
        """Push the ``check_url`` verification the console sends when the URL is saved."""
        return self.push.send({"EventType": "check_url"}, url, **kw)

    def send_callback(self, event: dict[str, Any], url: str | None = None, **kw: Any) -> CallbackDelivery:
        """Push an event as DingTalk does (see :meth:`CallbackPusher.send`)."""
        return self.push.send(event, url, **kw)

    @property
    def deliveries(self) -> list[CallbackDelivery]:
        """Every push so far, oldest first."""
        return self.push.deliveries

    # ------------------------------------------------------------------ seeding
    def _seed_users(self) -> None:
        for i in range(1, 26):
            dept = 2 if i <= 15 else 3
            userid = f"user{i:03d}"
            self.users[userid] = {"userid": userid, "unionid": f"union-{userid}", "name": f"员工{i}",
                                  "mobile": f"1380000{i:04d}", "dept_id_list": [dept], "title": "销售" if dept == 2 else "会计",
                                  "active": True, "admin": i == 1}
        self.users["manager01"] = {"userid": "manager01", "unionid": "union-manager01", "name": "王经理",
                                   "mobile": "13900000001", "dept_id_list": [1, 2], "title": "经理", "active": True, "admin": True}

    def _seed_instance(self) -> None:
        started = int(self.now() * 1000) - 3_600_000
        self.instances[SEEDED_INSTANCE] = self._new_instance(
            SEEDED_INSTANCE, PROCESS_CODE, "user001", 2,
            [{"name": "订单号", "value": "SO-1001"}, {"name": "金额", "value": "250000"}, {"name": "客户", "value": "华东贸易"}],
            started)

    def _new_instance(self, instance_id: str, process_code: str, originator: str, dept_id: int,
                      form: list[dict[str, Any]], created_ms: int) -> dict[str, Any]:
        return {"processInstanceId": instance_id, "processCode": process_code,
                "title": f"{self.users[originator]['name']}提交的{self.processes[process_code]['name']}",
                "businessId": f"2026{next(self._ids):010d}", "originatorUserId": originator,
                "originatorDeptId": str(dept_id), "status": "RUNNING", "result": "", "createTime": created_ms,
                "finishTime": None, "formComponentValues": form, "approverUserIds": ["manager01"],
                "tasks": [{"taskId": next(self._ids), "userId": "manager01", "status": "RUNNING", "result": "",
                           "createTime": created_ms}],
                "operationRecords": [{"userId": originator, "type": "START_PROCESS_INSTANCE", "result": "NONE",
                                      "date": created_ms}]}

    def _finish(self, instance_id: str, result: str, remark: str) -> dict[str, Any]:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise KeyError(f"unknown approval instance {instance_id}")
        if instance["status"] != "RUNNING":
            raise ValueError(f"approval instance {instance_id} is already {instance['status']}")
        at = int(self.now() * 1000)
        instance.update(status="COMPLETED", result=result, finishTime=at)
        instance["tasks"][-1].update(status="COMPLETED", result=result.upper(), finishTime=at)
        instance["operationRecords"].append({"userId": "manager01", "type": "EXECUTE_TASK_NORMAL",
                                             "result": result.upper(), "remark": remark, "date": at})
        event = {"EventType": "bpms_instance_change", "processInstanceId": instance_id, "corpId": CORP_ID,
                 "createTime": instance["createTime"], "finishTime": at, "title": instance["title"], "type": "finish",
                 "result": result, "staffId": instance["originatorUserId"], "processCode": instance["processCode"],
                 "businessId": instance["businessId"], "url": f"https://aflow.dingtalk.com/dingtalk/mobile/homepage.htm#/detail/{instance_id}"}
        if self.push.subscribed:
            self.send_callback(event)
        return event

    # ------------------------------------------------------------------ shared checks
    def _hit(self, key: tuple[str, str]) -> bool:
        """Count a call of (app, API); False when it goes over 20 in the last second."""
        now = self.now()
        window = self._window[key]
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= QPS_PER_APP_API:
            return False
        window.append(now)
        return True

    def _oapi_app(self, request: Request, path: str) -> str:
        token = request.query_params.get("access_token")
        self.calls[path] += 1
        if not token:
            raise _Reject(_err(88, "ding talk error[subcode=41001]", sub_code="41001", sub_msg="缺少参数access_token"))
        entry = self.oapi_tokens.get(token)
        if entry is None:
            raise _Reject(_err(88, "ding talk error[subcode=40014,submsg=不合法的access_token]", sub_code="40014",
                               sub_msg="不合法的access_token"))
        app_key, expires_at = entry
        if self.now() >= expires_at:
            raise _Reject(_err(42001, "access_token超时"))
        if self._throttles.get(path):
            raise _Reject(_err(int(self._throttles[path].pop(0)), "ding talk error: 当前接口调用超过QPS限制"))
        if not self._hit((app_key, path)):
            raise _Reject(_err(90018, "当前应用调用该接口超过QPS限制，请稍后重试"))
        return app_key

    def _api_app(self, request: Request, path: str) -> str:
        self.calls[path] += 1
        if request.query_params.get("access_token") and not request.headers.get("x-acs-dingtalk-access-token"):
            raise _Reject(_api_err(400, "AuthenticationFailed.MissingParameter", "缺少x-acs-dingtalk-access-token"))
        token = request.headers.get("x-acs-dingtalk-access-token") or ""
        entry = self.api_tokens.get(token)
        if entry is None or self.now() >= entry[1]:
            raise _Reject(_api_err(401, "InvalidAuthentication", "不合法的access_token"))
        if self._throttles.get(path):
            raise _Reject(_api_err(403, str(self._throttles[path].pop(0)), "当前请求超过限流"))
        if not self._hit((entry[0], path)):
            raise _Reject(_api_err(403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", "应用调用该接口超过QPS限制"))
        return entry[0]

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            raise _Reject(_err(40035, "不合法的参数: 请求体不是JSON")) from None
        if not isinstance(body, dict):
            raise _Reject(_err(40035, "不合法的参数: 请求体必须是对象"))
        return body

    def _issue(self, store: dict[str, tuple[str, float]], app_key: str) -> tuple[str, int]:
        now = self.now()
        for token, (owner, expires_at) in store.items():
            if owner == app_key and expires_at - now > 0:
                return token, int(expires_at - now)  # the same token while it is valid
        token = secrets.token_hex(16)
        store[token] = (app_key, now + TOKEN_TTL)
        return token, TOKEN_TTL

    # ------------------------------------------------------------------ tokens
    async def gettoken(self, request: Request) -> JSONResponse:
        self.calls["/gettoken"] += 1
        key = request.query_params.get("appkey") or request.query_params.get("corpid")
        secret = request.query_params.get("appsecret") or request.query_params.get("corpsecret")
        if not key or not secret:
            return _err(40035, "不合法的参数: appkey/appsecret 必填")
        app = self.apps.get(key)
        if app is None:
            return _err(40096, "不合法的appKey或appSecret")
        if not hmac.compare_digest(app["secret"], secret):
            return _err(40001, "不合法的appsecret")
        token, left = self._issue(self.oapi_tokens, key)
        return JSONResponse({"errcode": 0, "access_token": token, "errmsg": "ok", "expires_in": left})

    async def api_token(self, request: Request) -> JSONResponse:
        self.calls["/v1.0/oauth2/accessToken"] += 1
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            return _api_err(400, "MissingParameter", "请求体不是JSON")
        key, secret = body.get("appKey"), body.get("appSecret")
        if not key or not secret:
            return _api_err(400, "MissingParameter", "appKey/appSecret 必填")
        app = self.apps.get(key)
        if app is None or not hmac.compare_digest(app["secret"], str(secret)):
            return _api_err(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        token, left = self._issue(self.api_tokens, key)
        return JSONResponse({"accessToken": token, "expireIn": left})

    # ------------------------------------------------------------------ contacts
    async def user_getbymobile(self, request: Request) -> JSONResponse:
        try:
            self._oapi_app(request, "/topapi/v2/user/getbymobile")
            body = await self._body(request)
        except _Reject as exc:
            return exc.response
        mobile = body.get("mobile")
        if not mobile:
            return _err(40035, "不合法的参数: mobile")
        for user in self.users.values():
            if user["mobile"] == str(mobile):
                return _ok(result={"userid": user["userid"], "exclusive_account_userid_list": []})
        return _err(60121, "找不到该用户")

    async def user_get(self, request: Request) -> JSONResponse:
        try:
            self._oapi_app(request, "/topapi/v2/user/get")
            body = await self._body(request)
        except _Reject as exc:
            return exc.response
        userid = body.get("userid")
        if not userid:
            return _err(40035, "不合法的参数: userid")
        user = self.users.get(str(userid))
        if user is None:
            return _err(60121, "找不到该用户")
        return _ok(result=dict(user))

    async def user_list(self, request: Request) -> JSONResponse:
        try:
            self._oapi_app(request, "/topapi/v2/user/list")
            body = await self._body(request)
        except _Reject as exc:
            return exc.response
        dept_id, cursor, size = body.get("dept_id"), body.get("cursor"), body.get("size")
        if dept_id is None or cursor is None or size is None:
            return _err(40035, "不合法的参数: dept_id、cursor、size 必填")
        if not isinstance(size, int) or not 1 <= size <= 100 or not isinstance(cursor, int) or cursor < 0:
            return _err(40035, "不合法的参数: size 1-100, cursor >= 0")
        if dept_id not in self.departments:
            return _err(60003, "部门不存在")
        members = [u for u in self.users.values() if dept_id in u["dept_id_list"]]
        page = members[cursor:cursor + size]
        more = cursor + size < len(members)
        result: dict[str, Any] = {"has_more": more, "list": [dict(u) for u in page]}
        if more:
            result["next_cursor"] = cursor + size
        return _ok(result=result)

    # ------------------------------------------------------------------ work notifications
    async def asyncsend(self, request: Request) -> JSONResponse:
        try:
            app_key = self._oapi_app(request, "/topapi/message/corpconversation/asyncsend_v2")
            body = await self._body(request)
        except _Reject as exc:
            return exc.response
        agent_id, msg = body.get("agent_id"), body.get("msg")
        if agent_id is None or not isinstance(msg, dict):
            return _err(40035, "不合法的参数: agent_id、msg 必填")
        if agent_id != self.apps[app_key]["agent_id"]:
            return _err(60011, "没有调用该接口的权限: agent_id 不属于该应用")
        msgtype = msg.get("msgtype")
        if msgtype not in ("text", "markdown", "link", "oa", "action_card", "image", "file", "voice") or not isinstance(msg.get(msgtype), dict):
            return _err(40035, "不合法的参数: msg.msgtype")
        if len(orjson.dumps(msg)) > 2048:
            return _err(40035, "不合法的参数: 消息内容超过2048字节")
        userids = [u for u in str(body.get("userid_list") or "").split(",") if u]
        depts = [d for d in str(body.get("dept_id_list") or "").split(",") if d]
        to_all = bool(body.get("to_all_user"))
        if not (userids or depts or to_all):
            return _err(40035, "不合法的参数: userid_list、dept_id_list、to_all_user 至少一个")
        targets = set(u for u in userids if u in self.users)
        for dept in depts:
            targets.update(u["userid"] for u in self.users.values() if dept.isdigit() and int(dept) in u["dept_id_list"])
        if to_all:
            targets.update(self.users)
        content = hashlib.sha256(orjson.dumps(msg, option=orjson.OPT_SORT_KEYS)).hexdigest()
        day = int(self.now() // 86400)
        read, unread = [], []
        for userid in sorted(targets):
            if (userid, content, day) in self._delivered_today:
                continue  # the same content reaches a user once a day: silently dropped
            self._delivered_today.add((userid, content, day))
            self.inbox[userid].append(msg)
            unread.append(userid)
        task_id = next(self._ids) + 2 * 10**11
        self.notifications[task_id] = {"agent_id": agent_id, "msg": msg, "result": _send_result(
            read=read, unread=unread, invalid=[u for u in userids if u not in self.users],
            invalid_depts=[int(d) for d in depts if d.isdigit() and int(d) not in self.departments])}
        return _ok(task_id=task_id)

    def _task(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("agent_id") is None or body.get("task_id") is None:
            raise _Reject(_err(40035, "不合法的参数: agent_id、task_id 必填"))
        task = self.notifications.get(body["task_id"])
        if task is None or task["agent_id"] != body["agent_id"]:
            raise _Reject(_err(40035, "不合法的参数: task_id 不存在"))
        return task

    async def sendprogress(self, request: Request) -> JSONResponse:
        try:
            self._oapi_app(request, "/topapi/message/corpconversation/getsendprogress")
            self._task(await self._body(request))
        except _Reject as exc:
            return exc.response
        return _ok(progress={"progress_in_percent": 100, "status": 2})

    async def sendresult(self, request: Request) -> JSONResponse:
        try:
            self._oapi_app(request, "/topapi/message/corpconversation/getsendresult")
            task = self._task(await self._body(request))
        except _Reject as exc:
            return exc.response
        return _ok(send_result=task["result"])

    # ------------------------------------------------------------------ custom robot
    async def robot_send(self, request: Request) -> JSONResponse:
        token = request.query_params.get("access_token") or ""
        self.calls["/robot/send"] += 1
        robot = self.robots.get(token)
        if robot is None:
            return _err(300005, "token is not exist")
        now = self.now()
        if robot["secret"]:
            ts, sign = request.query_params.get("timestamp"), request.query_params.get("sign")
            if not ts or not sign or not ts.isdigit():
                return _err(310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]")
            if abs(int(ts) - now * 1000) > 3_600_000:
                return _err(310000, "invalid timestamp")
            if not hmac.compare_digest(robot_sign(robot["secret"], ts), sign):
                return _err(310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]")
        try:
            body = await self._body(request)
        except _Reject as exc:
            return exc.response
        problem, text = _robot_message(body)
        if problem:
            return _err(40035, f"缺少参数 {problem}")
        if robot["keywords"] and not any(k in text for k in robot["keywords"]):
            return _err(310000, "keywords not in content, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]")
        if self._robot_blocked_until.get(token, 0) > now:
            return _err(130101, "send too fast, exceed 20 times per minute")
        sent = self._robot_sent[token]
        while sent and sent[0] <= now - 60:
            sent.popleft()
        if len(sent) >= ROBOT_PER_MINUTE:
            self._robot_blocked_until[token] = now + ROBOT_BLOCK_SECONDS
            return _err(130101, "send too fast, exceed 20 times per minute")
        sent.append(now)
        self.robot_messages[token].append(body)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    # ------------------------------------------------------------------ approvals (new API)
    async def process_instances(self, request: Request) -> JSONResponse:
        try:
            self._api_app(request, "/v1.0/workflow/processInstances")
        except _Reject as exc:
            return exc.response
        if request.method == "GET":
            instance_id = request.query_params.get("processInstanceId")
            if not instance_id:
                return _api_err(400, "MissingprocessInstanceId", "processInstanceId is mandatory for this action.")
            instance = self.instances.get(instance_id)
            if instance is None:
                return _api_err(400, "InvalidParameter.ProcessInstanceNotExist", "审批实例不存在")
            return JSONResponse({"result": {k: v for k, v in instance.items() if k != "processCode"}, "success": True})
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            return _api_err(400, "InvalidParameter", "请求体不是JSON")
        for name in ("processCode", "originatorUserId", "formComponentValues"):
            if not body.get(name):
                return _api_err(400, f"Missing{name}", f"{name} is mandatory for this action.")
        process = self.processes.get(body["processCode"])
        if process is None:
            return _api_err(400, "InvalidParameter.ProcessCodeNotExist", "审批模板不存在")
        originator = self.users.get(body["originatorUserId"])
        if originator is None:
            return _api_err(400, "InvalidParameter.UserNotExist", "发起人不存在")
        dept_id = body.get("deptId", originator["dept_id_list"][0])
        if dept_id not in (-1, *originator["dept_id_list"]):
            return _api_err(400, "InvalidParameter.DeptId", "发起人不在该部门")
        form = body["formComponentValues"]
        if not isinstance(form, list) or not all(isinstance(c, dict) and c.get("name") and "value" in c for c in form):
            return _api_err(400, "InvalidParameter.FormComponentValues", "表单项需要 name 和 value")
        missing = [n for n in process["required"] if not any(c["name"] == n and str(c["value"]).strip() for c in form)]
        if missing:
            return _api_err(400, "InvalidParameter.FormComponentValues", f"必填表单项为空: {', '.join(missing)}")
        approvers = body.get("approvers") or []
        chosen = [u for step in approvers if isinstance(step, dict) for u in step.get("userIds") or []]
        if approvers and (not chosen or any(u not in self.users for u in chosen)):
            return _api_err(400, "InvalidParameter.Approvers", "审批人不存在")
        if any(u not in self.users for u in body.get("ccList") or []):
            return _api_err(400, "InvalidParameter.CcList", "抄送人不存在")
        instance_id = f"sandbox-instance-{next(self._ids):04d}"
        instance = self._new_instance(instance_id, body["processCode"], originator["userid"],
                                      dept_id if dept_id != -1 else 1, form, int(self.now() * 1000))
        if chosen:
            instance["approverUserIds"] = chosen
            instance["tasks"][0]["userId"] = chosen[0]
        self.instances[instance_id] = instance
        return JSONResponse({"instanceId": instance_id})

    async def instance_ids(self, request: Request) -> JSONResponse:
        try:
            self._api_app(request, "/v1.0/workflow/processes/instanceIds/query")
        except _Reject as exc:
            return exc.response
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            return _api_err(400, "InvalidParameter", "请求体不是JSON")
        code, start = body.get("processCode"), body.get("startTime")
        if not code or not isinstance(start, int):
            return _api_err(400, "MissingParameter", "processCode and startTime are mandatory")
        if code not in self.processes:
            return _api_err(400, "InvalidParameter.ProcessCodeNotExist", "审批模板不存在")
        end = body.get("endTime") or int(self.now() * 1000)
        max_results = body.get("maxResults", 20)
        offset = int(body.get("nextToken") or 0)
        if not isinstance(max_results, int) or not 1 <= max_results <= 20:
            return _api_err(400, "InvalidParameter.MaxResults", "maxResults 1-20")
        statuses = body.get("statuses")
        ids = [i["processInstanceId"] for i in self.instances.values()
               if i["processCode"] == code and start <= i["createTime"] <= end and (not statuses or i["status"] in statuses)]
        page = ids[offset:offset + max_results]
        result: dict[str, Any] = {"list": page}
        if offset + max_results < len(ids):
            result["nextToken"] = str(offset + max_results)
        return JSONResponse({"result": result, "success": True})


def _send_result(*, read: Sequence[str], unread: Sequence[str], invalid: Sequence[str] = (),
                 invalid_depts: Sequence[int] = ()) -> dict[str, Any]:
    return {"invalid_user_id_list": list(invalid), "forbidden_user_id_list": [], "failed_user_id_list": [],
            "read_user_id_list": list(read), "unread_user_id_list": list(unread),
            "invalid_dept_id_list": list(invalid_depts), "forbidden_list": []}


def _robot_message(body: dict[str, Any]) -> tuple[str | None, str]:
    """(the first missing field or None, the text the keyword check reads) of a robot message."""
    kind = body.get("msgtype")
    part = body.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict):
        return "msgtype", ""
    required = {"text": ("content",), "markdown": ("title", "text"), "link": ("title", "text", "messageUrl"),
                "actionCard": ("title", "text"), "feedCard": ("links",)}.get(kind)
    if required is None:
        return "msgtype", ""
    for name in required:
        if not part.get(name):
            return f"{kind}.{name}", ""
    if kind == "actionCard" and not (part.get("singleTitle") and part.get("singleURL")) and not part.get("btns"):
        return "actionCard.singleTitle/singleURL or btns", ""
    if kind == "feedCard":
        links = part["links"]
        if not isinstance(links, list) or not all(isinstance(x, dict) and x.get("title") and x.get("messageURL") for x in links):
            return "feedCard.links[].title/messageURL", ""
        return None, " ".join(str(x["title"]) for x in links)
    return None, " ".join(str(part.get(n, "")) for n in ("title", "content", "text"))


def sandbox() -> Starlette:
    """A fresh fake DingTalk (the connector's ``sandbox`` factory)."""
    return FakeDingTalk().app
