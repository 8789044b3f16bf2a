"""The `sms` connector's manifest: Alibaba Cloud SMS (dysmsapi) with RPC request signing."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from connectors.sdk import Connector
from connectors.sdk.action import ui
from connectors.sms.errors import ERROR_RULES
from connectors.sms.signing import sign_request

ENDPOINT = "https://dysmsapi.aliyuncs.com"


class SmsConnection(BaseModel):
    """What an `sms` connection holds (RAM user AccessKey with AliyunDysmsFullAccess)."""

    access_key: str = Field(title="AccessKey ID", description="RAM console → Users → AccessKey (e.g. LTAI5t...).")
    secret_key: str = Field(title="AccessKey secret", json_schema_extra=ui(secret=True, title_zh="AccessKey Secret"))
    region_id: str = Field(default="cn-hangzhou", title="Region", description="RegionId sent with each call.")
    base_url: str | None = Field(default=None, pattern=r"^https?://",
                                 description=f"Endpoint override (default {ENDPOINT}; the sandbox's address in tests).")


def _sandbox() -> Any:
    from connectors.sms.sandbox import app

    return app()


connector = Connector(
    name="sms",
    version="1.0.0",
    title={"en": "Alibaba Cloud SMS", "zh": "阿里云短信"},
    description="Send template SMS through Alibaba Cloud SMS (SendSms, SendBatchSms) and read delivery receipts.",
    categories=("communication",),
    homepage="https://help.aliyun.com/zh/sms/",
    connection_schema=SmsConnection,
    base_url=ENDPOINT,
    auth="signed",
    auth_options={"sign": sign_request},
    error_rules=ERROR_RULES,
    sandbox=_sandbox,
)
