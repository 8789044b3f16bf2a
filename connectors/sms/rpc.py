"""One Alibaba Cloud RPC call of the SMS API through the connector's signed client."""
from __future__ import annotations

from typing import Any, Mapping

from connectors.sdk import ActionContext

API_VERSION = "2017-05-25"


async def call(ctx: ActionContext, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Call `action` with `params` (None values dropped); the body of a ``Code == "OK"`` answer.

    Errors become typed step errors by the connector's error rules (flows catch ``sms.<Code>``).
    """
    query = {"Action": action, "Version": API_VERSION, "Format": "JSON",
             "RegionId": (ctx.connection or {}).get("region_id") or "cn-hangzhou"}
    query.update({k: str(v) for k, v in params.items() if v is not None})
    return await ctx.client.post("/", params=query)
