"""The `douyin` connector: the Douyin (抖音) Open Platform for a business account.

Actions read the account's profile, videos and comments, reply to comments and private
messages; callback triggers receive comments, new followers, private messages and lead
pushes at ``/hooks/douyin/<path>``. See docs/connectors/douyin.md.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from connectors.douyin import actions
from connectors.douyin.auth import DEFAULT_BASE_URL, DouyinClientTokenAuth, DouyinUserAuth
from connectors.douyin.errors import DOUYIN_RULES
from connectors.douyin.sandbox import sandbox
from connectors.douyin.webhook import TRIGGERS
from connectors.sdk import Connector, add_trigger
from connectors.sdk.action import ui


class DouyinConnection(BaseModel):
    """What a `douyin` connection stores."""

    auth: Literal["douyin_oauth", "douyin_client_token"] = Field(default="douyin_oauth", description="douyin_oauth (an authorized account, the default) "
                      "or douyin_client_token (app-level APIs only).")
    client_key: str = Field(title="Client key", description="Douyin Open Platform console > your app > client_key.",
                            json_schema_extra=ui(title_zh="应用 Client Key"))
    client_secret: str = Field(title="Client secret", description="The app's client_secret; also checks webhook signatures.",
                               json_schema_extra=ui(secret=True, title_zh="应用 Client Secret"))
    refresh_token: str | None = Field(default=None, title="Refresh token",
                                      description="From /oauth/access_token/ when the account authorized the app.",
                                      json_schema_extra=ui(secret=True, title_zh="刷新令牌"))
    open_id: str | None = Field(default=None, title="Open ID", description="The authorized account's open_id.",
                                json_schema_extra=ui(title_zh="账号 open_id"))
    base_url: str | None = Field(default=None, pattern=r"^https?://", description=f"Default {DEFAULT_BASE_URL}.")


connector = Connector(
    name="douyin",
    version="1.0.0",
    title={"en": "Douyin", "zh": "抖音开放平台"},
    description="Videos, comments, private messages and leads of a Douyin business account.",
    categories=("social", "marketing"),
    homepage="https://developer.open-douyin.com",
    base_url=DEFAULT_BASE_URL,
    auth=DouyinUserAuth.kind,
    connection_kinds=(DouyinUserAuth.kind, DouyinClientTokenAuth.kind),
    connection_schema=DouyinConnection,
    error_rules=DOUYIN_RULES,
    sandbox=sandbox,
)
actions.register(connector)
for trigger in TRIGGERS:
    add_trigger(connector, trigger)

__all__ = ["connector"]
