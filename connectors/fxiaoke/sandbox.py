"""A contract-faithful fake of the Fxiaoke (纷享销客) open API, as a Starlette ASGI app.

The contract (`/work/shared/reference/platform-apis.md` §6; third-party sources, see the docs):

- ``POST /cgi/corpAccessToken/get/V2`` ``{appId, appSecret, permanentCode}`` →
  ``{errorCode: 0, errorMessage, corpAccessToken, corpId, expiresIn: 7200}``; while a token
  is valid and younger than 6600 s the same token is returned; a wrong app, secret or
  permanent code answers errorCode 10006.
- Every other call is ``POST`` with ``corpAccessToken``, ``corpId`` (and for CRM data
  ``currentOpenUserId``) at the top level of the JSON body. Missing → 20017; unknown,
  expired (7200 s by the fake's clock) or another corp's token → 20016.
- Always HTTP 200; success iff ``errorCode == 0``.
- ``/cgi/user/list`` ``{departmentId, fetchChild}`` → ``userList[{openUserId, name, mobile, isStop}]``.
- ``/cgi/crm/v2/data/{create,update,get,query,changeOwner}`` on the preset objects
  ``LeadsObj``, ``AccountObj``, ``NewOpportunityObj`` and ``ActiveRecordObj`` (follow-up
  records), with field types, required fields, employee fields as lists of open user ids,
  numbers as strings and dates as epoch milliseconds. ``update`` cannot change ``owner``
  (``changeOwner`` does). ``query`` pages with ``search_query_info.limit`` (1-100) and
  ``offset`` (a multiple of limit, at most 10 000) → ``data{dataList, total, offset, limit}``.
- Limits: 100 calls per API per 20 s (errorCode 30001) and a
  daily quota per corp (errorCode 30002).

Codes the reference does not publish (the fake's choice, mapped by the connector's error
rules; change both together when confirmed): 10001 invalid parameter or field (the message
names the field as ``字段[api_name]``), 10002 data not found, 30001 per-API frequency limit.
"""
from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# Credentials the sandbox accepts (the connector's examples use them).
SANDBOX_APP_ID = "FSAID_sandbox"
SANDBOX_APP_SECRET = "sandbox-app-secret"
SANDBOX_PERMANENT_CODE = "sandbox-permanent-code"
SANDBOX_CORP_ID = "FSCID_sandbox"
SANDBOX_USER = "FSUID_LILEI"

TOKEN_TTL = 7200
TOKEN_REUSE = 6600
RATE_LIMIT, RATE_WINDOW = 100, 20.0
MAX_LIMIT, MAX_OFFSET = 100, 10_000

OK = 0
INVALID_PARAM = 10001
NOT_FOUND = 10002
BAD_APP_CREDENTIALS = 10006
TOKEN_INVALID = 20016
AUTH_MISSING = 20017
FREQUENCY_LIMIT = 30001
QUOTA_EXCEEDED = 30002

EMPLOYEES = (
    {"openUserId": "FSUID_LILEI", "name": "李雷", "mobile": "13800000001", "isStop": False},
    {"openUserId": "FSUID_HANMEIMEI", "name": "韩梅梅", "mobile": "13800000002", "isStop": False},
    {"openUserId": "FSUID_WANGWU", "name": "王五", "mobile": "13800000003", "isStop": False},
    {"openUserId": "FSUID_ZHAOLIU", "name": "赵六", "mobile": "13800000004", "isStop": True},
)


@dataclass(frozen=True)
class FieldType:
    """How one field of an object is checked: a type name and, for select fields, options."""

    type: str  # text, number, date, employee, email, phone, select, reference, references
    required: bool = False
    options: tuple[str, ...] = ()
    target: str | None = None  # the object a reference points to


