"""WeCom group robots (群机器人): messages to a group chat through its webhook key.

A separate connector (``wecom_robot``) because the credential is the robot's webhook key
(the ``key=`` of its URL), not an app; WeCom allows 20 messages a minute per robot, which
the shared budget keeps to (calls wait rather than fail).
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any

from pydantic import BaseModel, Field

from connectors.sdk import ActionContext, Budget, Connector
from connectors.sdk.action import ui
from connectors.wecom.base import BASE_URL, ERROR_RULES
from connectors.wecom.fake_state import ROBOT_KEY
from connectors.wecom.media import FileInput, upload
from connectors.wecom.messages import Article
from connectors.wecom.sandbox import create_app

SEND = "/cgi-bin/webhook/send"
CONNECTION = {"key": ROBOT_KEY}
DONE = {"type": "object", "properties": {"sent": {"type": "boolean"}}, "required": ["sent"]}


class RobotConnection(BaseModel):
    key: str = Field(min_length=1, title="Webhook key", json_schema_extra=ui(secret=True),
                     description="Group chat > ... > Group robots > the robot's webhook URL: the part after key=.")
    base_url: str | None = Field(default=None, pattern=r"^https?://", description="Only for a proxy or the sandbox.")


connector = Connector(
    name="wecom_robot",
    version="1.0.0",
    title={"en": "WeCom group robot", "zh": "企业微信群机器人"},
    description="Post text, markdown, images, news and files to a WeCom group chat through a robot webhook.",
    categories=("communication",),
    homepage="https://developer.work.weixin.qq.com/document/path/91770",
    connection_schema=RobotConnection,
    base_url=BASE_URL,
    auth="api_key",
    auth_options={"name": "key", "location": "query"},
    error_rules=ERROR_RULES,
    budget=Budget(20, 61.0, "wecom_robot"),  # 20/min, with a second's margin for requests in flight
    sandbox=create_app,
)


async def _send(ctx: ActionContext, msgtype: str, content: dict[str, Any]) -> dict[str, Any]:
    await ctx.client.post(SEND, json={"msgtype": msgtype, msgtype: content})
    return {"sent": True}


class TextInput(BaseModel):
    model_config = {"extra": "forbid"}
    content: str = Field(min_length=1, max_length=2048, json_schema_extra=ui(multiline=True))
    mentioned_list: list[str] = Field(default_factory=list, description='Userids to @, or "@all".')
    mentioned_mobile_list: list[str] = Field(default_factory=list, description='Mobiles to @, or "@all".')


@connector.action("send_text", input=TextInput, output_schema=DONE, title={"en": "Send text", "zh": "发送文本"},
                  examples=[{"title": "Text with an @", "connection": CONNECTION,
                             "input": {"content": "Build failed", "mentioned_list": ["zhangsan"]}, "expect": {"sent": True}}])
async def send_text(ctx: ActionContext, inp: TextInput) -> dict[str, Any]:
    """Text (≤ 2048 bytes) mentioning members by userid or mobile."""
    return await _send(ctx, "text", inp.model_dump(exclude_defaults=True))


class MarkdownInput(BaseModel):
    model_config = {"extra": "forbid"}
    content: str = Field(min_length=1, max_length=4096, description="Markdown; mention with <@userid>.",
                         json_schema_extra=ui(multiline=True))


@connector.action("send_markdown", input=MarkdownInput, output_schema=DONE, title={"en": "Send markdown", "zh": "发送 Markdown"},
                  examples=[{"title": "A report", "connection": CONNECTION,
                             "input": {"content": "# Sales\n> **¥12,000** today <@zhangsan>"}, "expect": {"sent": True}}])
async def send_markdown(ctx: ActionContext, inp: MarkdownInput) -> dict[str, Any]:
    """Markdown (≤ 4096 bytes)."""
    return await _send(ctx, "markdown", {"content": inp.content})


class ImageInput(BaseModel):
    model_config = {"extra": "forbid"}
    content_base64: str = Field(min_length=1, description="A JPG or PNG of at most 2 MB, base64.")


@connector.action("send_image", input=ImageInput, output_schema=DONE, title={"en": "Send image", "zh": "发送图片"},
                  examples=[{"title": "A tiny PNG", "connection": CONNECTION,
                             "input": {"content_base64": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="},
                             "expect": {"sent": True}}])
async def send_image(ctx: ActionContext, inp: ImageInput) -> dict[str, Any]:
    """An image; WeCom wants its base64 and the MD5 of the raw bytes, computed here."""
    raw = FileInput(filename="image.png", content_base64=inp.content_base64).data()
    return await _send(ctx, "image", {"base64": inp.content_base64, "md5": hashlib.md5(raw).hexdigest()})


class NewsInput(BaseModel):
    model_config = {"extra": "forbid"}
    articles: list[Article] = Field(min_length=1, max_length=8)


@connector.action("send_news", input=NewsInput, output_schema=DONE, title={"en": "Send news", "zh": "发送图文"},
                  examples=[{"title": "One article", "connection": CONNECTION,
                             "input": {"articles": [{"title": "Release 2.0", "url": "https://example.com/2.0"}]},
                             "expect": {"sent": True}}])
async def send_news(ctx: ActionContext, inp: NewsInput) -> dict[str, Any]:
    """News cards (1 to 8 articles)."""
    return await _send(ctx, "news", {"articles": [a.model_dump(exclude_none=True) for a in inp.articles]})


class FileMessageInput(BaseModel):
    model_config = {"extra": "forbid"}
    file: FileInput


@connector.action("send_file", input=FileMessageInput, output_schema=DONE, title={"en": "Send file", "zh": "发送文件"},
                  examples=[{"title": "A CSV", "connection": CONNECTION,
                             "input": {"file": {"filename": "leads.csv", "content_base64": base64.b64encode(b"name\nLi Lei\n").decode()}},
                             "expect": {"sent": True}}])
async def send_file(ctx: ActionContext, inp: FileMessageInput) -> dict[str, Any]:
    """A file (≤ 20 MB): uploaded with the robot's key, then sent."""
    media = await upload(ctx.client, "/cgi-bin/webhook/upload_media", "file", inp.file)
    return await _send(ctx, "file", {"media_id": media["media_id"]})


connector.actions["custom_api_call"].examples.append(
    {"title": "Raw send", "connection": CONNECTION,
     "input": {"method": "POST", "path": SEND, "json": {"msgtype": "text", "text": {"content": "hi"}}},
     "expect": {"status": 200, "body": {"errcode": 0}}})
