"""A contract-faithful fake of Kingdee K3Cloud WebAPI (the ``kingdee`` connector's sandbox).

Contract (platform-apis.md §4): every call is ``POST {base}{Service}.common.kdsvc`` with JSON,
under ``/``, ``/K3Cloud/`` or ``/k3cloud/``.

- ``AuthService.LoginByAppSecret`` ``{"acctID","username","appId","appSecret","lcid"}`` (or the
  older ``{"parameters": "[acct,user,appId,appSecret,lcid]"}``) → ``LoginResultType`` 1 and the
  cookies ``kdservice-sessionid`` + ``ASP.NET_SessionId``; -1 for a wrong data center, user,
  app id or secret. Sessions expire after `idle_timeout` seconds without a call.
- ``DynamicFormService.<Op>`` needs a live session cookie or valid signed headers
  (``X-Api-*`` HMAC of the path with the gateway secret, ``X-Kd-*`` HMAC of appId + appData
  with the app secret, timestamp within 5 minutes); otherwise HTTP 200 with MsgCode 1
  ("session lost"), as the real server answers a call without a user context.
- Body ``{"parameters": [formId, dataJsonString]}`` (ExecuteBillQuery: ``[dataJsonString]``),
  or ``{"formid", "data"}``; the data must be a JSON string in the first shape.
- ``Save``/``Submit``/``Audit``/``Delete`` answer ``{"Result": {"ResponseStatus": {...}, "Id",
  "Number", "NeedReturnData"}}``; ``View`` ``{"Result": {"ResponseStatus": null, "Result": bill}}``;
  ``ExecuteBillQuery`` an array of rows in FieldKeys order (``StartRow``/``Limit`` paging,
  Limit at most 10000), or ``[[{"Result": {"ResponseStatus": ...}}]]`` on error.

Seed data: audited customers CUST0001-2 and materials CH0001-2, sales order XSDD000001
(created) and XSDD000002 (submitted). Test hooks: :meth:`advance` (move the server clock), :meth:`drop_sessions` (the server forgets
every session, as after a restart or a login elsewhere), :meth:`seed_sales_orders`, and the
counters `logins` and `calls`.
"""
from __future__ import annotations

import base64
import hmac
import itertools
import json
import secrets
import time
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.kingdee.sandbox_store import MSG_PARAMETER, MSG_SESSION_LOST, BillStore, KdError
from connectors.kingdee.signing import app_data, gateway_secret, hmac_hex_b64, signed_path

#: Credentials the sandbox accepts (the connector's examples use them).
ACCT_ID = "sandbox-acct"
USERNAME = "demo"
APP_ID = "240001_" + base64.b64encode(b"flowlink-k3cloud-sandbox").decode()  # a 32-character secret part
APP_SECRET = "sandbox-app-secret"
LCID = 2052
MAX_LIMIT = 10000
SIGNATURE_WINDOW = 300.0

_SERVICE = "Kingdee.BOS.WebApi.ServicesStub."
_OPS = ("Save", "View", "ExecuteBillQuery", "Submit", "Audit", "Delete")


def _status(ok: bool, *, errors: list | None = None, entities: list | None = None, msg_code: int = 0) -> dict[str, Any]:
    return {"ErrorCode": 0 if ok else 500, "IsSuccess": ok, "Errors": errors or [], "SuccessEntitys": entities or [],
            "SuccessMessages": [], "MsgCode": msg_code}


def _failure(error: KdError) -> dict[str, Any]:
    return {"Result": {"ResponseStatus": _status(False, errors=error.errors, msg_code=error.msg_code)}}


