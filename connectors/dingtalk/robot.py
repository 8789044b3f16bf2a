"""Custom group robot (自定义机器人): ``POST /robot/send?access_token=…[&timestamp=…&sign=…]``.

The robot authenticates with its own access_token (and, in 加签 mode, its SEC… secret), taken
from the ``robot_access_token`` / ``robot_secret`` fields of the step's `dingtalk` connection:
one connection per robot, independent of the app credentials. Keyword and IP-whitelist
modes need no secret; the platform checks the content or the caller's address.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from connectors.dingtalk import client
from connectors.dingtalk.base import connector
from connectors.dingtalk.examples import SANDBOX_CONNECTION, SANDBOX_KEYWORD_CONNECTION
from connectors.sdk import ActionContext, Budget
from connectors.sdk.action import ui
from connectors.sdk.auth import NoAuth
from connectors.sdk.client import ConnectorClient
from connectors.sdk.error_rules import ErrorRules
from engine.errors import InvalidInput

#: DingTalk blocks a robot for 10 minutes after 20 messages in a minute: never send the 21st.
ROBOT_BUDGET = Budget(20, 60.0, "dingtalk-robot")


def robot_sign(secret: str, timestamp_ms: int | str) -> str:
    """Base64(HMAC-SHA256(key=secret, msg="<timestamp>\\n<secret>")), before URL encoding."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_params(access_token: str, secret: str | None, now: float | None = None) -> dict[str, str]:
    """The query of a robot call: the token, plus ``timestamp`` (ms) and ``sign`` in 加签 mode."""
    params = {"access_token": access_token}
    if secret:
        timestamp = str(int((time.time() if now is None else now) * 1000))
        params.update(timestamp=timestamp, sign=robot_sign(secret, timestamp))  # httpx URL-encodes it
    return params


class Button(BaseModel):
    model_config = {"extra": "forbid"}

    title: str = Field(min_length=1)
    action_url: str = Field(min_length=1, title="Action URL")


class FeedLink(BaseModel):
    model_config = {"extra": "forbid"}

    title: str = Field(min_length=1)
    message_url: str = Field(min_length=1, title="Message URL")
    pic_url: str = Field(default="", title="Picture URL")


class RobotSendInput(BaseModel):
    model_config = {"extra": "forbid"}

    msgtype: Literal["text", "markdown", "link", "actionCard", "feedCard"] = Field(
        default="text", title="Message type", json_schema_extra=ui(title_zh="消息类型"))
    content: str | None = Field(default=None, title="Text", description="text: the message.",
                                json_schema_extra=ui(multiline=True, title_zh="内容"))
    title: str | None = Field(default=None, title="Title", description="markdown, link, actionCard.")
    text: str | None = Field(default=None, title="Body", description="markdown/actionCard: Markdown; link: summary.",
                             json_schema_extra=ui(multiline=True))
    message_url: str | None = Field(default=None, title="Link URL", description="link: where the card opens.")
    pic_url: str | None = Field(default=None, title="Picture URL", description="link: the card's picture.")
    single_title: str | None = Field(default=None, title="Button title", description="actionCard with one button.")
    single_url: str | None = Field(default=None, title="Button URL", description="actionCard with one button.")
    buttons: list[Button] = Field(default_factory=list, title="Buttons", description="actionCard with several buttons.")
    btn_orientation: Literal["0", "1"] = Field(default="0", title="Buttons vertical (0) or horizontal (1)")
    links: list[FeedLink] = Field(default_factory=list, title="Feed links", description="feedCard items.")
    at_mobiles: list[str] = Field(default_factory=list, title="@ mobiles", json_schema_extra=ui(title_zh="@手机号"))
    at_user_ids: list[str] = Field(default_factory=list, title="@ user ids")
    at_all: bool = Field(default=False, title="@ everyone", json_schema_extra=ui(title_zh="@所有人"))

    @model_validator(mode="after")
    def _fields_of_the_type(self) -> "RobotSendInput":
        need = {"text": ("content",), "markdown": ("title", "text"), "link": ("title", "text", "message_url"),
                "actionCard": ("title", "text"), "feedCard": ()}[self.msgtype]
        missing = [name for name in need if not getattr(self, name)]
        if missing:
            raise ValueError(f"a {self.msgtype} message needs {', '.join(missing)}")
        if self.msgtype == "actionCard" and not self.buttons and not (self.single_title and self.single_url):
            raise ValueError("an actionCard needs single_title and single_url, or buttons")
        if self.msgtype == "feedCard" and not self.links:
            raise ValueError("a feedCard needs links")
        return self


