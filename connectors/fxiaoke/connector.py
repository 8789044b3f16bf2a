"""The `fxiaoke` connector's manifest: connection, HTTP plumbing, error rules, limits and fake."""
from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import BaseModel, Field

from connectors.fxiaoke.auth import FxiaokeCorpTokenAuth, auth_options
from connectors.fxiaoke.sandbox import create_app
from connectors.sdk import Budget, Connector
from connectors.sdk.action import ui
from connectors.sdk.error_rules import parse_body

BASE_URL = "https://open.fxiaoke.com"


class FxiaokeConnection(BaseModel):
    """What an `fxiaoke` connection stores."""

    app_id: str = Field(title="App ID", description="应用 appId (FSAID_…), from the open platform's app page.",
                        json_schema_extra=ui(title_zh="应用 ID", placeholder="FSAID_…"))
    app_secret: str = Field(title="App secret", json_schema_extra=ui(secret=True, title_zh="应用密钥"))
    permanent_code: str = Field(title="Permanent code", description="The corp's permanent authorization code (永久授权码).",
                                json_schema_extra=ui(secret=True, title_zh="永久授权码"))
    open_user_id: str = Field(title="Operating user", description="currentOpenUserId (FSUID_…) the calls act as: "
                              "its data permissions apply and it is recorded as creator.",
                              json_schema_extra=ui(title_zh="操作人 openUserId", placeholder="FSUID_…"))
    base_url: str | None = Field(default=None, pattern=r"^https?://", title="API address",
                                 description=f"Default {BASE_URL}; another Fxiaoke cloud's open-<domain> address.")


#: errorCode → typed error (always HTTP 200). 10001/10002/30001 are the sandbox's codes for
#: what the reference does not publish (see docs/connectors/fxiaoke.md).
ERROR_RULES: list[dict[str, Any]] = [
    {"when": "errorCode == `20016`", "kind": "AuthExpired", "code": "errorCode", "message": "errorMessage"},
    {"when": "errorCode == `30001`", "kind": "RateLimited", "code": "errorCode", "message": "errorMessage", "retry_after": 20},
    {"when": "errorCode == `30002`", "kind": "RateLimited", "code": "errorCode", "message": "errorMessage"},
    {"when": "contains([`10006`, `20017`, `30003`], errorCode)", "kind": "PermissionDenied", "code": "errorCode",
     "message": "errorMessage"},
    {"when": "errorCode == `10001`", "kind": "InvalidInput", "code": "errorCode", "message": "errorMessage"},
    {"when": "errorCode == `10002`", "kind": "NotFound", "code": "errorCode", "message": "errorMessage"},
    {"when": "errorCode != `0`", "kind": "ConnectorError", "code": "errorCode", "message": "errorMessage"},
]

_FIELD = re.compile(r"字段\[([^\]]+)\]")


def parse_answer(response: httpx.Response) -> Any:
    """The JSON answer; an error naming a field (``字段[mobile]``) also gets ``field``, so a
    flow's catch can read ``error.details.body.field``."""
    body = parse_body(response)
    if isinstance(body, dict) and body.get("errorCode") not in (None, 0):
        match = _FIELD.search(str(body.get("errorMessage") or ""))
        if match:
            body["field"] = match.group(1)
    return body


connector = Connector(
    name="fxiaoke",
    version="1.0.0",
    title={"en": "Fxiaoke CRM", "zh": "纷享销客"},
    description="Leads, customers and opportunities in Fxiaoke (纷享销客) CRM: create, update, upsert, query, "
                "assign owners and add follow-up records.",
    categories=("crm",),
    homepage="https://open.fxiaoke.com",
    connection_schema=FxiaokeConnection,
    base_url=BASE_URL,
    auth=FxiaokeCorpTokenAuth.kind,
    auth_options=auth_options,
    error_rules=ERROR_RULES,
    # the platform allows 100 calls per API per 20 s: one budget for the whole connection, with
    # headroom for the skew between our clock and the platform's window
    budget=Budget(90, 20, "fxiaoke"),
    body_parser=parse_answer,
    sandbox=create_app,
)
