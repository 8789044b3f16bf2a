"""The `dingtalk` connector object: identity, connection fields and HTTP plumbing as data.

Actions and triggers are registered on it by the sibling modules (see ``__init__``).
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from connectors.dingtalk import client
from connectors.dingtalk.connection_test import test_connection
from connectors.dingtalk.sandbox import sandbox
from connectors.sdk import Connector
from connectors.sdk.action import ui

__version__ = "1.0.0"

_ICON = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
    "<rect width='16' height='16' rx='4' fill='%230089ff'/></svg>"
)


class DingTalkConnection(BaseModel):
    """A `dingtalk` connection: an internal app's credentials, its event subscription, and/or a custom robot."""

    app_key: str | None = Field(default=None, title="AppKey (Client ID)",
                                description="Developer console > 应用开发 > your app > 凭证与基础信息.",
                                json_schema_extra=ui(title_zh="AppKey"))
    app_secret: str | None = Field(default=None, title="AppSecret (Client Secret)",
                                   json_schema_extra=ui(secret=True, title_zh="AppSecret"))
    agent_id: int | None = Field(default=None, title="AgentId", description="The app's AgentId, for work notifications.",
                                 json_schema_extra=ui(title_zh="AgentId"))
    callback_token: str | None = Field(default=None, title="Callback token",
                                       description="事件订阅 > 加密 aes_key / 签名 token: the token.",
                                       json_schema_extra=ui(secret=True, title_zh="签名 Token"))
    callback_aes_key: str | None = Field(default=None, title="Callback aes_key", description="43 characters.",
                                         json_schema_extra=ui(secret=True, title_zh="加密 aes_key"))
    callback_owner_key: str | None = Field(default=None, title="Callback owner key",
                                           description="Receive id of the callbacks: the AppKey (default) for console "
                                                       "subscriptions, the CorpId for register_call_back, the SuiteKey for ISV apps.")
    robot_access_token: str | None = Field(default=None, title="Robot access_token",
                                           description="From the group robot's Webhook URL (…/robot/send?access_token=…).",
                                           json_schema_extra=ui(secret=True, title_zh="机器人 access_token"))
    robot_secret: str | None = Field(default=None, title="Robot sign secret",
                                     description="加签 secret (starts with SEC); leave empty for keyword/IP security.",
                                     json_schema_extra=ui(secret=True, title_zh="加签密钥"))
    base_url: str | None = Field(default=None, title="oapi base URL", description="Default https://oapi.dingtalk.com.")
    api_base_url: str | None = Field(default=None, title="New API base URL",
                                     description="Default https://api.dingtalk.com (or base_url when that is set).")


connector = Connector(
    name=client.NAME,
    version=__version__,
    title={"en": "DingTalk", "zh": "钉钉"},
    description="Send DingTalk robot and work notifications, look up users and departments, start approvals and "
                "react to DingTalk events (approval changes, contacts, chat).",
    icon=_ICON,
    categories=("communication", "collaboration", "cn"),
    connection_kinds=("app_token",),
    connection_schema=DingTalkConnection,
    homepage="https://open.dingtalk.com",
    base_url=client.OAPI_BASE,
    auth="app_token",
    auth_options=client.oapi_auth_options,
    error_rules=client.OAPI_RULES,
    budget=client.BUDGET,
    sandbox=sandbox,
)
#: The connections API calls ``connector.test(fields)`` when a connector defines it.
connector.test = test_connection  # type: ignore[attr-defined]