OBJECTS: dict[str, dict[str, FieldType]] = {
    "LeadsObj": {
        "name": FieldType("text", required=True), "owner": FieldType("employee", required=True),
        "company": FieldType("text"), "mobile": FieldType("phone"), "tel": FieldType("phone"),
        "email": FieldType("email"), "job_title": FieldType("text"), "remark": FieldType("text"),
        "source": FieldType("select", options=("1", "2", "3", "4", "5", "other")),
        "leads_status": FieldType("select", options=("1", "2", "3", "4", "5", "6")),
    },
    "AccountObj": {
        "name": FieldType("text", required=True), "owner": FieldType("employee", required=True),
        "tel": FieldType("phone"), "email": FieldType("email"), "url": FieldType("text"),
        "address": FieldType("text"), "remark": FieldType("text"),
        "account_level": FieldType("select", options=("1", "2", "3")),
        "account_source": FieldType("select", options=("1", "2", "3", "4", "5", "other")),
    },
    "NewOpportunityObj": {
        "name": FieldType("text", required=True), "owner": FieldType("employee", required=True),
        "account_id": FieldType("reference", required=True, target="AccountObj"),
        "amount": FieldType("number"), "close_date": FieldType("date", required=True),
        "sales_stage": FieldType("select", options=("1", "2", "3", "4", "5", "6", "7")),
        "remark": FieldType("text"),
    },
    "ActiveRecordObj": {
        "active_record_content": FieldType("text", required=True), "owner": FieldType("employee"),
        "active_record_type": FieldType("select", options=("1", "2", "3", "4")),
        "related_object_data": FieldType("references", required=True),
    },
}
SYSTEM_FIELDS = ("_id", "create_time", "last_modified_time", "created_by", "last_modified_by", "life_status",
                 "object_describe_api_name")
