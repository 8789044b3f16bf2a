"""Pagination helpers against a real paging server on 127.0.0.1."""
from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.sdk.paging import (
    CursorPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageRequest,
    PageResponse,
    PagePaginator,
    PaginationError,
    PaginationLimitExceeded,
    http_fetch,
    parse_link_header,
)
from tests.fake_http import ServerThread

RECORDS = [{"id": i} for i in range(23)]


class PagingServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.base_url = ""
        self.app = Starlette(routes=[
            Route("/cursor", self.cursor, methods=["GET", "POST"]),
            Route("/cursor-stuck", self.cursor_stuck),
            Route("/offset", self.offset),
            Route("/page", self.page),
            Route("/link", self.link),
            Route("/next-url", self.next_url),
            Route("/loop-link", self.loop_link),
            Route("/broken", self.broken),
        ])

    async def _record(self, request: Request) -> dict[str, Any]:
        args = dict(request.query_params)
        if request.method == "POST":
            args.update(await request.json())
        self.requests.append({"path": request.url.path, **args})
        return args

    @staticmethod
    def _records(args: dict[str, Any]) -> list[dict[str, Any]]:
        return RECORDS[: int(args.get("total", len(RECORDS)))]

    async def cursor(self, request: Request) -> JSONResponse:
        # pages of `limit`; a full page always has a next cursor, so total=20 ends with an empty page
        args = await self._record(request)
        records, limit = self._records(args), int(args.get("limit", 5))
        start = int(str(args.get("cursor", "c0"))[1:])
        chunk = records[start:start + limit]
        more = len(chunk) == limit
        return JSONResponse({"data": {"items": chunk, "next_cursor": f"c{start + limit}" if more else "", "has_more": more}})

    async def cursor_stuck(self, request: Request) -> JSONResponse:
        await self._record(request)
        return JSONResponse({"data": {"items": [{"id": 1}], "next_cursor": "same", "has_more": True}})

    async def offset(self, request: Request) -> JSONResponse:
        args = await self._record(request)
        records = self._records(args)
        offset, limit = int(args["offset"]), int(args["limit"])
        body: dict[str, Any] = {"results": records[offset:offset + limit]}
        if args.get("with_total") == "1":
            body["total"] = len(records)
        return JSONResponse(body)

    async def page(self, request: Request) -> JSONResponse:
        args = await self._record(request)
        records, size, number = self._records(args), int(args["per_page"]), int(args["page"])
        chunk = records[(number - 1) * size:number * size]
        if args.get("plain") == "1":
            return JSONResponse(chunk)
        return JSONResponse({"list": chunk, "hasMore": number * size < len(records)})

    async def link(self, request: Request) -> JSONResponse:
        args = await self._record(request)
        number = int(args.get("page", 1))
        headers = {}
        if number * 10 < len(RECORDS):
            headers["Link"] = f'</link?page={number + 1}>; rel="next", </link?page=3>; rel="last"'
        return JSONResponse(RECORDS[(number - 1) * 10:number * 10], headers=headers)

    async def next_url(self, request: Request) -> JSONResponse:
        args = await self._record(request)
        number = int(args.get("page", 1))
        nxt = f"{self.base_url}/next-url?page={number + 1}" if number < 3 else None
        return JSONResponse({"items": RECORDS[(number - 1) * 10:number * 10], "paging": {"next": nxt}})

    async def loop_link(self, request: Request) -> JSONResponse:
        await self._record(request)
        return JSONResponse([{"id": 0}], headers={"Link": '</loop-link?x=1>; rel="next"'})

    async def broken(self, request: Request) -> JSONResponse:
        await self._record(request)
        return JSONResponse({"error": "boom"}, status_code=502)


@pytest.fixture(scope="module")
def paging_server():
    fake = PagingServer()
    server = ServerThread(fake.app).start()
    fake.base_url = f"http://127.0.0.1:{server.port}"
    yield fake
    server.stop()


@pytest.fixture()
def srv(paging_server: PagingServer) -> PagingServer:
    paging_server.requests.clear()
    return paging_server


@pytest.fixture()
async def client():
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