def robot_message(inp: RobotSendInput) -> dict[str, Any]:
    """The robot API's JSON body for the input."""
    kind = inp.msgtype
    if kind == "text":
        part: dict[str, Any] = {"content": inp.content}
    elif kind == "markdown":
        part = {"title": inp.title, "text": inp.text}
    elif kind == "link":
        part = {"title": inp.title, "text": inp.text, "messageUrl": inp.message_url, "picUrl": inp.pic_url or ""}
    elif kind == "actionCard":
        part = {"title": inp.title, "text": inp.text, "btnOrientation": inp.btn_orientation}
        if inp.buttons:
            part["btns"] = [{"title": b.title, "actionURL": b.action_url} for b in inp.buttons]
        else:
            part.update(singleTitle=inp.single_title, singleURL=inp.single_url)
    else:
        part = {"links": [{"title": x.title, "messageURL": x.message_url, "picURL": x.pic_url} for x in inp.links]}
    body: dict[str, Any] = {"msgtype": kind, kind: part}
    if inp.at_mobiles or inp.at_user_ids or inp.at_all:
        body["at"] = {"atMobiles": inp.at_mobiles, "atUserIds": inp.at_user_ids, "isAtAll": inp.at_all}
    return body


def robot_client(ctx: ActionContext) -> tuple[ConnectorClient, str, str | None]:
    """(a client for the robot API, the robot's token, its secret) from the step's connection."""
    fields = ctx.connection or {}
    token, secret = fields.get("robot_access_token"), fields.get("robot_secret") or None
    if not token:
        raise InvalidInput("dingtalk.robot_send needs a connection with robot_access_token (from the robot's Webhook URL)")
    limiter = ctx.rate_limiter.with_budget(ROBOT_BUDGET) if ctx.rate_limiter is not None else None
    key = ROBOT_BUDGET.key(hashlib.sha256(str(token).encode()).hexdigest()[:16])
    base = fields.get("base_url") or client.OAPI_BASE
    return ConnectorClient(client.NAME, base, NoAuth(), ErrorRules(client.OAPI_RULES), None, limiter, rate_key=key), token, secret


@connector.action(
    "robot_send", input=RobotSendInput, title={"en": "Send a group robot message", "zh": "自定义机器人发消息"},
    output_schema={"type": "object", "properties": {"sent": {"type": "boolean"}, "msgtype": {"type": "string"}},
                   "required": ["sent", "msgtype"]},
    examples=[
        {"title": "Signed text with @mobile", "connection": SANDBOX_CONNECTION,
         "input": {"msgtype": "text", "content": "新订单 SO-1001 待审批", "at_mobiles": ["13800000001"]},
         "expect": {"sent": True, "msgtype": "text"}},
        {"title": "Keyword-mode markdown", "connection": SANDBOX_KEYWORD_CONNECTION,
         "input": {"msgtype": "markdown", "title": "订单", "text": "### 订单 SO-1001\n金额 **250000**"},
         "expect": {"sent": True}},
        {"title": "Action card with buttons", "connection": SANDBOX_CONNECTION,
         "input": {"msgtype": "actionCard", "title": "审批", "text": "SO-1001 需要审批",
                   "buttons": [{"title": "同意", "action_url": "https://example.com/a"},
                               {"title": "拒绝", "action_url": "https://example.com/r"}]},
         "expect": {"sent": True}},
    ],
)
async def robot_send(ctx: ActionContext, inp: RobotSendInput) -> dict[str, Any]:
    """Post a text, markdown, link, actionCard or feedCard message through a group's custom robot."""
    api, token, secret = robot_client(ctx)
    await api.post("/robot/send", params=signed_params(token, secret), json=robot_message(inp))
    return {"sent": True, "msgtype": inp.msgtype}
