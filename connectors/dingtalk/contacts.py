"""Contacts (通讯录) on the old API: user by mobile, user by id, the members of a department."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from connectors.dingtalk.base import connector
from connectors.dingtalk.client import oapi
from connectors.dingtalk.examples import SANDBOX_CONNECTION
from connectors.sdk import ActionContext, CursorPaginator, PageRequest
from connectors.sdk.action import ui

#: Reads are safe to repeat: retry throttling and platform hiccups unless the step says otherwise.
READ_RETRY = ({"errors": ["RateLimited", "Transient"], "max_attempts": 3, "interval": 1, "backoff_rate": 2, "max_delay": 10},)

USER_SCHEMA = {"type": "object", "properties": {"userid": {"type": "string"}, "name": {"type": "string"},
                                                "mobile": {"type": "string"}, "dept_id_list": {"type": "array"}},
               "required": ["userid"]}


class ByMobileInput(BaseModel):
    model_config = {"extra": "forbid"}

    mobile: str = Field(min_length=5, max_length=20, title="Mobile", json_schema_extra=ui(title_zh="手机号"))


class GetUserInput(BaseModel):
    model_config = {"extra": "forbid"}

    userid: str = Field(min_length=1, title="User ID", json_schema_extra=ui(title_zh="用户 userid"))
    language: Literal["zh_CN", "en_US"] = Field(default="zh_CN", title="Language")


class DepartmentUsersInput(BaseModel):
    model_config = {"extra": "forbid"}

    dept_id: int = Field(ge=1, title="Department ID", description="1 is the root department.",
                         json_schema_extra=ui(title_zh="部门 ID"))
    page_size: int = Field(default=100, ge=1, le=100, title="Page size")
    cursor: int | None = Field(default=None, ge=0, title="Cursor",
                               description="Fetch one page from here; leave empty to fetch every page.")
    max_items: int = Field(default=5000, ge=1, le=100_000, title="At most this many users (all pages)")


@connector.action(
    "get_user_by_mobile", input=ByMobileInput, title={"en": "Find a user by mobile", "zh": "根据手机号查询用户"},
    output_schema={"type": "object", "properties": {"userid": {"type": "string"}}, "required": ["userid"]},
    default_retry=READ_RETRY,
    examples=[{"title": "A seeded employee", "connection": SANDBOX_CONNECTION, "input": {"mobile": "13800000001"},
               "expect": {"userid": "user001"}}],
)
async def get_user_by_mobile(ctx: ActionContext, inp: ByMobileInput) -> dict[str, Any]:
    """The userid of the employee with this mobile number (NotFound, code 60121, when none)."""
    answer = await oapi(ctx, "/topapi/v2/user/getbymobile", {"mobile": inp.mobile})
    return answer["result"]


@connector.action(
    "get_user", input=GetUserInput, title={"en": "Get a user", "zh": "查询用户详情"}, output_schema=USER_SCHEMA,
    default_retry=READ_RETRY,
    examples=[{"title": "A seeded manager", "connection": SANDBOX_CONNECTION, "input": {"userid": "manager01"},
               "expect": {"userid": "manager01", "name": "王经理"}}],
)
async def get_user(ctx: ActionContext, inp: GetUserInput) -> dict[str, Any]:
    """A user's details (name, mobile, departments, title ...) by userid."""
    answer = await oapi(ctx, "/topapi/v2/user/get", {"userid": inp.userid, "language": inp.language})
    return answer["result"]


@connector.action(
    "list_department_users", input=DepartmentUsersInput,
    title={"en": "List department members", "zh": "获取部门用户详情"},
    output_schema={"type": "object", "properties": {"users": {"type": "array", "items": USER_SCHEMA},
                                                    "next_cursor": {"type": ["integer", "null"]}},
                   "required": ["users", "next_cursor"]},
    default_retry=READ_RETRY,
    examples=[{"title": "All of 销售部 (several pages)", "connection": SANDBOX_CONNECTION,
               "input": {"dept_id": 2, "page_size": 5}, "expect": {"next_cursor": None}}],
)
async def list_department_users(ctx: ActionContext, inp: DepartmentUsersInput) -> dict[str, Any]:
    """The members of a department: every page (cursor/has_more), or one page from `cursor`."""

    async def fetch(request: PageRequest) -> Any:
        body = {"dept_id": inp.dept_id, "size": inp.page_size, "cursor": 0, **request.params}
        return (await oapi(ctx, "/topapi/v2/user/list", body))["result"]

    if inp.cursor is not None:
        page = await fetch(PageRequest(params={"cursor": inp.cursor}))
        return {"users": page.get("list", []), "next_cursor": page.get("next_cursor") if page.get("has_more") else None}
    pager = CursorPaginator(cursor_param="cursor", next_cursor="next_cursor", items="list", has_more="has_more")
    return {"users": await pager.collect(fetch, max_items=inp.max_items), "next_cursor": None}