class FakeKingdee:
    """The fake's state and its ASGI `app`."""

    def __init__(self, *, seed: bool = True, idle_timeout: float = 1200.0) -> None:
        self.offset = 0.0
        self.idle_timeout = idle_timeout
        self.sessions: dict[str, float] = {}  # kdservice-sessionid -> last use (server clock)
        self.logins = 0
        self.calls: Counter[str] = Counter()
        self.store = BillStore(self.now)
        self._session_ids = itertools.count(1)
        if seed:
            self._seed()
        routes = []
        for prefix in ("", "/K3Cloud", "/k3cloud"):
            routes.append(Route(f"{prefix}/{_SERVICE}AuthService.LoginByAppSecret.common.kdsvc", self.login, methods=["POST"]))
            routes.extend(Route(f"{prefix}/{_SERVICE}DynamicFormService.{op}.common.kdsvc", self._operation(op), methods=["POST"])
                          for op in _OPS)
        self.app = Starlette(routes=routes)

    # ------------------------------------------------------------------ test hooks

    def now(self) -> float:
        """The server clock (wall clock plus what :meth:`advance` added)."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the server clock forward (idle sessions expire, modify dates move on)."""
        self.offset += seconds

    def drop_sessions(self) -> None:
        """Forget every session, as after a server restart or the user logging in elsewhere."""
        self.sessions.clear()

    def seed_sales_orders(self, count: int, customer: str = "CUST0001", material: str = "CH0001") -> list[str]:
        """Create `count` sales orders; returns their bill numbers."""
        numbers = []
        for i in range(count):
            bill = self.store.save("SAL_SaleOrder", {
                "FDate": "2026-11-01", "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": customer},
                "FSaleOrderEntry": [{"FMaterialId": {"FNumber": material}, "FQty": i + 1, "FPrice": 10.0}]})
            numbers.append(bill["FBillNo"])
        return numbers

    def _seed(self) -> None:
        """Audited base data (CUST0001-2, CH0001-2), order XSDD000001 created and XSDD000002 submitted."""
        self.store.save("BD_Customer", {"FName": "上海星辰贸易有限公司", "FShortName": "星辰贸易"})
        self.store.save("BD_Customer", {"FName": "杭州云帆科技有限公司"})
        self.store.save("BD_MATERIAL", {"FName": "工业传感器 S1", "FSpecification": "S1-200"})
        self.store.save("BD_MATERIAL", {"FName": "控制器 C3"})
        for form, numbers in (("BD_Customer", ["CUST0001", "CUST0002"]), ("BD_MATERIAL", ["CH0001", "CH0002"])):
            self.store.set_status(form, "Submit", numbers, [])
            self.store.set_status(form, "Audit", numbers, [])
        _, submitted = self.seed_sales_orders(2)
        self.store.set_status("SAL_SaleOrder", "Submit", [submitted], [])

    # ------------------------------------------------------------------ auth

    async def login(self, request: Request) -> JSONResponse:
        """``AuthService.LoginByAppSecret``: a session and its cookies, or LoginResultType -1."""
        self.calls["LoginByAppSecret"] += 1
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        if isinstance(body, dict) and "parameters" in body:
            params = body["parameters"]
            params = json.loads(params) if isinstance(params, str) else params
            body = dict(zip(("acctID", "username", "appId", "appSecret", "lcid"), params if isinstance(params, list) else []))
        if not isinstance(body, dict):
            return JSONResponse({"LoginResultType": 0, "Message": "请求参数格式不正确", "IsSuccessByAPI": False})
        if body.get("acctID") != ACCT_ID:
            return JSONResponse({"LoginResultType": -1, "Message": f"数据中心“{body.get('acctID')}”不存在", "IsSuccessByAPI": False})
        if body.get("username") != USERNAME or body.get("appId") != APP_ID or body.get("appSecret") != APP_SECRET:
            return JSONResponse({"LoginResultType": -1, "Message": "用户名、应用ID或应用密钥错误", "IsSuccessByAPI": False})
        self.logins += 1
        session = f"kd-{next(self._session_ids)}-{secrets.token_hex(8)}"
        self.sessions[session] = self.now()
        answer = JSONResponse({"LoginResultType": 1, "Message": "登录成功", "MessageCode": "CheckPasswordPolicy",
                               "IsSuccessByAPI": True, "KDSVCSessionId": session,
                               "Context": {"UserId": 100008, "UserName": USERNAME, "DBId": ACCT_ID,
                                           "DataCenterName": "Flowlink sandbox", "UserLocale": "zh-CN", "LCID": LCID}})
        answer.set_cookie("kdservice-sessionid", session, httponly=True)
        answer.set_cookie("ASP.NET_SessionId", secrets.token_hex(12), httponly=True)
        return answer

    def _authorized(self, request: Request) -> bool:
        if "x-kd-appkey" in request.headers:
            return self._signature_ok(request)
        session = request.cookies.get("kdservice-sessionid")
        last = self.sessions.get(session or "")
        if last is None or self.now() - last > self.idle_timeout:
            self.sessions.pop(session or "", None)
            return False
        self.sessions[session] = self.now()  # idle timeout counts from the last call
        return True

    def _signature_ok(self, request: Request) -> bool:
        h = request.headers
        if h.get("x-kd-appkey") != APP_ID or h.get("x-api-clientid") != APP_ID.split("_")[0]:
            return False
        if h.get("x-api-auth-version") != "2.0":
            return False
        try:
            stamp = float(h.get("x-api-timestamp", ""))
            plain = base64.b64decode(h.get("x-kd-appdata", ""), validate=True).decode()
        except ValueError:
            return False
        stamp = stamp / 1000 if stamp > 1e11 else stamp
        if abs(time.time() - stamp) > SIGNATURE_WINDOW:
            return False
        acct, user, lcid, _org = (plain.split(",") + ["", "", "", ""])[:4]
        if (acct, user, lcid) != (ACCT_ID, USERNAME, str(LCID)) or plain != app_data(acct, user, lcid, _org):
            return False
        expected_kd = hmac_hex_b64(APP_ID + plain, APP_SECRET)
        expected_api = hmac_hex_b64(signed_path(request.url.path, h.get("x-api-nonce", ""), h.get("x-api-timestamp", "")),
                                    gateway_secret(APP_ID))
        return hmac.compare_digest(h.get("x-kd-signature", ""), expected_kd) and \
            hmac.compare_digest(h.get("x-api-signature", ""), expected_api)

    # ------------------------------------------------------------------ operations

    def _operation(self, op: str):  # noqa: ANN202 - a Starlette endpoint
        async def endpoint(request: Request) -> JSONResponse:
            """Check the session or signature, parse the arguments, run the operation."""
            self.calls[op] += 1
            try:
                if not self._authorized(request):
                    raise KdError(MSG_SESSION_LOST, "会话信息已丢失，请重新登录")
                form_id, data = self._arguments(op, await request.body())
                return JSONResponse(self._run(op, form_id, data))
            except KdError as error:
                failure = _failure(error)
                return JSONResponse([[failure]] if op == "ExecuteBillQuery" else failure)
        return endpoint

    @staticmethod
    def _arguments(op: str, raw: bytes) -> tuple[Any, dict[str, Any]]:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise KdError(MSG_PARAMETER, "请求内容不是有效的 JSON") from None
        if isinstance(body, dict) and "parameters" in body:
            params = body["parameters"]
            if not isinstance(params, list) or len(params) != (1 if op == "ExecuteBillQuery" else 2):
                raise KdError(MSG_PARAMETER, "parameters 参数个数不正确", "parameters")
            form_id, text = (None, params[0]) if op == "ExecuteBillQuery" else (params[0], params[1])
            if not isinstance(text, str):
                raise KdError(MSG_PARAMETER, "data 参数应为 JSON 字符串", "parameters")
            try:
                data = json.loads(text)
            except ValueError:
                raise KdError(MSG_PARAMETER, "data 参数不是有效的 JSON", "parameters") from None
        elif isinstance(body, dict) and "data" in body:
            form_id, data = body.get("formid"), body["data"]
            data = json.loads(data) if isinstance(data, str) else data
        else:
            raise KdError(MSG_PARAMETER, "缺少 parameters 参数", "parameters")
        if not isinstance(data, dict):
            raise KdError(MSG_PARAMETER, "data 参数应为 JSON 对象", "data")
        return form_id, data

    def _run(self, op: str, form_id: Any, data: dict[str, Any]) -> Any:
        store = self.store
        if op == "ExecuteBillQuery":
            return self._query(data)
        if op == "View":
            bill = store.find(form_id, number=data.get("Number"), bill_id=data.get("Id"))
            return {"Result": {"ResponseStatus": None, "Result": {"Id": bill["FID"], **bill}}}
        if op == "Save":
            need = data.get("NeedUpDateFields") or []
            returned = data.get("NeedReturnFields") or []
            if not isinstance(need, list) or not isinstance(returned, list):
                raise KdError(MSG_PARAMETER, "NeedUpDateFields/NeedReturnFields 应为数组", "NeedUpDateFields")
            bill = store.save(form_id, data.get("Model"), need)
            number = bill[store.meta(form_id).number_field]
            if data.get("IsAutoSubmitAndAudit"):
                store.set_status(form_id, "Submit", [number], [])
                store.set_status(form_id, "Audit", [number], [])
            entity = {"Id": bill["FID"], "Number": number, "DIndex": 0}
            return {"Result": {"ResponseStatus": _status(True, entities=[entity]), "Id": bill["FID"], "Number": number,
                               "NeedReturnData": [{k: bill.get(k) for k in returned}]}}
        numbers, ids = data.get("Numbers") or [], data.get("Ids") or ""
        if not isinstance(numbers, list):
            raise KdError(MSG_PARAMETER, "Numbers 应为数组", "Numbers")
        id_list = [i for i in str(ids).split(",") if i.strip()] if ids else []
        entities = store.set_status(form_id, op, numbers, id_list)
        return {"Result": {"ResponseStatus": _status(True, entities=entities)}}

    def _query(self, data: dict[str, Any]) -> list[list[Any]]:
        keys = data.get("FieldKeys")
        if not isinstance(keys, str) or not keys.strip():
            raise KdError(MSG_PARAMETER, "FieldKeys 不能为空", "FieldKeys")
        numbers = {}
        for name in ("StartRow", "Limit", "TopRowCount"):
            value = data.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise KdError(MSG_PARAMETER, f"{name} 应为非负整数", name)
            numbers[name] = value
        if numbers["Limit"] > MAX_LIMIT:
            raise KdError(MSG_PARAMETER, f"Limit 不能超过 {MAX_LIMIT}", "Limit")
        for name in ("FilterString", "OrderString"):
            if not isinstance(data.get(name, ""), str):
                raise KdError(MSG_PARAMETER, f"{name} 应为字符串", name)
        return self.store.query(data.get("FormId"), [k.strip() for k in keys.split(",")], data.get("FilterString", ""),
                                data.get("OrderString", ""), numbers["StartRow"], numbers["Limit"], numbers["TopRowCount"])


def create_app() -> Any:
    """A fresh sandbox (the connector's ``sandbox`` factory)."""
    return FakeKingdee().app
