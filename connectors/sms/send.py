"""`sms.send_sms` and `sms.send_batch_sms`: template messages through SendSms / SendBatchSms."""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field, field_validator

from connectors.sdk import ActionContext
from connectors.sdk.action import ui
from connectors.sms import sandbox as fake
from connectors.sms.connector import connector
from connectors.sms.rpc import call

TemplateValues = dict[str, str | int | float]
SANDBOX_CONNECTION = {"access_key": fake.ACCESS_KEY, "secret_key": fake.SECRET}


def template_json(values: dict[str, Any]) -> str:
    """Template variables as the API wants them: a JSON object of strings (numbers are stringified)."""
    def text(value: str | int | float) -> str:
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    return _compact({k: text(v) for k, v in values.items()})


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class SendSmsInput(BaseModel):
    model_config = {"extra": "forbid"}

    phone_numbers: list[str] | str = Field(min_length=1, max_length=1000, title="Phone numbers",
                                     description="Mainland mobile numbers (a comma-separated string works too); up to 1000.")
    sign_name: str = Field(min_length=1, title="Signature name", json_schema_extra=ui(title_zh="短信签名"))
    template_code: str = Field(min_length=1, title="Template code", json_schema_extra=ui(placeholder="SMS_154950909", title_zh="模板 CODE"))
    template_param: TemplateValues = Field(default_factory=dict, title="Template variables",
                                           description='Values for the template\'s ${var} placeholders, e.g. {"code": "1234"}.')
    out_id: str | None = Field(default=None, max_length=256, description="Your own id, echoed in delivery receipts.")
    sms_up_extend_code: str | None = Field(default=None, pattern=r"^\d{1,12}$", description="Uplink extension code.")

    @field_validator("phone_numbers", mode="after")
    @classmethod
    def _split(cls, value: list[str] | str) -> list[str]:
        numbers = [part.strip() for part in value.split(",")] if isinstance(value, str) else [n.strip() for n in value]
        if not all(numbers) or len(numbers) > 1000:
            raise ValueError("give 1 to 1000 non-empty phone numbers")
        return numbers


class Recipient(BaseModel):
    model_config = {"extra": "forbid"}

    phone_number: str = Field(min_length=1, title="Phone number")
    sign_name: str = Field(min_length=1, title="Signature name")
    template_param: TemplateValues = Field(default_factory=dict, title="Template variables")


class SendBatchInput(BaseModel):
    model_config = {"extra": "forbid"}

    template_code: str = Field(min_length=1, title="Template code")
    messages: list[Recipient] = Field(min_length=1, max_length=100, title="Messages",
                                      description="One entry per number (up to 100), each with its signature and variables.")


class SendResult(BaseModel):
    biz_id: str = Field(description="The send receipt id; give it to query_send_details.")
    request_id: str
    phone_numbers: list[str] = Field(description="The numbers accepted for delivery.")
    code: str


@connector.action(
    "send_sms", input=SendSmsInput, output_schema=SendResult, title={"en": "Send SMS", "zh": "发送短信"},
    examples=[{"title": "A verification code", "connection": SANDBOX_CONNECTION,
               "input": {"phone_numbers": ["13800000000"], "sign_name": fake.SIGN_NAME,
                         "template_code": "SMS_154950909", "template_param": {"code": "4096"}},
               "expect": {"code": "OK", "phone_numbers": ["13800000000"]}}],
)
async def send_sms(ctx: ActionContext, inp: SendSmsInput) -> dict[str, Any]:
    """Send one template message to one or more numbers (SendSms); all share the variables."""
    numbers = list(inp.phone_numbers)
    body = await call(ctx, "SendSms", {
        "PhoneNumbers": ",".join(numbers), "SignName": inp.sign_name, "TemplateCode": inp.template_code,
        "TemplateParam": template_json(inp.template_param) if inp.template_param else None,
        "OutId": inp.out_id, "SmsUpExtendCode": inp.sms_up_extend_code,
    })
    return {"biz_id": body["BizId"], "request_id": body.get("RequestId", ""), "phone_numbers": numbers,
            "code": body["Code"]}


@connector.action(
    "send_batch_sms", input=SendBatchInput, output_schema=SendResult, title={"en": "Send batch SMS", "zh": "批量发送短信"},
    examples=[{"title": "Birthday coupons", "connection": SANDBOX_CONNECTION,
               "input": {"template_code": "SMS_465391234", "messages": [
                   {"phone_number": "13800000001", "sign_name": fake.SIGN_NAME,
                    "template_param": {"name": "张三", "coupon": "BDAY-8Z3K", "expire": "2026-12-31"}},
                   {"phone_number": "13800000002", "sign_name": fake.SIGN_NAME,
                    "template_param": {"name": "李四", "coupon": "BDAY-Q7WD", "expire": "2026-12-31"}}]},
               "expect": {"code": "OK", "phone_numbers": ["13800000001", "13800000002"]}}],
)
async def send_batch_sms(ctx: ActionContext, inp: SendBatchInput) -> dict[str, Any]:
    """Send one template to up to 100 numbers, each with its own signature and variables (SendBatchSms)."""
    body = await call(ctx, "SendBatchSms", {
        "TemplateCode": inp.template_code,
        "PhoneNumberJson": _compact([m.phone_number for m in inp.messages]),
        "SignNameJson": _compact([m.sign_name for m in inp.messages]),
        "TemplateParamJson": "[" + ",".join(template_json(m.template_param) for m in inp.messages) + "]",
    })
    return {"biz_id": body["BizId"], "request_id": body.get("RequestId", ""),
            "phone_numbers": [m.phone_number for m in inp.messages], "code": body["Code"]}
