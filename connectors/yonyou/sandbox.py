"""A contract-faithful fake of the Yonyou YonBIP open platform (the ``yonyou`` connector's sandbox).

Contract (platform-apis.md §5), token host and gateway on one address:

- ``GET /open-auth/selfAppAuth/base/v1/getAccessToken?appKey&timestamp&signature`` →
  ``{"code": "00000", "data": {"access_token", "expire": 7200}}``; an unknown appKey answers
  ``10018``; a missing or stale (over 10 minutes) timestamp, or a wrong signature, answers the
  sandbox's ``10019`` (the real code is not documented).
- ``/yonbip/...`` needs ``?access_token=``: missing → ``310001``, unknown or expired (after
  `token_ttl` on the fake clock) → ``310036`` "非法token", all with HTTP 200; an unknown path
  → HTTP 404 ``310404``. Each API allows `quota_per_minute` calls a minute, then ``310046``.
- ``POST /yonbip/sd/voucherorder/list`` ``{pageIndex, pageSize (1-500), isSum, code?,
  open_vouchdate_begin/end?}`` → ``data{pageIndex, pageSize, recordCount, pageCount, recordList}``,
  one flat row per order line when ``isSum`` is false, one per order when true;
  ``GET /yonbip/sd/voucherorder/detail?id=``; ``POST /yonbip/sd/voucherorder/singleSave``.
- ``POST /yonbip/digitalModel/merchant/save`` ``{"data": {"_status": "Insert"|"Update", code,
  name, createOrg, customerClass, id (Update)}}``; ``POST /yonbip/digitalModel/merchant/detail``.
- ``POST /yonbip/digitalModel/product/list`` ``{pageIndex, pageSize, code?, name?}``.

Success is ``{"code": "200", "message": "操作成功", "data": ...}``; a rejected field is
``{"code": "999", "message": "<field>: ..."}``.

Seed data: organisation ``ORG001``, customer classes ``01``/``02``, customers ``C0001``-``C0002``,
materials ``M0001``-``M0005``, sales orders ``SO20261101000001``-``3`` (2 lines each).
Test hooks: :meth:`advance` (the clock: tokens expire), :meth:`revoke_tokens`,
:meth:`seed_sales_orders`, `quota_per_minute`, counters `tokens_issued` and `calls`.
"""
from __future__ import annotations

import itertools
import json
import math
import secrets
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.yonyou.signing import token_signature

APP_KEY = "3f9a1c2e5b7d4e6f8a0b1c2d3e4f5a6b"
APP_SECRET = "sandbox-yonyou-secret"
ORG = "ORG001"
CUSTOMER_CLASSES = ("01", "02")
MAX_PAGE_SIZE = 500
TIMESTAMP_WINDOW = 600.0
_TZ = timezone(timedelta(hours=8))


