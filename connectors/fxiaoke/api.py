"""Calls to Fxiaoke's CRM data API shared by the actions (the body envelope and paging)."""
from __future__ import annotations

from typing import Any, Literal

from connectors.sdk import ActionContext, OffsetPaginator, PageRequest
from engine.errors import InvalidInput

#: Preset objects the connector works with (API names).
ObjectName = Literal["LeadsObj", "AccountObj", "NewOpportunityObj"]

DATA = "/cgi/crm/v2/data"
PAGE_SIZE = 100  # the platform's maximum `limit`
MAX_OFFSET = 10_000  # the platform refuses deeper offsets


async def crm(ctx: ActionContext, operation: str, data: dict[str, Any], **top: Any) -> dict[str, Any]:
    """POST ``/cgi/crm/v2/data/<operation>`` as the connection's operating user; the answer.

    The auth adds ``corpAccessToken`` and ``corpId``; errors arrive typed from the error rules.
    """
    user = (ctx.connection or {}).get("open_user_id")
    if not user:
        raise InvalidInput("the fxiaoke connection has no open_user_id (the FSUID_… the calls act as)")
    return await ctx.client.post(f"{DATA}/{operation}", json={"currentOpenUserId": user, "data": data, **top})


async def create(ctx: ActionContext, api_name: str, fields: dict[str, Any], *, approval: bool = True,
                 workflow: bool = True) -> str:
    """Create one record; its id."""
    answer = await crm(ctx, "create", {"object_data": {"dataObjectApiName": api_name, **fields}},
                       triggerApprovalFlow=approval, triggerWorkFlow=workflow)
    return str(answer["dataId"])


async def update(ctx: ActionContext, api_name: str, record_id: str, fields: dict[str, Any]) -> str:
    """Update fields of one record (not its owner: see :func:`change_owner`); its id."""
    await crm(ctx, "update", {"object_data": {"dataObjectApiName": api_name, "_id": record_id, **fields}})
    return record_id


async def change_owner(ctx: ActionContext, api_name: str, record_ids: list[str], owner_id: str) -> None:
    """Give records a new owner (负责人)."""
    await crm(ctx, "changeOwner", {"dataObjectApiName": api_name,
                                   "Data": [{"objectDataId": rid, "ownerId": [owner_id]} for rid in record_ids]})


async def get(ctx: ActionContext, api_name: str, record_id: str) -> dict[str, Any]:
    """One record by id (NotFound when there is none)."""
    return (await crm(ctx, "get", {"dataObjectApiName": api_name, "objectDataId": record_id}))["data"]


async def query(ctx: ActionContext, api_name: str, filters: list[dict[str, Any]], orders: list[dict[str, Any]],
                max_records: int, fields: list[str] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Every record matching `filters` (pages of 100 until the last), and the total.

    Raises InvalidInput when more than `max_records` match (nothing is truncated silently).
    """
    info: dict[str, Any] = {"filters": filters, "orders": orders}
    if fields:
        info["fieldProjection"] = fields
    total: list[int] = []

    async def fetch(page: PageRequest) -> dict[str, Any]:
        if page.params["offset"] > MAX_OFFSET:
            raise InvalidInput(f"more than {MAX_OFFSET} records match: narrow the filters (Fxiaoke pages no deeper)")
        answer = await crm(ctx, "query", {"dataObjectApiName": api_name,
                                          "search_query_info": {**info, **page.params}})
        total.append(int(answer["data"]["total"]))
        if total[-1] > max_records:
            raise InvalidInput(f"{total[-1]} records match, more than max_records ({max_records}): narrow the filters "
                               "or raise max_records")
        return answer

    pager = OffsetPaginator(limit=PAGE_SIZE, items="data.dataList", total="data.total")
    records = await pager.collect(fetch, max_items=max_records)
    return records, (total[-1] if total else 0)
