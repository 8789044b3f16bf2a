"""Reaching customers: welcome messages, mass-send tasks and "contact me" (联系我) ways."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from connectors.sdk import ActionContext
from connectors.sdk.action import ui
from connectors.wecom.base import MEMBER_OPTIONS, connector
from connectors.wecom.fake_state import SANDBOX_CONNECTION, SANDBOX_WELCOME_CODE


class Content(BaseModel):
    """Text and/or attachments (WeCom's ``attachments`` form: ``{"msgtype": "link", "link": {...}}``)."""

    model_config = {"extra": "forbid"}
    text: str | None = Field(default=None, max_length=4000, json_schema_extra=ui(multiline=True))
    attachments: list[dict[str, Any]] = Field(default_factory=list, max_length=9)

    @model_validator(mode="after")
    def _something(self) -> "Content":
        if not self.text and not self.attachments:
            raise ValueError("give text or attachments")
        return self

    def body(self) -> dict[str, Any]:
        """The content fields of a WeCom request."""
        body: dict[str, Any] = {"text": {"content": self.text}} if self.text else {}
        if self.attachments:
            body["attachments"] = self.attachments
        return body


class WelcomeInput(Content):
    welcome_code: str = Field(min_length=1, description="`WelcomeCode` of the add_external_contact event (valid 20 s).")


@connector.action(
    "send_welcome_message", input=WelcomeInput, title={"en": "Send welcome message", "zh": "发送新客户欢迎语"},
    output_schema={"type": "object", "properties": {"sent": {"type": "boolean"}}, "required": ["sent"]},
    examples=[{"title": "Welcome with a link", "connection": SANDBOX_CONNECTION,
               "input": {"welcome_code": SANDBOX_WELCOME_CODE, "text": "欢迎！",
                         "attachments": [{"msgtype": "link", "link": {"title": "Catalogue", "url": "https://example.com"}}]},
               "expect": {"sent": True}}],
)
async def send_welcome_message(ctx: ActionContext, inp: WelcomeInput) -> dict[str, Any]:
    """Greet a new customer with the event's welcome code (once, within 20 s; else ``wecom.41051``)."""
    await ctx.client.post("/cgi-bin/externalcontact/send_welcome_msg", json={"welcome_code": inp.welcome_code, **inp.body()})
    return {"sent": True}


class MassInput(Content):
    chat_type: Literal["single", "group"] = "single"
    external_userids: list[str] = Field(default_factory=list, max_length=10000)
    sender: str | None = Field(default=None, description="The member who sends (required for groups).",
                               json_schema_extra=MEMBER_OPTIONS)


@connector.action(
    "create_mass_message", input=MassInput, title={"en": "Create mass-send task", "zh": "创建企业群发"},
    output_schema={"type": "object", "properties": {"msgid": {"type": "string"}, "fail_list": {"type": "array"}},
                   "required": ["msgid", "fail_list"]},
    examples=[{"title": "Two customers of Zhang San", "connection": SANDBOX_CONNECTION,
               "input": {"sender": "zhangsan", "external_userids": ["wmCustomer001", "wmCustomer003"], "text": "双十一优惠"},
               "expect": {"fail_list": ["wmCustomer003"]}}],
)
async def create_mass_message(ctx: ActionContext, inp: MassInput) -> dict[str, Any]:
    """Create a mass-send task (``add_msg_template``); the sender confirms it in the WeCom client.
    Customers it cannot reach are in `fail_list`."""
    body: dict[str, Any] = {"chat_type": inp.chat_type, **inp.body()}
    if inp.external_userids:
        body["external_userid"] = inp.external_userids
    if inp.sender:
        body["sender"] = inp.sender
    answer = await ctx.client.post("/cgi-bin/externalcontact/add_msg_template", json=body)
    return {"msgid": answer["msgid"], "fail_list": answer.get("fail_list") or []}


class ContactWayInput(BaseModel):
    model_config = {"extra": "forbid"}
    type: Literal[1, 2] = Field(default=1, description="1: one member, 2: several.")
    scene: Literal[1, 2] = Field(default=2, description="1: mini-program button, 2: QR code.")
    users: list[str] = Field(default_factory=list, max_length=100, json_schema_extra=MEMBER_OPTIONS)
    parties: list[int] = Field(default_factory=list, max_length=100)
    state: str | None = Field(default=None, max_length=30, description="Your channel code, echoed in the add event.")
    remark: str | None = Field(default=None, max_length=30)
    skip_verify: bool = True
    style: int | None = Field(default=None, ge=1, le=3)

    @model_validator(mode="after")
    def _who(self) -> "ContactWayInput":
        if not self.users and not self.parties:
            raise ValueError("give users or parties")
        if self.type == 1 and (len(self.users) != 1 or self.parties):
            raise ValueError("type 1 takes exactly one member in users")
        return self


@connector.action(
    "create_contact_way", input=ContactWayInput, title={"en": "Create contact way", "zh": "配置客户联系「联系我」方式"},
    output_schema={"type": "object", "properties": {"config_id": {"type": "string"}, "qr_code": {"type": "string"}},
                   "required": ["config_id"]},
    examples=[{"title": "QR code for the expo channel", "connection": SANDBOX_CONNECTION,
               "input": {"users": ["zhangsan"], "state": "expo"}}],
)
async def create_contact_way(ctx: ActionContext, inp: ContactWayInput) -> dict[str, Any]:
    """A "contact me" QR code or button whose `state` tags where new customers come from."""
    body: dict[str, Any] = {"type": inp.type, "scene": inp.scene, "skip_verify": inp.skip_verify}
    for key, value in (("user", inp.users), ("party", inp.parties), ("state", inp.state), ("remark", inp.remark),
                       ("style", inp.style)):
        if value:
            body[key] = value
    answer = await ctx.client.post("/cgi-bin/externalcontact/add_contact_way", json=body)
    return {k: answer[k] for k in ("config_id", "qr_code") if k in answer}


class ConfigInput(BaseModel):
    model_config = {"extra": "forbid"}
    config_id: str = Field(min_length=1)


@connector.action(
    "get_contact_way", input=ConfigInput, title={"en": "Get contact way", "zh": "获取企业已配置的「联系我」方式"},
    output_schema={"type": "object", "properties": {"config_id": {"type": "string"}, "state": {"type": "string"}},
                   "required": ["config_id"]},
    examples=[{"title": "The sandbox's seeded way", "connection": SANDBOX_CONNECTION,
               "input": {"config_id": "sandbox-contact-way"}, "expect": {"config_id": "sandbox-contact-way", "state": "expo"}}],
)
async def get_contact_way(ctx: ActionContext, inp: ConfigInput) -> dict[str, Any]:
    """A contact way's settings (type, scene, members, state, QR code)."""
    return (await ctx.client.post("/cgi-bin/externalcontact/get_contact_way", json={"config_id": inp.config_id}))["contact_way"]