def cursor_pager(**kw: Any) -> CursorPaginator:
    return CursorPaginator(cursor_param="cursor", next_cursor="data.next_cursor", items="data.items", **kw)


async def test_cursor_collects_every_item_in_order(srv, client) -> None:
    fetch = http_fetch(client, "GET", f"{srv.base_url}/cursor", params={"limit": 5})
    items = await cursor_pager(has_more="data.has_more").collect(fetch)
    assert items == RECORDS
    assert [r.get("cursor") for r in srv.requests] == [None, "c5", "c10", "c15", "c20"]


async def test_cursor_stops_at_an_empty_last_page(srv, client) -> None:
    fetch = http_fetch(client, "GET", f"{srv.base_url}/cursor", params={"limit": 5, "total": 20})
    assert await cursor_pager().collect(fetch) == RECORDS[:20]
    assert len(srv.requests) == 5  # four full pages, then the empty one


async def test_cursor_params_can_go_in_the_json_body(srv, client) -> None:
    fetch = http_fetch(client, "POST", f"{srv.base_url}/cursor", json={"total": 12}, inject="body")
    pager = cursor_pager(page_size_param="limit", page_size=4)
    assert await pager.collect(fetch) == RECORDS[:12]
    assert [(r.get("cursor"), r["limit"]) for r in srv.requests] == [(None, 4), ("c4", 4), ("c8", 4), ("c12", 4)]


async def test_a_server_repeating_its_cursor_is_stopped_with_a_clear_error(srv, client) -> None:
    fetch = http_fetch(client, "GET", f"{srv.base_url}/cursor-stuck")
    with pytest.raises(PaginationError, match="same cursor 'same' again after page 2"):
        await cursor_pager(has_more="data.has_more").collect(fetch)
    assert len(srv.requests) == 2


async def test_has_more_without_a_cursor_is_an_error(srv) -> None:
    async def fetch(request: PageRequest) -> Any:
        return {"data": {"items": [1], "has_more": True}}

    with pytest.raises(PaginationError, match="gives no next cursor"):
        await cursor_pager(has_more="data.has_more").collect(fetch)


async def test_items_stream_page_by_page(srv, client) -> None:
    fetch = http_fetch(client, "GET", f"{srv.base_url}/cursor", params={"limit": 5})
    stream = cursor_pager().items(fetch)
    first = await stream.__anext__()
    assert first == {"id": 0} and len(srv.requests) == 1  # nothing fetched ahead
    rest = [item async for item in stream]
    assert len(rest) == 22 and len(srv.requests) == 5


async def test_limits_raise_instead_of_truncating(srv, client) -> None:
    fetch = http_fetch(client, "GET", f"{srv.base_url}/cursor", params={"limit": 5})
    pager = cursor_pager()
    with pytest.raises(PaginationLimitExceeded, match="more than 10 items"):
        await pager.collect(fetch, max_items=10)
    with pytest.raises(PaginationLimitExceeded, match="stopped after 3 pages"):
        await pager.collect(fetch, max_pages=3)
    with pytest.raises(PaginationLimitExceeded):
        [item async for item in pager.items(fetch, max_pages=2)]
    assert len(await pager.collect(fetch, max_items=23, max_pages=5)) == 23  # exactly enough is fine


async def test_offset_with_total(srv, client) -> None:
    fetch = http_fetch(client, "GET", f"{srv.base_url}/offset", params={"with_total": 1})
    pager = OffsetPaginator(limit=10, items="results", total="total")
    assert await pager.collect(fetch) == RECORDS
    assert [int(r["offset"]) for r in srv.requests] == [0, 10, 20]


async def test_offset_without_total_stops_at_a_short_or_empty_page(srv, client) -> None:
    pager = OffsetPaginator(offset_param="offset", limit_param="limit", limit=10, items="results")
    assert await pager.collect(http_fetch(client, "GET", f"{srv.base_url}/offset")) == RECORDS
    assert len(srv.requests) == 3  # 10, 10, 3 (short: the last)
    srv.requests.clear()
    assert await pager.collect(http_fetch(client, "GET", f"{srv.base_url}/offset", params={"total": 20})) == RECORDS[:20]
    assert len(srv.requests) == 3  # 10, 10, then an empty page


