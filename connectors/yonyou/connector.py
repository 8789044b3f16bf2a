"""The ``yonyou`` connector's manifest: identity, connection, HTTP plumbing and sandbox."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from connectors.sdk import Connector
from connectors.sdk.action import ui
from connectors.yonyou.auth import signed_token_fetcher
from connectors.yonyou.errors import ERROR_RULES
from connectors.yonyou.sandbox import create_app
from engine.errors import InvalidInput


class YonyouConnection(BaseModel):
    """What a ``yonyou`` connection stores."""

    base_url: str = Field(title="Gateway URL", pattern=r"^https?://",
                          description="Your data center's gatewayUrl (open-auth/dataCenter/getGatewayAddress), "
                                      "e.g. https://c2.yonyoucloud.com/iuap-api-gateway.",
                          json_schema_extra=ui(placeholder="https://c2.yonyoucloud.com/iuap-api-gateway", title_zh="网关地址"))
    app_key: str = Field(title="App key", json_schema_extra=ui(title_zh="应用 AppKey"))
    app_secret: str = Field(title="App secret", json_schema_extra=ui(secret=True, title_zh="应用 AppSecret"))


def _auth_options(base_url: str | None) -> dict[str, Any]:
    if not base_url:
        raise InvalidInput("yonyou: the connection needs base_url, the data center's gateway URL")
    return {"fetch_token": signed_token_fetcher(base_url)}


connector = Connector(
    name="yonyou",
    version="0.1.0",
    title={"en": "Yonyou YonBIP", "zh": "用友 YonBIP"},
    description="Sales orders, customers and materials in Yonyou YonBIP / YonSuite through its open platform.",
    categories=("erp",),
    connection_schema=YonyouConnection,
    homepage="https://open.yonyoucloud.com/",
    auth="app_token",
    auth_options=_auth_options,
    error_rules=ERROR_RULES,
    sandbox=create_app,
)
