"""Members and departments (通讯录): lookups for dropdowns, routing and round-robin assignment."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from connectors.sdk import ActionContext
from connectors.wecom.base import connector
from connectors.wecom.fake_state import SANDBOX_CONNECTION

USER_SCHEMA = {"type": "object", "properties": {"userid": {"type": "string"}, "name": {"type": "string"},
                                                "department": {"type": "array"}, "mobile": {"type": "string"}},
               "required": ["userid"]}


class GetUserInput(BaseModel):
    model_config = {"extra": "forbid"}
    userid: str = Field(min_length=1, max_length=64, title="Member userid")


@connector.action("get_user", input=GetUserInput, output_schema=USER_SCHEMA, title={"en": "Get member", "zh": "读取成员"},
                  examples=[{"title": "Zhang San", "connection": SANDBOX_CONNECTION, "input": {"userid": "zhangsan"},
                             "expect": {"userid": "zhangsan", "name": "张三"}}])
async def get_user(ctx: ActionContext, inp: GetUserInput) -> dict[str, Any]:
    """A member's profile; an unknown userid fails with ``wecom.60111`` (NotFound)."""
    answer = await ctx.client.get("/cgi-bin/user/get", params={"userid": inp.userid})
    return {k: v for k, v in answer.items() if k not in ("errcode", "errmsg")}


class MobileInput(BaseModel):
    model_config = {"extra": "forbid"}
    mobile: str = Field(pattern=r"^\+?[0-9-]{5,20}$", title="Mobile number")


@connector.action("get_user_by_mobile", input=MobileInput, title={"en": "Find member by mobile", "zh": "手机号获取成员"},
                  output_schema={"type": "object", "properties": {"userid": {"type": "string"}}, "required": ["userid"]},
                  examples=[{"title": "Li Si's mobile", "connection": SANDBOX_CONNECTION, "input": {"mobile": "13800000002"},
                             "expect": {"userid": "lisi"}}])
async def get_user_by_mobile(ctx: ActionContext, inp: MobileInput) -> dict[str, Any]:
    """The userid of the member with this mobile; unknown: ``wecom.46004`` (NotFound)."""
    answer = await ctx.client.post("/cgi-bin/user/getuserid", json={"mobile": inp.mobile})
    return {"userid": answer["userid"]}


class DepartmentMembersInput(BaseModel):
    model_config = {"extra": "forbid"}
    department_id: int = Field(default=1, ge=1, title="Department ID", description="1 is the root department.")
    fetch_child: bool = Field(default=False, title="Include sub-departments")


@connector.action(
    "list_department_members", input=DepartmentMembersInput, title={"en": "List department members", "zh": "获取部门成员"},
    output_schema={"type": "object", "properties": {"users": {"type": "array", "items": USER_SCHEMA},
                                                    "userids": {"type": "array", "items": {"type": "string"}}},
                   "required": ["users", "userids"]},
    examples=[{"title": "Sales", "connection": SANDBOX_CONNECTION, "input": {"department_id": 2},
               "expect": {"userids": ["zhangsan", "lisi"]}}],
)
async def list_department_members(ctx: ActionContext, inp: DepartmentMembersInput) -> dict[str, Any]:
    """Members of a department (and below): `users` for dropdowns, `userids` for a rotation."""
    answer = await ctx.client.get("/cgi-bin/user/simplelist",
                                  params={"department_id": inp.department_id, "fetch_child": int(inp.fetch_child)})
    users = answer.get("userlist") or []
    return {"users": users, "userids": [u["userid"] for u in users]}


class DepartmentsInput(BaseModel):
    model_config = {"extra": "forbid"}
    id: int | None = Field(default=None, ge=1, title="Department ID", description="Default: every department.")


@connector.action(
    "list_departments", input=DepartmentsInput, title={"en": "List departments", "zh": "获取部门列表"},
    output_schema={"type": "object", "properties": {"departments": {"type": "array"}}, "required": ["departments"]},
    examples=[{"title": "Below Sales", "connection": SANDBOX_CONNECTION, "input": {"id": 2},
               "expect": {"departments": [{"id": 2, "name": "销售部"}]}}],
)
async def list_departments(ctx: ActionContext, inp: DepartmentsInput) -> dict[str, Any]:
    """A department and every department below it (all of them without `id`)."""
    answer = await ctx.client.get("/cgi-bin/department/list", params={"id": inp.id} if inp.id else None)
    return {"departments": answer.get("department") or []}
