"""App messages (``message/send``) and media uploads."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from connectors.sdk import ActionContext
from connectors.sdk.action import ui
from connectors.wecom.base import MEMBER_OPTIONS, agent_id_of, connector
from connectors.wecom.fake_state import SANDBOX_CONNECTION
from connectors.wecom.media import FileInput, upload

class TextCard(BaseModel):
    model_config = {"extra": "forbid"}
    title: str = Field(min_length=1, max_length=128)
    description: str = Field(min_length=1, max_length=512)
    url: str = Field(pattern=r"^https?://")
    btntxt: str | None = Field(default=None, max_length=4)


class Article(BaseModel):
    model_config = {"extra": "forbid"}
    title: str = Field(min_length=1, max_length=128)
    url: str = Field(pattern=r"^https?://")
    description: str | None = Field(default=None, max_length=512)
    picurl: str | None = None


class SendMessageInput(BaseModel):
    """Recipients (at least one kind) and one message of `msgtype` with its field."""

    model_config = {"extra": "forbid"}
    to_users: list[str] = Field(default_factory=list, max_length=1000, title="Members",
                                description='Member userids, or ["@all"] for everyone the app can see.',
                                json_schema_extra=MEMBER_OPTIONS)
    to_departments: list[int] = Field(default_factory=list, max_length=100, title="Departments")
    to_tags: list[int] = Field(default_factory=list, max_length=100, title="Tags")
    agent_id: int | None = Field(default=None, title="Agent ID", description="Default: the connection's.")
    msgtype: Literal["text", "markdown", "textcard", "news", "image", "file", "template_card"] = "text"
    content: str | None = Field(default=None, title="Content", description="For text and markdown.",
                                json_schema_extra=ui(multiline=True))
    textcard: TextCard | None = None
    articles: list[Article] | None = Field(default=None, min_length=1, max_length=8, description="For news.")
    media_id: str | None = Field(default=None, description="For image and file: an uploaded media id ...")
    file: FileInput | None = Field(default=None, description="... or the file itself, uploaded first.")
    template_card: dict[str, Any] | None = Field(default=None, description="The template_card object as WeCom documents it.")
    safe: bool = Field(default=False, description="Confidential message (no forwarding).")
    enable_duplicate_check: bool = False
    duplicate_check_interval: int = Field(default=1800, ge=1, le=14400)

    @model_validator(mode="after")
    def _complete(self) -> "SendMessageInput":
        if not (self.to_users or self.to_departments or self.to_tags):
            raise ValueError("give at least one of to_users, to_departments, to_tags")
        needs = {"text": "content", "markdown": "content", "textcard": "textcard", "news": "articles",
                 "template_card": "template_card"}
        if self.msgtype in needs and getattr(self, needs[self.msgtype]) is None:
            raise ValueError(f"msgtype {self.msgtype} needs `{needs[self.msgtype]}`")
        if self.msgtype in ("image", "file") and (self.media_id is None) == (self.file is None):
            raise ValueError(f"msgtype {self.msgtype} needs exactly one of media_id and file")
        return self


SEND_OUTPUT = {
    "type": "object",
    "properties": {"msgid": {"type": "string"}, "invaliduser": {"type": "array", "items": {"type": "string"}},
                   "invalidparty": {"type": "array", "items": {"type": "string"}},
                   "invalidtag": {"type": "array", "items": {"type": "string"}},
                   "unlicenseduser": {"type": "array", "items": {"type": "string"}},
                   "response_code": {"type": "string"}},
    "required": ["msgid", "invaliduser", "invalidparty", "invalidtag"],
}


def _split(value: Any) -> list[str]:
    return [item for item in str(value or "").split("|") if item]


async def _body(ctx: ActionContext, inp: SendMessageInput) -> dict[str, Any]:
    content: dict[str, Any]
    if inp.msgtype in ("text", "markdown"):
        content = {"content": inp.content}
    elif inp.msgtype == "textcard":
        content = inp.textcard.model_dump(exclude_none=True)  # type: ignore[union-attr]
    elif inp.msgtype == "news":
        content = {"articles": [a.model_dump(exclude_none=True) for a in inp.articles or ()]}
    elif inp.msgtype == "template_card":
        content = dict(inp.template_card or {})
    else:
        media_id = inp.media_id
        if inp.file is not None:
            media_id = (await upload(ctx.client, "/cgi-bin/media/upload", inp.msgtype, inp.file))["media_id"]
        content = {"media_id": media_id}
    return {"touser": "|".join(inp.to_users), "toparty": "|".join(map(str, inp.to_departments)),
            "totag": "|".join(map(str, inp.to_tags)), "agentid": agent_id_of(ctx, inp.agent_id), "msgtype": inp.msgtype,
            inp.msgtype: content, "safe": int(inp.safe), "enable_duplicate_check": int(inp.enable_duplicate_check),
            "duplicate_check_interval": inp.duplicate_check_interval}


@connector.action(
    "send_message", input=SendMessageInput, output_schema=SEND_OUTPUT,
    title={"en": "Send app message", "zh": "发送应用消息"},
    examples=[
        {"title": "Text to a member and an unknown one", "connection": SANDBOX_CONNECTION,
         "input": {"to_users": ["zhangsan", "nobody"], "content": "New lead assigned to you"},
         "expect": {"invaliduser": ["nobody"], "invalidparty": [], "invalidtag": []}},
        {"title": "Text card to a department", "connection": SANDBOX_CONNECTION,
         "input": {"to_departments": [2], "msgtype": "textcard",
                   "textcard": {"title": "Order 1001", "description": "Paid ¥200", "url": "https://example.com/o/1001"}},
         "expect": {"invalidparty": []}},
        {"title": "Markdown to a tag", "connection": SANDBOX_CONNECTION,
         "input": {"to_tags": [1], "msgtype": "markdown", "content": "**Daily report** ready"}, "expect": {"invalidtag": []}},
        {"title": "News to everyone", "connection": SANDBOX_CONNECTION,
         "input": {"to_users": ["@all"], "msgtype": "news",
                   "articles": [{"title": "Launch", "url": "https://example.com/launch"}]}, "expect": {"invaliduser": []}},
        {"title": "A file, uploaded first", "connection": SANDBOX_CONNECTION,
         "input": {"to_users": ["lisi"], "msgtype": "file", "file": {"filename": "q3.txt", "content_base64": "cTMgcmVwb3J0"}},
         "expect": {"invaliduser": []}},
        {"title": "Template card", "connection": SANDBOX_CONNECTION,
         "input": {"to_users": ["zhangsan"], "msgtype": "template_card",
                   "template_card": {"card_type": "text_notice", "main_title": {"title": "Approval needed"},
                                     "card_action": {"type": 1, "url": "https://example.com"}}},
         "expect": {"invaliduser": []}},
    ],
)
async def send_message(ctx: ActionContext, inp: SendMessageInput) -> dict[str, Any]:
    """Send an app message; recipients WeCom did not accept are listed, not an error
    (unless none was valid: ``wecom.81013``)."""
    answer = await ctx.client.post("/cgi-bin/message/send", json=await _body(ctx, inp))
    result: dict[str, Any] = {"msgid": str(answer.get("msgid", ""))}
    for key in ("invaliduser", "invalidparty", "invalidtag", "unlicenseduser"):
        result[key] = _split(answer.get(key))
    if answer.get("response_code"):
        result["response_code"] = answer["response_code"]
    return result


class UploadMediaInput(BaseModel):
    model_config = {"extra": "forbid"}
    type: Literal["image", "voice", "video", "file"] = "file"
    file: FileInput


@connector.action(
    "upload_media", input=UploadMediaInput, title={"en": "Upload media", "zh": "上传临时素材"},
    output_schema={"type": "object", "properties": {"media_id": {"type": "string"}, "type": {"type": "string"},
                                                    "created_at": {"type": "string"}}, "required": ["media_id"]},
    examples=[{"title": "Upload a text file", "connection": SANDBOX_CONNECTION,
               "input": {"type": "file", "file": {"filename": "hello.txt", "content_base64": "aGVsbG8gd29ybGQ="}},
               "expect": {"type": "file"}}],
)
async def upload_media(ctx: ActionContext, inp: UploadMediaInput) -> dict[str, Any]:
    """Upload a temporary file (valid 3 days) for image/file messages."""
    answer = await upload(ctx.client, "/cgi-bin/media/upload", inp.type, inp.file)
    return {"media_id": answer["media_id"], "type": answer.get("type", inp.type), "created_at": str(answer.get("created_at", ""))}