async def test_offset_ignored_by_the_server_is_caught(srv) -> None:
    async def fetch(request: PageRequest) -> Any:
        return {"items": [{"id": 1}, {"id": 2}]}  # always the first page

    with pytest.raises(PaginationError, match="same page of items again"):
        await OffsetPaginator(limit=2).collect(fetch)


async def test_page_number_with_has_more_and_plain_lists(srv, client) -> None:
    pager = PagePaginator(page_param="page", size_param="per_page", size=10, items="list", has_more="hasMore")
    assert await pager.collect(http_fetch(client, "GET", f"{srv.base_url}/page")) == RECORDS
    assert [int(r["page"]) for r in srv.requests] == [1, 2, 3]
    srv.requests.clear()
    plain = PagePaginator(size_param="per_page", size=5, items="@")
    assert await plain.collect(http_fetch(client, "GET", f"{srv.base_url}/page", params={"plain": 1, "total": 20})) == RECORDS[:20]
    assert [int(r["page"]) for r in srv.requests] == [1, 2, 3, 4, 5]  # the fifth page is empty


async def test_page_number_with_total_pages() -> None:
    calls = []

    async def fetch(request: PageRequest) -> Any:
        calls.append(request.params["p"])
        return PageResponse(body={"rows": [request.params["p"]] * 2, "pages": 3})

    pager = PagePaginator(page_param="p", size_param=None, size=50, start=0, items="rows", total_pages="pages")
    assert await pager.collect(fetch) == [0, 0, 1, 1, 2, 2]
    assert calls == [0, 1, 2]


async def test_link_header_with_relative_urls(srv, client) -> None:
    fetch = http_fetch(client, "GET", f"{srv.base_url}/link")
    assert await NextUrlPaginator(items="@").collect(fetch) == RECORDS
    assert [r.get("page") for r in srv.requests] == [None, "2", "3"]


async def test_next_url_in_the_body(srv, client) -> None:
    fetch = http_fetch(client, "GET", f"{srv.base_url}/next-url", headers={"X-Token": "t"})
    assert await NextUrlPaginator(next_url="paging.next").collect(fetch) == RECORDS
    assert len(srv.requests) == 3


async def test_a_link_to_the_same_page_is_stopped(srv, client) -> None:
    fetch = http_fetch(client, "GET", f"{srv.base_url}/loop-link")
    with pytest.raises(PaginationError, match="same next URL"):
        await NextUrlPaginator(items="@").collect(fetch)
    assert len(srv.requests) == 2


async def test_http_errors_and_bad_items(srv, client) -> None:
    with pytest.raises(PaginationError, match="HTTP 502") as info:
        await cursor_pager().collect(http_fetch(client, "GET", f"{srv.base_url}/broken"))
    assert info.value.status == 502

    async def fetch(request: PageRequest) -> Any:
        return {"items": {"not": "a list"}}

    with pytest.raises(PaginationError, match="not a list"):
        await CursorPaginator().collect(fetch)


async def test_callable_extractors_and_a_reused_declaration() -> None:
    pages = {None: {"rows": [1, 2], "next": "b"}, "b": {"rows": [3], "next": None}}

    async def fetch(request: PageRequest) -> Any:
        return pages[request.params.get("after")]

    pager = CursorPaginator(cursor_param="after", next_cursor=lambda b: b["next"], items=lambda b: b["rows"])
    assert await pager.collect(fetch) == [1, 2, 3]
    assert await pager.collect(fetch) == [1, 2, 3]  # per-iteration state does not leak between runs


def test_parse_link_header() -> None:
    value = '<https://api.x/items?page=2>; rel="next", <https://api.x/items?page=9>; rel=last, <https://api.x/a>; rel="prev first"'
    assert parse_link_header(value) == {
        "next": "https://api.x/items?page=2",
        "last": "https://api.x/items?page=9",
        "prev": "https://api.x/a",
        "first": "https://api.x/a",
    }
    assert parse_link_header(None) == {}
