"""The WeCom connector's manifest: connection, token auth, error codes, rate budget, sandbox.

Actions live in the sibling modules (messages, directory, customers, tags, outreach) and
register themselves on :data:`connector`; the callback trigger is in ``callback``.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from connectors.sdk import Budget, Connector, token_endpoint
from connectors.sdk.action import ui
from connectors.wecom.sandbox import create_app

BASE_URL = "https://qyapi.weixin.qq.com"

#: editor hint for a member userid field: choices from list_department_members of the root
MEMBER_OPTIONS = ui(options={"action": "list_department_members", "args": {"department_id": 1, "fetch_child": True},
                             "items": "users", "value": "userid", "label": "name"})

#: WeCom answers HTTP 200 with a non-zero ``errcode``; these rules type the codes (flows
#: catch ``wecom.<errcode>``). Tokens: 40014 invalid, 42001 expired, 40001 rejected,
#: 41001 missing: refresh once and retry.
ERROR_RULES: list[dict[str, Any]] = [
    {"when": "contains([`45009`, `45033`, `45011`], errcode)", "kind": "RateLimited", "code": "errcode", "message": "errmsg"},
    {"when": "errcode == `-1`", "kind": "Transient", "code": "errcode", "message": "errmsg"},
    {"when": "contains([`40014`, `42001`, `40001`, `41001`], errcode)", "kind": "AuthExpired", "code": "errcode",
     "message": "errmsg"},
    {"when": "contains([`48002`, `48001`, `60020`, `60011`, `93000`], errcode)", "kind": "PermissionDenied",
     "code": "errcode", "message": "errmsg"},
    {"when": "contains([`60111`, `46004`, `60123`, `40096`, `84061`, `40068`, `41044`], errcode)", "kind": "NotFound",
     "code": "errcode", "message": "errmsg"},
    {"when": "contains([`40058`, `41009`, `41011`, `44004`, `40008`, `40007`, `47001`, `40056`, `81013`, `45002`, "
             "`40071`, `40004`, `40006`, `41005`, `40009`, `41051`, `43001`, `43002`], errcode)",
     "kind": "InvalidInput", "code": "errcode", "message": "errmsg"},
    {"when": "errcode != null && errcode != `0`", "kind": "ConnectorError", "code": "errcode", "message": "errmsg"},
]

#: gettoken's answers, in words a person fixing the connection understands.
TOKEN_RULES: list[dict[str, Any]] = [
    {"when": "errcode == `40001`", "kind": "PermissionDenied", "code": "errcode",
     "message": "join('', ['the app secret is wrong for this corp ID (check the Secret on the app page): ', errmsg])"},
    {"when": "errcode == `40013`", "kind": "PermissionDenied", "code": "errcode",
     "message": "join('', ['the corp ID is wrong (My Company > Company Info): ', errmsg])"},
    {"when": "contains([`45009`, `45033`], errcode)", "kind": "RateLimited", "code": "errcode", "message": "errmsg"},
    {"when": "errcode == `-1`", "kind": "Transient", "code": "errcode", "message": "errmsg"},
    {"when": "errcode != null && errcode != `0`", "kind": "PermissionDenied", "code": "errcode", "message": "errmsg"},
]

#: Per corp and API WeCom allows 10 000 calls a minute (older documents: 1 000); we stay
#: under the older figure per connection, shared by every run and worker.
BUDGET = Budget(1000, 60.0, "wecom")


class WeComConnection(BaseModel):
    """A self-built app of one corp (several apps or corps: one connection each)."""

    corp_id: str = Field(title="Corp ID (企业ID)", min_length=1,
                         description="Admin console: My Company > Company Info > Corp ID (我的企业 > 企业信息 > 企业ID).")
    app_secret: str = Field(title="App secret (Secret)", min_length=1, json_schema_extra=ui(secret=True),
                            description="Admin console: App Management > your app > Secret (应用管理 > 应用 > Secret).")
    agent_id: int | None = Field(default=None, title="Agent ID (AgentId)",
                                 description="The app's AgentId on the same page; app messages are sent as this app.")
    token: str | None = Field(default=None, title="Callback Token", json_schema_extra=ui(secret=True),
                              description="App page > Receive Messages > Set API Receive (接收消息 > 设置API接收): Token.")
    encoding_aes_key: str | None = Field(default=None, title="Callback EncodingAESKey", min_length=43, max_length=43,
                                         json_schema_extra=ui(secret=True),
                                         description="The 43-character EncodingAESKey on the same page.")
    base_url: str | None = Field(default=None, pattern=r"^https?://",
                                 description="Only for a proxy or the sandbox; default https://qyapi.weixin.qq.com.")


@lru_cache(maxsize=64)
def auth_options(base_url: str | None) -> dict[str, Any]:
    """``gettoken`` with the connection's corp ID and app secret (one fetcher per base URL)."""
    root = (base_url or BASE_URL).rstrip("/")
    fetch = token_endpoint(f"{root}/cgi-bin/gettoken", params={"corpid": "{app_id}", "corpsecret": "{app_secret}"},
                           error_rules=TOKEN_RULES, connector="wecom")
    return {"fetch_token": fetch}


connector = Connector(
    name="wecom",
    version="1.0.0",
    title={"en": "WeCom", "zh": "企业微信"},
    description="WeCom (企业微信) self-built apps: app messages, members, customer contact (SCRM) and callbacks.",
    categories=("communication", "crm"),
    homepage="https://developer.work.weixin.qq.com/document/path/90664",
    connection_schema=WeComConnection,
    base_url=BASE_URL,
    auth="app_token",
    auth_options=auth_options,
    error_rules=ERROR_RULES,
    budget=BUDGET,
    sandbox=create_app,
)


def agent_id_of(ctx: Any, given: int | None) -> int:
    """The app to send as: the step's `agent_id`, else the connection's."""
    from engine.errors import InvalidInput

    agent = given if given is not None else (ctx.connection or {}).get("agent_id")
    if agent in (None, ""):
        raise InvalidInput("args.agent_id: give agent_id, or set agent_id on the WeCom connection")
    try:
        return int(agent)
    except (TypeError, ValueError):
        raise InvalidInput(f"agent_id must be a number, not {agent!r}") from None
