"""Calling K3Cloud's DynamicFormService through the connector's client.

The body is the SDKs' positional form ``{"parameters": [formId, dataJsonString]}``
(ExecuteBillQuery: ``[dataJsonString]``); errors are typed by the connector's error rules.
"""
from __future__ import annotations

import json
from typing import Any

from connectors.sdk.client import ConnectorClient
from connectors.sdk.paging import OffsetPaginator, PageRequest, PageResponse, PaginationLimitExceeded

SERVICE = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService"


def service_path(op: str) -> str:
    """The path of a DynamicFormService operation, relative to the K3Cloud base URL."""
    return f"{SERVICE}.{op}.common.kdsvc"


async def call(client: ConnectorClient, op: str, form_id: str | None, data: dict[str, Any]) -> Any:
    """Run operation `op` on form `form_id` (None for ExecuteBillQuery) with `data`."""
    text = json.dumps(data, ensure_ascii=False)
    parameters = [text] if form_id is None else [form_id, text]
    return await client.post(service_path(op), json={"parameters": parameters})


async def bill_query(client: ConnectorClient, form_id: str, field_keys: list[str], *, filter_string: str = "",
                     order_string: str = "", page_size: int = 2000, max_rows: int = 100_000,
                     top_row_count: int = 0, stop_at_max: bool = False) -> list[list[Any]]:
    """Every row of an ExecuteBillQuery, fetched ``StartRow``/``Limit`` page by page.

    More than `max_rows` rows raise PaginationLimitExceeded, or with `stop_at_max` return the
    first `max_rows` (a poll takes the rest next time).
    """
    query = {"FormId": form_id, "FieldKeys": ",".join(field_keys), "FilterString": filter_string,
             "OrderString": order_string, "TopRowCount": top_row_count}

    async def fetch(request: PageRequest) -> PageResponse:
        """One page of rows, numbered from its start row."""
        start = request.params["StartRow"]
        rows = await call(client, "ExecuteBillQuery", None, {**query, **request.params})
        # numbered rows: two pages of equal rows (one column, say) are not "the same page again" to the repeat guard
        return PageResponse([{"n": start + i, "row": row} for i, row in enumerate(rows if isinstance(rows, list) else [])])

    pager = OffsetPaginator(offset_param="StartRow", limit_param="Limit", limit=page_size, items=None)
    rows: list[list[Any]] = []
    async for item in pager.items(fetch, max_pages=None):
        if len(rows) >= max_rows:
            if stop_at_max:
                break
            raise PaginationLimitExceeded(f"kingdee: the query has more than {max_rows} rows; raise max_rows or narrow the filter",
                                          connector="kingdee")
        rows.append(item["row"])
    return rows


def rows_as_objects(field_keys: list[str], rows: list[list[Any]]) -> list[dict[str, Any]]:
    """Rows (lists in FieldKeys order) as objects keyed by field key."""
    return [dict(zip(field_keys, row)) for row in rows]
