"""Work notifications (工作通知): ``asyncsend_v2``, then progress and result by task id."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from connectors.dingtalk import sandbox as fake
from connectors.dingtalk.base import connector
from connectors.dingtalk.client import oapi
from connectors.dingtalk.contacts import READ_RETRY
from connectors.dingtalk.examples import SANDBOX_CONNECTION
from connectors.sdk import ActionContext
from connectors.sdk.action import ui
from engine.errors import InvalidInput


class NotificationInput(BaseModel):
    model_config = {"extra": "forbid"}

    userids: list[str] = Field(default_factory=list, title="Users", description="userids (at most 100).",
                               max_length=100, json_schema_extra=ui(title_zh="接收人"))
    dept_ids: list[int] = Field(default_factory=list, title="Departments", max_length=20)
    to_all_user: bool = Field(default=False, title="Everyone", description="At most 3 times a day per app.")
    msgtype: Literal["text", "markdown", "link", "action_card"] = Field(default="text", title="Message type")
    content: str | None = Field(default=None, title="Text", description="text messages.",
                                json_schema_extra=ui(multiline=True, title_zh="内容"))
    title: str | None = Field(default=None, title="Title", description="markdown, link, action_card.")
    text: str | None = Field(default=None, title="Body", description="markdown / action_card Markdown, link summary.",
                             json_schema_extra=ui(multiline=True))
    url: str | None = Field(default=None, title="URL", description="link: where it opens; action_card: the button's URL.")
    button_title: str | None = Field(default="查看详情", title="Button title", description="action_card.")
    agent_id: int | None = Field(default=None, title="AgentId", description="Default: the connection's agent_id.")

    @model_validator(mode="after")
    def _complete(self) -> "NotificationInput":
        if not (self.userids or self.dept_ids or self.to_all_user):
            raise ValueError("give userids, dept_ids or to_all_user")
        need = {"text": ("content",), "markdown": ("title", "text"), "link": ("title", "text", "url"),
                "action_card": ("title", "text", "url")}[self.msgtype]
        missing = [name for name in need if not getattr(self, name)]
        if missing:
            raise ValueError(f"a {self.msgtype} notification needs {', '.join(missing)}")
        return self


class TaskInput(BaseModel):
    model_config = {"extra": "forbid"}

    task_id: int = Field(title="Task ID", description="From send_work_notification.")
    agent_id: int | None = Field(default=None, title="AgentId", description="Default: the connection's agent_id.")


def agent_of(ctx: ActionContext, given: int | None) -> int:
    """The app's AgentId: the step's, else the connection's."""
    agent = given if given is not None else (ctx.connection or {}).get("agent_id")
    if agent in (None, ""):
        raise InvalidInput("args.agent_id: give agent_id here or in the dingtalk connection (the app's AgentId)")
    return int(agent)


def notification_msg(inp: NotificationInput) -> dict[str, Any]:
    """The ``msg`` object of asyncsend_v2."""
    kind = inp.msgtype
    if kind == "text":
        part: dict[str, Any] = {"content": inp.content}
    elif kind == "markdown":
        part = {"title": inp.title, "text": inp.text}
    elif kind == "link":
        part = {"title": inp.title, "text": inp.text, "messageUrl": inp.url, "picUrl": "@lALOACZwe2Rk"}
    else:
        part = {"title": inp.title, "markdown": inp.text, "single_title": inp.button_title, "single_url": inp.url}
    return {"msgtype": kind, kind: part}


@connector.action(
    "send_work_notification", input=NotificationInput, title={"en": "Send a work notification", "zh": "发送工作通知"},
    output_schema={"type": "object", "properties": {"task_id": {"type": "integer"}}, "required": ["task_id"]},
    examples=[{"title": "Text to two users", "connection": SANDBOX_CONNECTION,
               "input": {"userids": ["user001", "manager01"], "content": "订单 SO-1001 已审批通过"}}],
)
async def send_work_notification(ctx: ActionContext, inp: NotificationInput) -> dict[str, Any]:
    """Queue a notification from the app to users/departments; returns the task_id to check later.

    DingTalk delivers the same content to the same user once a day (repeats are dropped silently).
    """
    body: dict[str, Any] = {"agent_id": agent_of(ctx, inp.agent_id), "msg": notification_msg(inp)}
    if inp.userids:
        body["userid_list"] = ",".join(inp.userids)
    if inp.dept_ids:
        body["dept_id_list"] = ",".join(str(d) for d in inp.dept_ids)
    if inp.to_all_user:
        body["to_all_user"] = True
    answer = await oapi(ctx, "/topapi/message/corpconversation/asyncsend_v2", body)
    return {"task_id": answer["task_id"]}


@connector.action(
    "get_work_notification_status", input=TaskInput,
    title={"en": "Get a work notification's progress and result", "zh": "查询工作通知发送进度和结果"},
    output_schema={"type": "object", "properties": {"progress": {"type": "object"}, "result": {"type": "object"},
                                                    "done": {"type": "boolean"}},
                   "required": ["progress", "result", "done"]},
    default_retry=READ_RETRY,
    examples=[{"title": "A delivered notification", "connection": SANDBOX_CONNECTION,
               "input": {"task_id": fake.SEEDED_TASK_ID}, "expect": {"done": True}}],
)
async def get_work_notification_status(ctx: ActionContext, inp: TaskInput) -> dict[str, Any]:
    """Progress (percent, status 0 waiting / 1 sending / 2 done) and per-user result of a notification task."""
    body = {"agent_id": agent_of(ctx, inp.agent_id), "task_id": inp.task_id}
    progress = (await oapi(ctx, "/topapi/message/corpconversation/getsendprogress", body))["progress"]
    result = (await oapi(ctx, "/topapi/message/corpconversation/getsendresult", body))["send_result"]
    return {"progress": progress, "result": result, "done": progress.get("status") == 2}
