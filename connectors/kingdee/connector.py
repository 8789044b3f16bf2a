"""The ``kingdee`` connector's manifest: identity, connection, HTTP plumbing and sandbox."""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from connectors.kingdee import auth as _auth  # noqa: F401 - registers the kingdee_* auth kinds
from connectors.kingdee.api import service_path
from connectors.kingdee.errors import ERROR_RULES
from connectors.kingdee.sandbox import create_app
from connectors.sdk import ConnectionTest, Connector
from connectors.sdk.action import build_client, ui


class KingdeeConnection(BaseModel):
    """What a ``kingdee`` connection stores."""

    auth: Literal["kingdee_session", "kingdee_signed"] = Field(
        default="kingdee_session", title="Authentication",
        description="kingdee_session: LoginByAppSecret session cookies; kingdee_signed: X-Api/X-Kd signed headers per request.")
    base_url: str = Field(title="Server URL", pattern=r"^https?://",
                          description="The K3Cloud site, e.g. http://erp.example.com/K3Cloud or https://tenant.ik3cloud.com/k3cloud.",
                          json_schema_extra=ui(placeholder="http://erp.example.com/K3Cloud", title_zh="服务器地址"))
    acct_id: str = Field(title="Data center ID", json_schema_extra=ui(title_zh="账套ID"))
    username: str = Field(title="User name", json_schema_extra=ui(title_zh="用户名"))
    app_id: str = Field(title="App ID", json_schema_extra=ui(title_zh="应用ID"))
    app_secret: str = Field(title="App secret", json_schema_extra=ui(secret=True, title_zh="应用密钥"))
    lcid: int = Field(default=2052, title="Language (LCID)", description="2052 Simplified Chinese, 1033 English.")
    org_num: str = Field(default="0", title="Organisation number", description="Signed requests only (0: the user's default).")


def _auth_options(base_url: str | None) -> dict[str, Any]:
    return {"server_url": base_url} if base_url else {}


connector = Connector(
    name="kingdee",
    version="0.1.0",
    title={"en": "Kingdee K3Cloud", "zh": "金蝶云星空"},
    description="Bills in Kingdee K3Cloud (金蝶云星空) through its WebAPI: save, view, query, submit, audit, delete; "
                "poll new or changed bills.",
    categories=("erp",),
    connection_kinds=("kingdee_session", "kingdee_signed"),
    connection_schema=KingdeeConnection,
    homepage="https://openapi.open.kingdee.com/",
    auth="kingdee_session",
    auth_options=_auth_options,
    error_rules=ERROR_RULES,
    sandbox=create_app,
)


async def test_connection(fields: dict[str, Any]) -> ConnectionTest:
    """Check a connection with either kind: log in (session) and read one customer number.

    A signed connection has nothing to verify without a call, so both kinds make one.
    """
    client = build_client(connector, fields)
    query = json.dumps({"FormId": "BD_Customer", "FieldKeys": "FNumber", "TopRowCount": 1, "Limit": 1})
    return await client.test_connection("POST", service_path("ExecuteBillQuery"), json={"parameters": [query]})


connector.test = test_connection  # type: ignore[attr-defined]  # read by POST /api/connections/{name}/test