class YyError(Exception):
    """A business error: the platform's code and message."""

    def __init__(self, code: str, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _page_args(body: dict[str, Any]) -> tuple[int, int]:
    values = []
    for name in ("pageIndex", "pageSize"):
        raw = body.get(name)
        if raw is None:
            raise YyError("999", f"{name}: 参数不能为空")
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise YyError("999", f"{name}: 参数应为整数") from None
        if isinstance(raw, bool) or value < 1:
            raise YyError("999", f"{name}: 参数应为正整数")
        values.append(value)
    if values[1] > MAX_PAGE_SIZE:
        raise YyError("999", f"pageSize: 每页最多 {MAX_PAGE_SIZE} 条")
    return values[0], values[1]


def _page(records: list[dict[str, Any]], index: int, size: int) -> dict[str, Any]:
    return {"pageIndex": index, "pageSize": size, "recordCount": len(records),
            "pageCount": math.ceil(len(records) / size), "recordList": records[(index - 1) * size:index * size]}


def _ok(data: Any) -> JSONResponse:
    return JSONResponse({"code": "200", "message": "操作成功", "data": data})


class FakeYonyou:
    """The fake's state and its ASGI `app`."""

    def __init__(self, *, seed: bool = True, token_ttl: float = 7200.0, quota_per_minute: int = 60) -> None:
        self.offset = 0.0
        self.token_ttl = token_ttl
        self.quota_per_minute = quota_per_minute
        self.tokens: dict[str, float] = {}  # token -> expires at (fake clock)
        self.tokens_issued = 0
        self.calls: Counter[str] = Counter()
        self._windows: dict[str, list[float]] = defaultdict(list)
        self._ids = itertools.count(1_000_001)
        self.customers: dict[str, dict[str, Any]] = {}
        self.materials: list[dict[str, Any]] = []
        self.orders: dict[str, dict[str, Any]] = {}
        if seed:
            self._seed()
        self.app = Starlette(routes=[
            Route("/open-auth/selfAppAuth/base/v1/getAccessToken", self.get_access_token, methods=["GET"]),
            Route("/yonbip/{path:path}", self.business, methods=["GET", "POST"]),
        ])

    # ------------------------------------------------------------------ test hooks

    def now(self) -> float:
        """The platform clock (wall clock plus what :meth:`advance` added)."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward: tokens past their `expire` stop working, quotas refill."""
        self.offset += seconds

    def revoke_tokens(self) -> None:
        """Every token issued so far becomes invalid (310036)."""
        self.tokens.clear()

    def seed_sales_orders(self, count: int, lines: int = 2) -> list[str]:
        """Add `count` sales orders of `lines` lines for customer C0001; returns their codes."""
        codes = []
        for _ in range(count):
            order = self._save_order({"salesOrgId": ORG, "transactionTypeId": "SO01", "agentId": "C0001",
                                      "vouchdate": "2026-11-01 10:00:00",
                                      "orderDetails": [{"productId": f"M000{i % 5 + 1}", "qty": i + 1, "oriTaxUnitPrice": 100}
                                                       for i in range(lines)]})
            codes.append(order["code"])
        return codes

    def _seed(self) -> None:
        for code, name in (("C0001", "北京华夏建材有限公司"), ("C0002", "广州南方物流有限公司")):
            self._save_customer({"_status": "Insert", "code": code, "name": {"zh_CN": name}, "createOrg": ORG, "customerClass": "01"})
        for i, name in enumerate(("螺纹钢 HRB400", "水泥 P.O 42.5", "石膏板", "铝型材", "保温棉"), start=1):
            self.materials.append({"id": str(next(self._ids)), "code": f"M000{i}", "name": {"zh_CN": name}, "unit_Code": "PCS",
                                   "manageClass_Name": "建材", "pubts": "2026-10-01 08:00:00"})
        self.seed_sales_orders(3)

    # ------------------------------------------------------------------ token

    async def get_access_token(self, request: Request) -> JSONResponse:
        """``getAccessToken``: check app key, timestamp and signature; issue a token."""
        self.calls["getAccessToken"] += 1
        q = dict(request.query_params)
        if q.get("appKey") != APP_KEY:
            return JSONResponse({"code": "10018", "message": "应用不存在或appKey已停用"})
        try:
            stamp = int(q.get("timestamp", "")) / 1000
        except ValueError:
            return JSONResponse({"code": "10019", "message": "timestamp 参数缺失或格式不正确"})
        if abs(time.time() - stamp) > TIMESTAMP_WINDOW:
            return JSONResponse({"code": "10019", "message": "timestamp 已过期"})
        if q.get("signature") != token_signature(q, APP_SECRET):
            return JSONResponse({"code": "10019", "message": "签名校验失败"})
        token = secrets.token_hex(16)
        self.tokens[token] = self.now() + self.token_ttl
        self.tokens_issued += 1
        return JSONResponse({"code": "00000", "message": "成功！", "data": {"access_token": token, "expire": int(self.token_ttl)}})

    # ------------------------------------------------------------------ business APIs

    async def business(self, request: Request) -> JSONResponse:
        """Every ``/yonbip/`` API: token, route, quota, then the handler's data or error."""
        path = request.path_params["path"]
        self.calls[path] += 1
        try:
            self._check_token(request.query_params.get("access_token"))
            handler = self._routes().get((request.method, path))
            if handler is None:
                raise YyError("310404", f"API不存在: /yonbip/{path}", status=404)
            self._check_quota(path)
            if request.method == "GET":
                return _ok(handler(dict(request.query_params)))
            try:
                body = json.loads(await request.body() or b"null")
            except ValueError:
                raise YyError("999", "请求体不是有效的 JSON") from None
            if not isinstance(body, dict):
                raise YyError("999", "请求体应为 JSON 对象")
            return _ok(handler(body))
        except YyError as error:
            return JSONResponse({"code": error.code, "message": error.message}, status_code=error.status)

    def _routes(self) -> dict[tuple[str, str], Any]:
        return {("POST", "sd/voucherorder/list"): self._order_list,
                ("GET", "sd/voucherorder/detail"): self._order_detail,
                ("POST", "sd/voucherorder/singleSave"): lambda body: self._save_order(self._data(body)),
                ("POST", "digitalModel/merchant/save"): lambda body: self._save_customer(self._data(body)),
                ("POST", "digitalModel/merchant/detail"): self._customer_detail,
                ("POST", "digitalModel/product/list"): self._product_list}

    def _check_token(self, token: str | None) -> None:
        if not token:
            raise YyError("310001", "access_token 不能为空")
        expires = self.tokens.get(token)
        if expires is None or expires <= self.now():
            self.tokens.pop(token, None)
            raise YyError("310036", "非法token")

    def _check_quota(self, path: str) -> None:
        now = self.now()
        window = [t for t in self._windows[path] if now - t < 60]
        if len(window) >= self.quota_per_minute:
            self._windows[path] = window
            raise YyError("310046", "接口调用超过每分钟限额，请稍后重试")
        window.append(now)
        self._windows[path] = window

    @staticmethod
    def _data(body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data")
        if not isinstance(data, dict):
            raise YyError("999", "data: 参数不能为空且应为对象")
        return data

    # -- sales orders

    def _save_order(self, data: dict[str, Any]) -> dict[str, Any]:
        for name in ("salesOrgId", "transactionTypeId", "agentId", "vouchdate", "orderDetails"):
            if data.get(name) in (None, "", []):
                raise YyError("999", f"{name}: 必填项不能为空")
        if data["salesOrgId"] != ORG:
            raise YyError("999", f"salesOrgId: 销售组织“{data['salesOrgId']}”不存在")
        if data["agentId"] not in self.customers:
            raise YyError("999", f"agentId: 客户“{data['agentId']}”不存在")
        lines = data["orderDetails"]
        if not isinstance(lines, list):
            raise YyError("999", "orderDetails: 应为数组")
        known = {m["code"] for m in self.materials}
        for i, line in enumerate(lines):
            if not isinstance(line, dict) or line.get("productId") not in known:
                raise YyError("999", f"orderDetails[{i}].productId: 物料不存在")
            if isinstance(line.get("qty"), bool) or not isinstance(line.get("qty"), (int, float)) or line["qty"] <= 0:
                raise YyError("999", f"orderDetails[{i}].qty: 数量应为正数")
        order_id = str(next(self._ids))
        code = f"SO20261101{len(self.orders) + 1:06d}"
        customer = self.customers[data["agentId"]]
        order = {"id": order_id, "code": code, "vouchdate": data["vouchdate"], "salesOrgId": ORG, "agentId": customer["id"],
                 "agentId_name": customer["name"]["zh_CN"], "transactionTypeId": data["transactionTypeId"],
                 "nextStatusName": "开立", "pubts": datetime.fromtimestamp(self.now(), _TZ).strftime("%Y-%m-%d %H:%M:%S"),
                 "orderDetails": [{"id": f"{order_id}{i:03d}", "productId": line["productId"], "qty": line["qty"],
                                   "oriTaxUnitPrice": line.get("oriTaxUnitPrice", 0)} for i, line in enumerate(lines, start=1)]}
        self.orders[order_id] = order
        return order

    def _order_list(self, body: dict[str, Any]) -> dict[str, Any]:
        index, size = _page_args(body)
        is_sum = body.get("isSum", False)
        if not isinstance(is_sum, bool):
            raise YyError("999", "isSum: 应为布尔值")
        orders = sorted(self.orders.values(), key=lambda o: o["code"])
        if body.get("code"):
            orders = [o for o in orders if o["code"] == body["code"]]
        begin, end = body.get("open_vouchdate_begin"), body.get("open_vouchdate_end")
        orders = [o for o in orders if (not begin or o["vouchdate"] >= begin) and (not end or o["vouchdate"] <= end)]
        header = ("id", "code", "vouchdate", "agentId", "agentId_name", "salesOrgId", "nextStatusName", "pubts")
        if is_sum:
            rows = [{k: o[k] for k in header} for o in orders]
        else:
            rows = [{**{k: o[k] for k in header}, "orderDetailId": d["id"], "skuCode": d["productId"], "qty": d["qty"],
                     "oriTaxUnitPrice": d["oriTaxUnitPrice"]} for o in orders for d in o["orderDetails"]]
        return _page(rows, index, size)

    def _order_detail(self, query: dict[str, Any]) -> dict[str, Any]:
        order = self.orders.get(str(query.get("id", "")))
        if order is None:
            raise YyError("999", f"id: 销售订单“{query.get('id')}”不存在")
        return order

    # -- customers

    def _save_customer(self, data: dict[str, Any]) -> dict[str, Any]:
        status = data.get("_status")
        if status not in ("Insert", "Update"):
            raise YyError("999", "_status: 应为 Insert 或 Update")
        existing = None
        if status == "Update":
            existing = next((c for c in self.customers.values() if c["id"] == str(data.get("id"))), None)
            if existing is None:
                raise YyError("999", f"id: 客户档案“{data.get('id')}”不存在")
        merged = {**(existing or {}), **{k: v for k, v in data.items() if k != "_status"}}
        for name in ("code", "name", "createOrg", "customerClass"):
            if merged.get(name) in (None, "", {}):
                raise YyError("999", f"{name}: 必填项不能为空")
        if isinstance(merged["name"], str):
            merged["name"] = {"zh_CN": merged["name"]}
        if not isinstance(merged["name"], dict) or not merged["name"].get("zh_CN"):
            raise YyError("999", "name: 应为多语对象 {\"zh_CN\": \"...\"}")
        if merged["createOrg"] != ORG:
            raise YyError("999", f"createOrg: 管理组织“{merged['createOrg']}”不存在")
        if merged["customerClass"] not in CUSTOMER_CLASSES:
            raise YyError("999", f"customerClass: 客户分类“{merged['customerClass']}”不存在")
        clash = self.customers.get(merged["code"])
        if clash is not None and clash is not existing:
            raise YyError("999", f"code: 客户编码“{merged['code']}”已存在")
        if existing is not None:
            self.customers.pop(existing["code"])
        merged.setdefault("id", str(next(self._ids)))
        merged["pubts"] = datetime.fromtimestamp(self.now(), _TZ).strftime("%Y-%m-%d %H:%M:%S")
        self.customers[merged["code"]] = merged
        return merged

    def _customer_detail(self, body: dict[str, Any]) -> dict[str, Any]:
        found = next((c for c in self.customers.values() if c["id"] == str(body.get("id")) or c["code"] == body.get("code")), None)
        if found is None:
            raise YyError("999", "id: 客户档案不存在")
        return found

    # -- materials

    def _product_list(self, body: dict[str, Any]) -> dict[str, Any]:
        index, size = _page_args(body)
        items = self.materials
        if body.get("code"):
            items = [m for m in items if m["code"] == body["code"]]
        if body.get("name"):
            items = [m for m in items if str(body["name"]) in m["name"]["zh_CN"]]
        return _page(items, index, size)


def create_app() -> Any:
    """A fresh sandbox (the connector's ``sandbox`` factory)."""
    return FakeYonyou().app
