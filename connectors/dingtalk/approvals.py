"""Approvals (OA 审批) on the new API: start an instance, read its status, poll for finished ones."""
from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from connectors.dingtalk import sandbox as fake
from connectors.dingtalk.base import connector
from connectors.dingtalk.client import api
from connectors.dingtalk.contacts import READ_RETRY
from connectors.dingtalk.examples import SANDBOX_CONNECTION
from connectors.sdk import ActionContext, CursorPaginator, PageRequest, PollTrigger, add_trigger
from connectors.sdk.action import ui
from connectors.sdk.triggers import TIME_BASED
from engine.errors import InvalidInput

INSTANCE_SCHEMA = {
    "type": "object",
    "properties": {"processInstanceId": {"type": "string"}, "status": {"type": "string"}, "result": {"type": "string"},
                   "title": {"type": "string"}, "businessId": {"type": "string"},
                   "originatorUserId": {"type": "string"}, "formComponentValues": {"type": "array"}},
    "required": ["processInstanceId", "status", "result"],
}


class FormValue(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, title="Component label", description="The form component's title, e.g. 金额.")
    value: str = Field(title="Value", description="Text; tables and multi-selects as JSON text.")


class CreateApprovalInput(BaseModel):
    model_config = {"extra": "forbid"}

    process_code: str = Field(min_length=1, title="Process code", description="The template's PROC-… code.",
                              json_schema_extra=ui(title_zh="审批模板 processCode"))
    originator_user_id: str = Field(min_length=1, title="Originator userid", json_schema_extra=ui(title_zh="发起人"))
    dept_id: int | None = Field(default=None, title="Originator's department",
                                description="Default: the originator's main department (-1 for the root).")
    form: dict[str, Any] | list[FormValue] = Field(
        title="Form values", description='{"金额": "250000", ...} or [{"name": "金额", "value": "250000"}].')
    approvers: list[str] = Field(default_factory=list, title="Approvers (in order)",
                                 description="When the template lets the originator choose.")
    cc_list: list[str] = Field(default_factory=list, title="CC userids")


class GetApprovalInput(BaseModel):
    model_config = {"extra": "forbid"}

    instance_id: str = Field(min_length=1, title="Instance ID", json_schema_extra=ui(title_zh="审批实例 ID"))


def form_values(form: dict[str, Any] | list[FormValue]) -> list[dict[str, str]]:
    """``formComponentValues`` from a name->value mapping or a list of name/value pairs."""
    if isinstance(form, dict):
        return [{"name": str(name), "value": value if isinstance(value, str) else str(value)} for name, value in form.items()]
    return [item.model_dump() for item in form]


@connector.action(
    "create_approval", input=CreateApprovalInput, title={"en": "Start an approval", "zh": "发起审批实例"},
    output_schema={"type": "object", "properties": {"instance_id": {"type": "string"}}, "required": ["instance_id"]},
    examples=[{"title": "Big order needs approval", "connection": SANDBOX_CONNECTION,
               "input": {"process_code": fake.PROCESS_CODE, "originator_user_id": "user002",
                         "form": {"订单号": "SO-2001", "金额": 380000, "客户": "华南电子"}}}],
)
async def create_approval(ctx: ActionContext, inp: CreateApprovalInput) -> dict[str, Any]:
    """Start an approval instance of a template; returns its instance_id (status RUNNING)."""
    body: dict[str, Any] = {"processCode": inp.process_code, "originatorUserId": inp.originator_user_id,
                            "formComponentValues": form_values(inp.form)}
    if inp.dept_id is not None:
        body["deptId"] = inp.dept_id
    if inp.approvers:
        body["approvers"] = [{"actionType": "NONE", "userIds": [userid]} for userid in inp.approvers]
    if inp.cc_list:
        body["ccList"] = inp.cc_list
        body["ccPosition"] = "FINISH"
    answer = await api(ctx, "POST", "/v1.0/workflow/processInstances", json=body)
    return {"instance_id": answer["instanceId"]}


async def fetch_instance(ctx: Any, instance_id: str) -> dict[str, Any]:
    """One approval instance as the API describes it, with its id added."""
    answer = await api(ctx, "GET", "/v1.0/workflow/processInstances", params={"processInstanceId": instance_id})
    return {"processInstanceId": instance_id, **answer["result"]}


@connector.action(
    "get_approval", input=GetApprovalInput, title={"en": "Get an approval's status", "zh": "获取审批实例详情"},
    output_schema=INSTANCE_SCHEMA, default_retry=READ_RETRY,
    examples=[{"title": "A running big-order approval", "connection": SANDBOX_CONNECTION,
               "input": {"instance_id": fake.SEEDED_INSTANCE},
               "expect": {"processInstanceId": fake.SEEDED_INSTANCE, "status": "RUNNING", "result": ""}}],
)
async def get_approval(ctx: ActionContext, inp: GetApprovalInput) -> dict[str, Any]:
    """Status (NEW/RUNNING/TERMINATED/COMPLETED), result (agree/refuse), form values, tasks and records."""
    return await fetch_instance(ctx, inp.instance_id)


# ------------------------------------------------------------------------------- poll trigger

#: How far back the poll trigger looks for instances (DingTalk allows at most 120 days).
LOOKBACK_DAYS = 30


async def finished_approvals(ctx: Any, state: Any) -> list[dict[str, Any]]:
    """The instances of the configured template that finished (COMPLETED/TERMINATED) in the look-back window."""
    args = ctx.args or {}
    code = args.get("process_code")
    if not code:
        raise InvalidInput("the approval_finished trigger needs args.process_code")
    days = int(args.get("lookback_days") or LOOKBACK_DAYS)
    start = int((time.time() - days * 86400) * 1000)

    async def fetch(request: PageRequest) -> Any:
        body = {"processCode": code, "startTime": start, "maxResults": 20,
                "statuses": ["COMPLETED", "TERMINATED"], **request.params}
        return (await api(ctx, "POST", "/v1.0/workflow/processes/instanceIds/query", json=body))["result"]

    pager = CursorPaginator(cursor_param="nextToken", next_cursor="nextToken", items="list")
    ids = await pager.collect(fetch, max_items=2000)
    return [await fetch_instance(ctx, instance_id) for instance_id in ids]


add_trigger(connector, PollTrigger(
    name="approval_finished",
    title={"en": "Approval finished (polling)", "zh": "审批结束（轮询）"},
    description="Polls a template's instances and starts a run for each one that is approved, refused or withdrawn. "
                "Use it where the event callback cannot reach Flowlink. Args: process_code, lookback_days (30).",
    sample={"processInstanceId": fake.SEEDED_INSTANCE, "status": "COMPLETED", "result": "agree", "title": "员工1提交的大额订单审批",
            "businessId": "202600000001", "originatorUserId": "user001", "finishTime": 1764000000000,
            "formComponentValues": [{"name": "金额", "value": "250000"}]},
    output_schema=INSTANCE_SCHEMA,
    fetch=finished_approvals,
    strategy=TIME_BASED,
    item_key=lambda item: f"{item['processInstanceId']}:{item.get('status')}",
    item_time=lambda item: (item.get("finishTime") or item.get("createTime") or 0) / 1000,
    interval=120.0,
))