OPERATORS = ("EQ", "N", "GT", "GTE", "LT", "LTE", "LIKE", "NLIKE", "IN", "NIN", "IS", "ISN", "BETWEEN")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9-]{4,19}$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class FxiaokeError(Exception):
    """An error answer: ``{errorCode, errorMessage}`` (HTTP 200, as the platform does)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def field_error(api_name: str, problem: str) -> FxiaokeError:
    """A field-level validation error naming the field the way the fake always does."""
    return FxiaokeError(INVALID_PARAM, f"参数错误: 字段[{api_name}]{problem}")


class FakeFxiaoke:
    """The fake's state and its ASGI `app`.

    Test hooks: :meth:`advance` moves the fake's clock (tokens expire after 7200 s of it),
    :meth:`expire_tokens` invalidates every issued token now, :meth:`add_records` stores many
    records at once, `rate_limit` (calls per API per 20 s) and `daily_quota` (calls left for
    the corp today, None for unlimited) can be lowered, `on_call(path)` (when set) runs after
    each answered request, `calls` counts requests per path and `records` holds the data by
    object and id.
    """

    def __init__(self, *, seed: bool = True) -> None:
        self.apps = {SANDBOX_APP_ID: (SANDBOX_APP_SECRET, SANDBOX_PERMANENT_CODE, SANDBOX_CORP_ID)}
        self.employees = [dict(e) for e in EMPLOYEES]
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECTS}
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (corp id, issued at)
        self.calls: dict[str, int] = defaultdict(int)
        self.rate_limit = RATE_LIMIT
        self.daily_quota: int | None = None
        self._offset = 0.0
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._ids = itertools.count(1)
        self.on_call: Callable[[str], None] | None = None
        if seed:
            self._seed()
        self.app = Starlette(routes=[
            Route("/cgi/corpAccessToken/get/V2", self._handler(self.get_token, auth=False), methods=["POST"]),
            Route("/cgi/user/list", self._handler(self.user_list, user=False), methods=["POST"]),
            Route("/cgi/crm/v2/data/create", self._handler(self.create), methods=["POST"]),
            Route("/cgi/crm/v2/data/update", self._handler(self.update), methods=["POST"]),
            Route("/cgi/crm/v2/data/get", self._handler(self.get), methods=["POST"]),
            Route("/cgi/crm/v2/data/query", self._handler(self.query), methods=["POST"]),
            Route("/cgi/crm/v2/data/changeOwner", self._handler(self.change_owner), methods=["POST"]),
        ])

    # ------------------------------------------------------------------ test hooks

    def now(self) -> float:
        """The fake's clock (real time plus what :meth:`advance` added)."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward: tokens age, rate windows pass."""
        self._offset += seconds

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far (the next calls answer 20016)."""
        self.tokens.clear()

    def add_records(self, api_name: str, rows: list[dict[str, Any]], user: str = SANDBOX_USER) -> list[str]:
        """Store records as if created through the API (fields are validated); their ids."""
        return [self._insert(api_name, self._check_fields(api_name, row, creating=True), user)["_id"] for row in rows]

    def _seed(self) -> None:
        account = self._insert("AccountObj", {"name": "杭州示例科技有限公司", "owner": ["FSUID_LILEI"], "account_level": "1"},
                               SANDBOX_USER)
        self._insert("LeadsObj", {"name": "张三", "company": "上海样例贸易", "mobile": "13900000000",
                                  "owner": ["FSUID_LILEI"]}, SANDBOX_USER)
        assert account["_id"] == "5f0000000000000000000001"

    # ------------------------------------------------------------------ plumbing

    def _handler(self, fn: Callable[[dict[str, Any], str], dict[str, Any]], *, auth: bool = True,
                 user: bool = True) -> Callable[[Request], Any]:
        async def handle(request: Request) -> JSONResponse:
            path = request.url.path
            self.calls[path] += 1
            try:
                body = self._json(await request.body())
                corp = ""
                if auth:
                    corp = self._authenticate(body)
                    self._throttle(path, corp)
                    if user:
                        self._operator(body)
                answer = fn(body, corp)
            except FxiaokeError as exc:
                answer = {"errorCode": exc.code, "errorMessage": exc.message}
            else:
                answer = {"errorCode": OK, "errorMessage": "OK", **answer}
            if self.on_call is not None:
                self.on_call(path)
            return JSONResponse({**answer, "traceId": secrets.token_hex(8)})

        return handle

    @staticmethod
    def _json(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise FxiaokeError(INVALID_PARAM, "参数错误: 请求体不是合法的 JSON") from None
        if not isinstance(body, dict):
            raise FxiaokeError(INVALID_PARAM, "参数错误: 请求体必须是 JSON 对象")
        return body

    def _authenticate(self, body: dict[str, Any]) -> str:
        token, corp = body.get("corpAccessToken"), body.get("corpId")
        if not token or not corp:
            raise FxiaokeError(AUTH_MISSING, "corpAccessToken 或 corpId 缺失")
        issued = self.tokens.get(token)
        if issued is None or issued[0] != corp or self.now() - issued[1] >= TOKEN_TTL:
            raise FxiaokeError(TOKEN_INVALID, "corpAccessToken 无效或已过期")
        return corp

    def _throttle(self, path: str, corp: str) -> None:
        now = self.now()
        window = self._windows[f"{corp}:{path}"]
        while window and now - window[0] >= RATE_WINDOW:
            window.popleft()
        if len(window) >= self.rate_limit:
            raise FxiaokeError(FREQUENCY_LIMIT, f"接口调用频率超限: 每个接口 {RATE_WINDOW:g} 秒内最多 {self.rate_limit} 次")
        if self.daily_quota is not None:
            if self.daily_quota <= 0:
                raise FxiaokeError(QUOTA_EXCEEDED, "今日接口调用次数已用完")
            self.daily_quota -= 1
        window.append(now)

    def _operator(self, body: dict[str, Any]) -> str:
        user = body.get("currentOpenUserId")
        if not user:
            raise field_error("currentOpenUserId", "不能为空")
        if not any(e["openUserId"] == user and not e["isStop"] for e in self.employees):
            raise field_error("currentOpenUserId", f"员工 {user} 不存在或已停用")
        return user

    def _employee(self, value: Any, field: str) -> list[str]:
        if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], str):
            raise field_error(field, "必须是只含一个员工 openUserId 的数组")
        if not any(e["openUserId"] == value[0] and not e["isStop"] for e in self.employees):
            raise field_error(field, f"员工 {value[0]} 不存在或已停用")
        return value

    @staticmethod
    def _data(body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data")
        if not isinstance(data, dict):
            raise field_error("data", "不能为空")
        return data

    @staticmethod
    def _object(api_name: Any) -> dict[str, FieldType]:
        if api_name not in OBJECTS:
            raise field_error("dataObjectApiName", f"对象 {api_name!r} 不存在")
        return OBJECTS[api_name]

    def _record(self, api_name: str, data_id: Any) -> dict[str, Any]:
        record = self.records[api_name].get(data_id) if isinstance(data_id, str) else None
        if record is None:
            raise FxiaokeError(NOT_FOUND, f"数据不存在: {api_name} {data_id}")
        return record

    # ------------------------------------------------------------------ validation

    def _check_fields(self, api_name: str, values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        schema = self._object(api_name)
        clean: dict[str, Any] = {}
        for name, value in values.items():
            if name in ("dataObjectApiName", "_id"):
                continue
            spec = schema.get(name)
            if spec is None:
                raise field_error(name, f"在对象 {api_name} 中不存在")
            if value is None or value == "":
                if spec.required:
                    raise field_error(name, "不能为空")
                clean[name] = None
                continue
            clean[name] = self._check_value(name, spec, value)
        if creating:
            for name, spec in schema.items():
                if spec.required and clean.get(name) in (None, ""):
                    raise field_error(name, "不能为空")
        return clean

    def _check_value(self, name: str, spec: FieldType, value: Any) -> Any:
        kind = spec.type
        if kind == "employee":
            return self._employee(value, name)
        if kind in ("text", "email", "phone", "select", "reference"):
            if not isinstance(value, str):
                raise field_error(name, "必须是字符串")
            if kind == "email" and not _EMAIL.match(value):
                raise field_error(name, "不是合法的邮箱")
            if kind == "phone" and not _PHONE.match(value):
                raise field_error(name, "不是合法的电话号码")
            if kind == "select" and value not in spec.options:
                raise field_error(name, f"选项值 {value!r} 不存在")
            if kind == "reference" and value not in self.records[spec.target or ""]:
                raise field_error(name, f"关联的 {spec.target} {value} 不存在")
            return value
        if kind == "number":
            if not isinstance(value, str) or not _NUMBER.match(value):
                raise field_error(name, "必须是数字字符串")
            return value
        if kind == "date":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise field_error(name, "必须是毫秒时间戳")
            return value
        if kind == "references":
            if not isinstance(value, list) or not value:
                raise field_error(name, "必须是非空数组")
            for ref in value:
                if not isinstance(ref, dict) or ref.get("describe_api_name") not in OBJECTS or not isinstance(ref.get("id"), str):
                    raise field_error(name, "每项必须是 {describe_api_name, id}")
                if ref["id"] not in self.records[ref["describe_api_name"]]:
                    raise field_error(name, f"关联的 {ref['describe_api_name']} {ref['id']} 不存在")
            return value
        raise AssertionError(kind)

    def _insert(self, api_name: str, values: dict[str, Any], user: str) -> dict[str, Any]:
        now = int(self.now() * 1000)
        record = {**values, "_id": f"5f{next(self._ids):022d}", "object_describe_api_name": api_name,
                  "create_time": now, "last_modified_time": now, "created_by": [user], "last_modified_by": [user],
                  "life_status": "normal"}
        self.records[api_name][record["_id"]] = record
        return record

    # ------------------------------------------------------------------ endpoints

    def get_token(self, body: dict[str, Any], _: str) -> dict[str, Any]:
        app = self.apps.get(body.get("appId"))  # type: ignore[arg-type]
        if app is None or body.get("appSecret") != app[0] or body.get("permanentCode") != app[1]:
            raise FxiaokeError(BAD_APP_CREDENTIALS, "appId、appSecret 或 permanentCode 不正确")
        corp, now = app[2], self.now()
        for token, (owner, issued) in self.tokens.items():
            if owner == corp and now - issued < TOKEN_REUSE:
                return {"corpAccessToken": token, "corpId": corp, "expiresIn": int(TOKEN_TTL - (now - issued))}
        token = secrets.token_hex(16)
        self.tokens[token] = (corp, now)
        return {"corpAccessToken": token, "corpId": corp, "expiresIn": TOKEN_TTL}

    def user_list(self, body: dict[str, Any], _: str) -> dict[str, Any]:
        department = body.get("departmentId")
        if not isinstance(department, int) or isinstance(department, bool):
            raise field_error("departmentId", "必须是整数")
        return {"userList": [dict(e) for e in self.employees]}

    def create(self, body: dict[str, Any], _: str) -> dict[str, Any]:
        values = self._data(body).get("object_data")
        if not isinstance(values, dict):
            raise field_error("object_data", "不能为空")
        api_name = values.get("dataObjectApiName")
        self._object(api_name)
        if "_id" in values:
            raise field_error("_id", "新建时不能指定")
        record = self._insert(api_name, self._check_fields(api_name, values, creating=True), body["currentOpenUserId"])
        return {"dataId": record["_id"]}

    def update(self, body: dict[str, Any], _: str) -> dict[str, Any]:
        values = self._data(body).get("object_data")
        if not isinstance(values, dict):
            raise field_error("object_data", "不能为空")
        api_name = values.get("dataObjectApiName")
        self._object(api_name)
        record = self._record(api_name, values.get("_id"))
        if "owner" in values:
            raise field_error("owner", "不能通过编辑接口修改, 请使用 changeOwner")
        record.update(self._check_fields(api_name, values, creating=False))
        record["last_modified_time"] = int(self.now() * 1000)
        record["last_modified_by"] = [body["currentOpenUserId"]]
        return {"dataId": record["_id"]}

    def get(self, body: dict[str, Any], _: str) -> dict[str, Any]:
        data = self._data(body)
        api_name = data.get("dataObjectApiName")
        self._object(api_name)
        return {"data": dict(self._record(api_name, data.get("objectDataId")))}

    def change_owner(self, body: dict[str, Any], _: str) -> dict[str, Any]:
        data = self._data(body)
        api_name = data.get("dataObjectApiName")
        self._object(api_name)
        items = data.get("Data")
        if not isinstance(items, list) or not items:
            raise field_error("Data", "必须是非空数组")
        checked = []
        for item in items:
            if not isinstance(item, dict):
                raise field_error("Data", "每项必须是 {objectDataId, ownerId}")
            checked.append((self._record(api_name, item.get("objectDataId")), self._employee(item.get("ownerId"), "ownerId")))
        for record, owner in checked:
            record["owner"] = list(owner)
            record["last_modified_time"] = int(self.now() * 1000)
        return {}

    def query(self, body: dict[str, Any], _: str) -> dict[str, Any]:
        data = self._data(body)
        api_name = data.get("dataObjectApiName")
        schema = self._object(api_name)
        info = data.get("search_query_info")
        if not isinstance(info, dict):
            raise field_error("search_query_info", "不能为空")
        limit, offset = info.get("limit"), info.get("offset", 0)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise field_error("limit", f"必须是 1 到 {MAX_LIMIT} 的整数")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or offset > MAX_OFFSET or offset % limit:
            raise field_error("offset", f"必须是 limit 的整数倍且不超过 {MAX_OFFSET}")
        rows = list(self.records[api_name].values())
        for f in info.get("filters") or []:
            rows = [r for r in rows if self._matches(r, f, schema)]
        for order in reversed(info.get("orders") or [{"fieldName": "create_time", "isAsc": False}]):
            name = order.get("fieldName") if isinstance(order, dict) else None
            if name not in schema and name not in SYSTEM_FIELDS:
                raise field_error("orders", f"排序字段 {name!r} 不存在")
            ascending = order.get("isAsc") in (True, "true")
            rows.sort(key=lambda r: _sort_key(r.get(name)), reverse=not ascending)
        projection = info.get("fieldProjection")
        page = rows[offset:offset + limit]
        if projection:
            page = [{k: v for k, v in r.items() if k in projection or k == "_id"} for r in page]
        return {"data": {"dataList": [dict(r) for r in page], "total": len(rows), "offset": offset, "limit": limit}}

    @staticmethod
    def _matches(record: dict[str, Any], f: Any, schema: dict[str, FieldType]) -> bool:
        if not isinstance(f, dict):
            raise field_error("filters", "每项必须是 {field_name, operator, field_values}")
        name, op, values = f.get("field_name"), f.get("operator"), f.get("field_values")
        if name not in schema and name not in SYSTEM_FIELDS:
            raise field_error("filters", f"过滤字段 {name!r} 不存在")
        if op not in OPERATORS:
            raise field_error("filters", f"操作符 {op!r} 不支持")
        if not isinstance(values, list):
            raise field_error("filters", "field_values 必须是数组")
        actual = record.get(name)
        if isinstance(actual, list):  # employee fields: compare their ids
            actual = actual[0] if actual else None
        if op in ("IS", "ISN"):
            return (actual in (None, "")) == (op == "IS")
        if actual is None or not values:
            return op in ("N", "NIN", "NLIKE")
        text = str(actual)
        if op == "EQ":
            return text == str(values[0])
        if op == "N":
            return text != str(values[0])
        if op == "IN":
            return text in {str(v) for v in values}
        if op == "NIN":
            return text not in {str(v) for v in values}
        if op == "LIKE":
            return str(values[0]) in text
        if op == "NLIKE":
            return str(values[0]) not in text

        def num(v: Any) -> Any:
            try:
                return float(v)
            except (TypeError, ValueError):
                return str(v)

        a = num(actual)
        if op == "BETWEEN":
            return len(values) == 2 and num(values[0]) <= a <= num(values[1])
        b = num(values[0])
        if type(a) is not type(b):
            return False
        return {"GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b}[op]


def _sort_key(value: Any) -> tuple[int, Any]:
    """Empty values first, then numbers by value, then text (employee lists by their id)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return (0, 0)
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def create_app() -> Starlette:
    """A fresh fake (the connector's ``sandbox`` factory)."""
    return FakeFxiaoke().app
