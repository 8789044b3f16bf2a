"""The ``yonyou`` actions: sales orders, customers and materials."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from connectors.sdk import ActionContext, Budget, PagePaginator, PageRequest
from connectors.sdk.action import ui
from connectors.sdk.client import ConnectorClient
from connectors.yonyou.connector import connector
from connectors.yonyou.sandbox import APP_KEY, APP_SECRET

#: The sandbox's credentials, for the examples (the contract kit adds base_url).
SANDBOX = {"app_key": APP_KEY, "app_secret": APP_SECRET}
READ_RETRY = ({"errors": ["RateLimited", "Transient"], "max_attempts": 4, "interval": 2, "backoff_rate": 2, "max_delay": 30},)
MAX_PAGE_SIZE = 500

LIST_OUTPUT = {"type": "object", "required": ["records", "count", "pages"], "properties": {
    "records": {"type": "array", "items": {"type": "object"}}, "count": {"type": "integer"}, "pages": {"type": "integer"}}}


async def list_all(client: ConnectorClient, path: str, body: dict[str, Any], page_size: int, all_pages: bool,
                   max_items: int) -> dict[str, Any]:
    """POST a ``pageIndex``/``pageSize`` list API; every page (or only the first) as ``records``,
    with the platform's ``recordCount`` as ``count`` and the number of requests as ``pages``."""
    seen = {"pages": 0, "count": 0}

    async def fetch(request: PageRequest) -> Any:
        """One page; remembers the record count the platform reports."""
        answer = await client.post(path, json={**body, **request.params})
        seen["pages"] += 1
        seen["count"] = int(answer["data"]["recordCount"])
        return answer

    pager = PagePaginator(page_param="pageIndex", size_param="pageSize", size=page_size, items="data.recordList",
                          total_pages=lambda page: -(-int(page["data"]["recordCount"]) // page_size))
    if all_pages:
        records = await pager.collect(fetch, max_items=max_items, max_pages=None)
    else:
        records = []
        async for page in pager.pages(fetch, max_pages=None):
            records = page.items
            break
    return {"records": records, "count": seen["count"], "pages": seen["pages"]}


# ---------------------------------------------------------------------------------------- sales orders

class SalesOrderListInput(BaseModel):
    """Arguments of yonyou.sales_order_list."""

    model_config = {"extra": "forbid"}

    code: str | None = Field(default=None, title="Order code")
    vouchdate_begin: str | None = Field(default=None, title="Order date from", description="yyyy-MM-dd HH:mm:ss",
                                        json_schema_extra=ui(placeholder="2026-11-01 00:00:00"))
    vouchdate_end: str | None = Field(default=None, title="Order date to", description="yyyy-MM-dd HH:mm:ss")
    is_sum: bool = Field(default=False, title="One row per order", description="false: one flat row per order line.")
    simple_vos: list[dict[str, Any]] = Field(default_factory=list, title="Conditions (simpleVOs)",
                                             description='[{"field", "op", "value1", "value2", "logicOp"}]')
    page_size: int = Field(default=100, ge=1, le=MAX_PAGE_SIZE, title="Page size")
    all_pages: bool = Field(default=True, title="Fetch every page")
    max_items: int = Field(default=50_000, ge=1, title="At most this many rows (more fail rather than truncate)")


@connector.action(
    "sales_order_list", input=SalesOrderListInput, title={"en": "List sales orders", "zh": "销售订单列表查询"},
    output_schema=LIST_OUTPUT, default_retry=READ_RETRY, budget=Budget(60, 60.0, "sales_order_list"),
    examples=[{"title": "Every order line, two per page", "connection": SANDBOX, "input": {"page_size": 2},
               "expect": {"count": 6, "pages": 3}}])
async def sales_order_list(ctx: ActionContext, inp: SalesOrderListInput) -> dict[str, Any]:
    """Sales orders (``/yonbip/sd/voucherorder/list``), every page by default."""
    body: dict[str, Any] = {"isSum": inp.is_sum}
    if inp.code:
        body["code"] = inp.code
    if inp.vouchdate_begin:
        body["open_vouchdate_begin"] = inp.vouchdate_begin
    if inp.vouchdate_end:
        body["open_vouchdate_end"] = inp.vouchdate_end
    if inp.simple_vos:
        body["simpleVOs"] = inp.simple_vos
    return await list_all(ctx.client, "/yonbip/sd/voucherorder/list", body, inp.page_size, inp.all_pages, inp.max_items)


class SalesOrderDetailInput(BaseModel):
    """Arguments of yonyou.sales_order_detail."""

    model_config = {"extra": "forbid"}

    id: str = Field(min_length=1, title="Order id")


@connector.action(
    "sales_order_detail", input=SalesOrderDetailInput, title={"en": "Get a sales order", "zh": "销售订单详情查询"},
    output_schema={"type": "object", "required": ["id", "code"]}, default_retry=READ_RETRY,
    budget=Budget(60, 60.0, "sales_order_detail"),
    examples=[{"title": "The first seeded order", "connection": SANDBOX, "input": {"id": "1000008"},
               "expect": {"code": "SO20261101000001"}}])
async def sales_order_detail(ctx: ActionContext, inp: SalesOrderDetailInput) -> dict[str, Any]:
    """One sales order with its lines (``orderDetails``)."""
    return (await ctx.client.get("/yonbip/sd/voucherorder/detail", params={"id": inp.id}))["data"]


# ---------------------------------------------------------------------------------------- customers

class CustomerSaveInput(BaseModel):
    """Arguments of yonyou.customer_save."""

    model_config = {"extra": "forbid"}

    status: Literal["Insert", "Update"] = Field(default="Insert", title="Insert or update")
    id: str | None = Field(default=None, title="Customer id", description="Required to update.")
    code: str = Field(min_length=1, title="Customer code")
    name: str = Field(min_length=1, title="Customer name")
    create_org: str = Field(min_length=1, title="Managing organisation", json_schema_extra=ui(title_zh="管理组织"))
    customer_class: str = Field(min_length=1, title="Customer class", json_schema_extra=ui(title_zh="客户分类"))
    extra: dict[str, Any] = Field(default_factory=dict, title="More fields", description="Other merchant fields as the API names them.")


@connector.action(
    "customer_save", input=CustomerSaveInput, title={"en": "Save a customer", "zh": "客户档案保存"},
    output_schema={"type": "object", "required": ["id", "code"]},
    examples=[{"title": "A new customer", "connection": SANDBOX,
               "input": {"code": "C0100", "name": "成都天府商贸有限公司", "create_org": "ORG001", "customer_class": "02"},
               "expect": {"code": "C0100", "name": {"zh_CN": "成都天府商贸有限公司"}}}])
async def customer_save(ctx: ActionContext, inp: CustomerSaveInput) -> dict[str, Any]:
    """Create or update a customer (``/yonbip/digitalModel/merchant/save``); returns the saved record."""
    data = {**inp.extra, "_status": inp.status, "code": inp.code, "name": {"zh_CN": inp.name},
            "createOrg": inp.create_org, "customerClass": inp.customer_class}
    if inp.id is not None:
        data["id"] = inp.id
    return (await ctx.client.post("/yonbip/digitalModel/merchant/save", json={"data": data}))["data"]


# ---------------------------------------------------------------------------------------- materials

class MaterialListInput(BaseModel):
    """Arguments of yonyou.material_list."""

    model_config = {"extra": "forbid"}

    code: str | None = Field(default=None, title="Material code")
    name: str | None = Field(default=None, title="Name contains")
    page_size: int = Field(default=100, ge=1, le=MAX_PAGE_SIZE, title="Page size")
    all_pages: bool = Field(default=True, title="Fetch every page")
    max_items: int = Field(default=50_000, ge=1, title="At most this many materials")


@connector.action(
    "material_list", input=MaterialListInput, title={"en": "List materials", "zh": "物料档案列表查询"},
    output_schema=LIST_OUTPUT, default_retry=READ_RETRY,
    examples=[{"title": "Materials by code", "connection": SANDBOX, "input": {"code": "M0002"},
               "expect": {"count": 1, "records": [{"code": "M0002"}]}}])
async def material_list(ctx: ActionContext, inp: MaterialListInput) -> dict[str, Any]:
    """Materials (``/yonbip/digitalModel/product/list``), every page by default."""
    body = {k: v for k, v in (("code", inp.code), ("name", inp.name)) if v}
    return await list_all(ctx.client, "/yonbip/digitalModel/product/list", body, inp.page_size, inp.all_pages, inp.max_items)
