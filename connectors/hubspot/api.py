"""Calls to HubSpot's CRM objects API shared by the actions."""
from __future__ import annotations

from typing import Any, Literal

from connectors.sdk import ActionContext, CursorPaginator, PageRequest
from engine.errors import InvalidInput

ObjectType = Literal["contacts", "companies", "deals"]

OBJECTS = "/crm/v3/objects"
SEARCH_PAGE = 200  # the search API's maximum `limit`
SEARCH_CAP = 10_000  # the search API returns no more than this


def properties_with_owner(properties: dict[str, Any], owner_id: str | None) -> dict[str, Any]:
    """`properties` with ``hubspot_owner_id`` set when an owner is given."""
    return {**properties, "hubspot_owner_id": owner_id} if owner_id is not None else dict(properties)


def record(answer: dict[str, Any]) -> dict[str, Any]:
    """A record as the actions return it: HubSpot's shape without batch bookkeeping."""
    return {key: answer[key] for key in ("id", "properties", "createdAt", "updatedAt", "archived") if key in answer}


async def search(ctx: ActionContext, object_type: str, body: dict[str, Any], max_records: int) -> tuple[list[Any], int]:
    """Every result of a search (pages of 200 following ``paging.next.after``), and the total.

    Fails with InvalidInput when more than `max_records` (or HubSpot's 10 000 cap) match.
    """
    totals: list[int] = []

    async def fetch(page: PageRequest) -> dict[str, Any]:
        answer = await ctx.client.post(f"{OBJECTS}/{object_type}/search", json={**body, "limit": SEARCH_PAGE, **page.params})
        totals.append(int(answer.get("total", 0)))
        if totals[-1] > min(max_records, SEARCH_CAP):
            cap = "HubSpot's search cap" if totals[-1] > SEARCH_CAP and max_records >= SEARCH_CAP else "max_records"
            raise InvalidInput(f"{totals[-1]} {object_type} match, more than {cap} ({min(max_records, SEARCH_CAP)}): "
                               "narrow the filters")
        return answer

    pager = CursorPaginator(cursor_param="after", next_cursor="paging.next.after", items="results")
    results = await pager.collect(fetch, max_items=max_records)
    return results, (totals[-1] if totals else 0)
