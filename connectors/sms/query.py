"""`sms.query_send_details`: delivery receipts of sent messages (QuerySendDetails)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from connectors.sdk import ActionContext
from connectors.sms.connector import connector
from connectors.sms.rpc import call
from connectors.sms.send import SANDBOX_CONNECTION

#: SendStatus as the API numbers it.
STATUSES: dict[int, str] = {1: "waiting", 2: "failed", 3: "delivered"}
CHINA = timezone(timedelta(hours=8))


class QueryInput(BaseModel):
    model_config = {"extra": "forbid"}

    phone_number: str = Field(min_length=1, title="Phone number")
    biz_id: str | None = Field(default=None, title="BizId", description="The receipt id send_sms returned (optional).")
    send_date: str | None = Field(default=None, pattern=r"^\d{8}$", title="Send date",
                                  description="yyyyMMdd, within the last 30 days (default: today in China).")
    page_size: int = Field(default=10, ge=1, le=50)
    current_page: int = Field(default=1, ge=1)


class Detail(BaseModel):
    phone_number: str
    status: Literal["waiting", "failed", "delivered", "unknown"]
    err_code: str
    template_code: str
    content: str
    send_date: str | None
    receive_date: str | None
    out_id: str


class QueryResult(BaseModel):
    total_count: int
    details: list[Detail]


def _detail(row: dict[str, Any]) -> dict[str, Any]:
    return {"phone_number": str(row.get("PhoneNum", "")), "status": STATUSES.get(int(row.get("SendStatus", 0)), "unknown"),
            "err_code": row.get("ErrCode") or "", "template_code": row.get("TemplateCode") or "",
            "content": row.get("Content") or "", "send_date": row.get("SendDate"),
            "receive_date": row.get("ReceiveDate"), "out_id": row.get("OutId") or ""}


@connector.action(
    "query_send_details", input=QueryInput, output_schema=QueryResult,
    title={"en": "Query delivery status", "zh": "查询短信发送详情"},
    examples=[{"title": "Nothing sent today", "connection": SANDBOX_CONNECTION,
               "input": {"phone_number": "13800000000"}, "expect": {"total_count": 0, "details": []}}],
)
async def query_send_details(ctx: ActionContext, inp: QueryInput) -> dict[str, Any]:
    """One page of a number's messages on a day, with each message's delivery status."""
    send_date = inp.send_date or datetime.now(CHINA).strftime("%Y%m%d")
    body = await call(ctx, "QuerySendDetails", {"PhoneNumber": inp.phone_number, "BizId": inp.biz_id, "SendDate": send_date,
                                                "PageSize": inp.page_size, "CurrentPage": inp.current_page})
    rows = (body.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
    return {"total_count": int(body.get("TotalCount") or 0), "details": [_detail(row) for row in rows]}
