"""Customers (客户联系 external contacts): list, read, page through, annotate."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from connectors.sdk import ActionContext, CursorPaginator
from connectors.wecom.base import MEMBER_OPTIONS, connector
from connectors.wecom.fake_state import SANDBOX_CONNECTION

#: batch/get_by_user serves at most 100 customers a page.
PAGE_LIMIT = 100


class MemberInput(BaseModel):
    model_config = {"extra": "forbid"}
    userid: str = Field(min_length=1, title="Member userid", json_schema_extra=MEMBER_OPTIONS)


@connector.action(
    "list_customers", input=MemberInput, title={"en": "List a member's customers", "zh": "获取客户列表"},
    output_schema={"type": "object", "properties": {"external_userids": {"type": "array", "items": {"type": "string"}}},
                   "required": ["external_userids"]},
    examples=[{"title": "Zhang San's customers", "connection": SANDBOX_CONNECTION, "input": {"userid": "zhangsan"},
               "expect": {"external_userids": ["wmCustomer001", "wmCustomer002"]}}],
)
async def list_customers(ctx: ActionContext, inp: MemberInput) -> dict[str, Any]:
    """The external_userids of a member's customers."""
    answer = await ctx.client.get("/cgi-bin/externalcontact/list", params={"userid": inp.userid})
    return {"external_userids": answer.get("external_userid") or []}


class CustomerInput(BaseModel):
    model_config = {"extra": "forbid"}
    external_userid: str = Field(min_length=1, title="Customer external_userid")


@connector.action(
    "get_customer", input=CustomerInput, title={"en": "Get customer", "zh": "获取客户详情"},
    output_schema={"type": "object", "properties": {"external_contact": {"type": "object"}, "follow_user": {"type": "array"}},
                   "required": ["external_contact", "follow_user"]},
    examples=[{"title": "Li Lei", "connection": SANDBOX_CONNECTION, "input": {"external_userid": "wmCustomer001"},
               "expect": {"external_contact": {"name": "李雷"}, "follow_user": [{"userid": "zhangsan", "state": "expo"}]}}],
)
async def get_customer(ctx: ActionContext, inp: CustomerInput) -> dict[str, Any]:
    """A customer and the members following them (remark, tags, the contact-way `state`)."""
    answer = await ctx.client.get("/cgi-bin/externalcontact/get", params={"external_userid": inp.external_userid})
    return {"external_contact": answer["external_contact"], "follow_user": answer.get("follow_user") or []}


class BatchInput(BaseModel):
    model_config = {"extra": "forbid"}
    userids: list[str] = Field(min_length=1, max_length=100, title="Members", json_schema_extra=MEMBER_OPTIONS)
    page_size: int = Field(default=PAGE_LIMIT, ge=1, le=PAGE_LIMIT, title="Page size")
    max_items: int = Field(default=10_000, ge=1, le=100_000, title="At most",
                           description="Fail rather than return a truncated list beyond this many.")


@connector.action(
    "list_customers_detail", input=BatchInput, title={"en": "Get customers of members (all pages)", "zh": "批量获取客户详情"},
    output_schema={"type": "object", "properties": {"customers": {"type": "array"}, "count": {"type": "integer"}},
                   "required": ["customers", "count"]},
    examples=[{"title": "Sales team, two per page", "connection": SANDBOX_CONNECTION,
               "input": {"userids": ["zhangsan", "lisi"], "page_size": 2}, "expect": {"count": 3}}],
)
async def list_customers_detail(ctx: ActionContext, inp: BatchInput) -> dict[str, Any]:
    """Every customer (with the member's follow info) of the members, following next_cursor."""
    pager = CursorPaginator(cursor_param="cursor", next_cursor="next_cursor", items="external_contact_list",
                            page_size_param="limit", page_size=inp.page_size)

    async def fetch(page: Any) -> Any:
        return await ctx.client.post("/cgi-bin/externalcontact/batch/get_by_user",
                                     json={"userid_list": inp.userids, **page.params})

    customers = await pager.collect(fetch, max_items=inp.max_items)
    return {"customers": customers, "count": len(customers)}


class RemarkInput(BaseModel):
    model_config = {"extra": "forbid"}
    userid: str = Field(min_length=1, title="Member userid", json_schema_extra=MEMBER_OPTIONS)
    external_userid: str = Field(min_length=1, title="Customer external_userid")
    remark: str | None = Field(default=None, max_length=20)
    description: str | None = Field(default=None, max_length=150)
    remark_company: str | None = Field(default=None, max_length=20)
    remark_mobiles: list[str] | None = Field(default=None, max_length=5)

    @model_validator(mode="after")
    def _something(self) -> "RemarkInput":
        if all(v is None for v in (self.remark, self.description, self.remark_company, self.remark_mobiles)):
            raise ValueError("give remark, description, remark_company or remark_mobiles")
        return self


@connector.action(
    "update_customer_remark", input=RemarkInput, title={"en": "Update customer remark", "zh": "修改客户备注信息"},
    output_schema={"type": "object", "properties": {"updated": {"type": "boolean"}}, "required": ["updated"]},
    examples=[{"title": "Remark and description", "connection": SANDBOX_CONNECTION,
               "input": {"userid": "zhangsan", "external_userid": "wmCustomer001", "remark": "李雷 (展会)",
                         "description": "Met at the expo"}, "expect": {"updated": True}}],
)
async def update_customer_remark(ctx: ActionContext, inp: RemarkInput) -> dict[str, Any]:
    """Set the member's remark, description, company or mobiles for a customer."""
    await ctx.client.post("/cgi-bin/externalcontact/remark", json=inp.model_dump(exclude_none=True))
    return {"updated": True}
