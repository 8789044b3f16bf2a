"""``custom_api_call`` on either DingTalk host, with that host's token, error rules and budget."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from connectors.dingtalk.base import connector
from connectors.dingtalk.client import api_rate_key, new_api_client
from connectors.dingtalk.examples import SANDBOX_CONNECTION
from connectors.sdk import ActionContext
from connectors.sdk.action import CUSTOM_API_CALL, CUSTOM_CALL_RETRY, CustomApiCallInput
from engine.errors import InvalidInput


class DingTalkApiCallInput(CustomApiCallInput):
    api: Literal["oapi", "api"] = Field(default="oapi", title="API",
                                        description="oapi: oapi.dingtalk.com (access_token query); "
                                                    "api: api.dingtalk.com (x-acs-dingtalk-access-token header).")


@connector.action(
    CUSTOM_API_CALL, input=DingTalkApiCallInput, title={"en": "Custom API call", "zh": "自定义 API 调用"},
    output_schema={"type": "object", "properties": {"status": {"type": "integer"}, "headers": {"type": "object"},
                                                    "body": {}}, "required": ["status", "headers", "body"]},
    default_retry=CUSTOM_CALL_RETRY,
    examples=[
        {"title": "Old API: a user", "connection": SANDBOX_CONNECTION,
         "input": {"method": "POST", "path": "/topapi/v2/user/get", "json": {"userid": "user003"}},
         "expect": {"status": 200, "body": {"errcode": 0, "result": {"userid": "user003"}}}},
        {"title": "New API: an approval", "connection": SANDBOX_CONNECTION,
         "input": {"api": "api", "method": "GET", "path": "/v1.0/workflow/processInstances",
                   "query": {"processInstanceId": "sandbox-instance-0001"}},
         "expect": {"status": 200, "body": {"result": {"status": "RUNNING"}}}},
    ],
)
async def custom_api_call(ctx: ActionContext, inp: DingTalkApiCallInput) -> dict[str, Any]:
    """Call any DingTalk endpoint with the app's token; returns status, headers and body."""
    client = ctx.client if inp.api == "oapi" else new_api_client(ctx)
    if inp.url is not None:
        raise InvalidInput("args.url: give a path; `api` chooses the DingTalk host")
    path = str(inp.path)
    if path.startswith(("http://", "https://")):
        raise InvalidInput("args.path: give a path relative to the chosen API host")
    response = await client.request_full(inp.method, path, params=inp.query or None, json=inp.json_body,
                                         content=inp.body, headers=inp.headers, timeout=inp.timeout,
                                         rate_key=api_rate_key(client, path))
    return {"status": response.status, "headers": dict(response.headers), "body": response.body}
