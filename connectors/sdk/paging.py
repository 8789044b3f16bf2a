"""Pagination helpers for actions (in the style of Airbyte's declarative paginators).

An action supplies one async *fetch* callable that gets a :class:`PageRequest` (the paging
parameters to add to its request, or the absolute URL of the next page) and returns the
page: an ``httpx.Response``, a :class:`PageResponse`, or the parsed JSON body. A paginator
turns it into a stream of items::

    pager = CursorPaginator(cursor_param="cursor", next_cursor="next_cursor", items="list", has_more="has_more")
    async for user in pager.items(lambda req: client.get(url, params={**query, **req.params})):
        ...
    users = await pager.collect(fetch, max_items=5000)

Strategies: :class:`CursorPaginator` (cursor / next_cursor), :class:`OffsetPaginator`
(offset / limit), :class:`PagePaginator` (page number), :class:`NextUrlPaginator` (a next
URL in the body or the ``Link`` header). Expressions (`items`, `next_cursor`, ...) are
JMESPath over the JSON body, or callables taking it.

Nothing is truncated silently: going past `max_pages` (or `max_items` in :meth:`collect`)
while the server still has more raises :class:`PaginationLimitExceeded`; a server that
returns the same cursor, URL or page again raises :class:`PaginationError`.
"""
from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping
from urllib.parse import urljoin

import httpx
import orjson

from engine.errors import ConnectorError
from engine.expressions import compile_expression

#: Default safety limits.
DEFAULT_MAX_PAGES = 1000
DEFAULT_MAX_ITEMS = 100_000


class PaginationError(ConnectorError):
    """The server's paging is inconsistent (same cursor again, has_more without a cursor ...)."""


class PaginationLimitExceeded(PaginationError):
    """More pages or items exist than the caller's safety limit allows."""


@dataclass
class PageRequest:
    """What to ask for: `params` to add to the request (query or body, as the API wants), or
    for next-URL paging the absolute `url` to fetch as is (None for the first page)."""

    params: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    number: int = 0  # 0-based index of the page


@dataclass
class PageResponse:
    """A page as a fetch callable may return it when it does not return an ``httpx.Response``."""

    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None


@dataclass
class Page:
    """One fetched page: the JSON body, headers, URL, and the items extracted from it."""

    request: PageRequest
    body: Any
    headers: Mapping[str, str]
    url: str | None
    items: list[Any]


Fetch = Callable[[PageRequest], Awaitable[Any]]
Extractor = str | Callable[[Any], Any]


def _extractor(spec: Extractor | None) -> Callable[[Any], Any] | None:
    if spec is None or callable(spec):
        return spec
    expression = compile_expression(spec)
    return lambda body: expression.search(body)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no")
    return bool(value)


def _as_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PaginationError(f"{what} is not a number: {value!r}") from None


def parse_link_header(value: str | None) -> dict[str, str]:
    """``<https://x/?page=2>; rel="next", <...>; rel="last"`` -> ``{"next": url, "last": url}``."""
    links: dict[str, str] = {}
    for match in re.finditer(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)", value or ""):
        url, params = match.group(1).strip(), match.group(2)
        rel = re.search(r"""rel\s*=\s*"?([^";]+)"?""", params)
        if rel:
            for name in rel.group(1).split():
                links.setdefault(name.lower(), url)
    return links


class Paginator:
    """Base class: subclasses say what the first request is and how to get the next one."""

    def __init__(self, items: Extractor = "items") -> None:
        self._items = _extractor(items)
        self._items_spec = items

    # -- to implement
    def first(self) -> PageRequest:
        """The request for the first page."""
        return PageRequest()

    def next(self, page: Page) -> PageRequest | None:
        """The request for the page after `page`, or None when it was the last one."""
        raise NotImplementedError

    def start(self) -> None:
        """Reset per-iteration state (called before the first page)."""

    # -- shared
    def extract_items(self, body: Any) -> list[Any]:
        """The items of a page body (a missing list is an empty page)."""
        value = self._items(body) if self._items else body
        if value is None:
            return []
        if not isinstance(value, list):
            raise PaginationError(f"items `{self._items_spec}` of a page is {type(value).__name__}, not a list")
        return value

    async def _load(self, fetch: Fetch, request: PageRequest) -> Page:
        result = await fetch(request)
        if isinstance(result, httpx.Response):
            if not result.is_success:
                raise PaginationError(f"page {request.number + 1} answered HTTP {result.status_code}", status=result.status_code)
            body = result.json() if result.content else None
            headers: Mapping[str, str] = result.headers
            url: str | None = str(result.url)
        elif isinstance(result, PageResponse):
            body, headers, url = result.body, result.headers, result.url
        else:
            body, headers, url = result, {}, None
        return Page(request=request, body=body, headers=headers, url=url, items=self.extract_items(body))

    async def pages(self, fetch: Fetch, *, max_pages: int | None = DEFAULT_MAX_PAGES) -> AsyncIterator[Page]:
        """Fetch pages one after the other (lazily) until the last one."""
        pager = copy.copy(self)  # per-iteration state: one declaration may serve concurrent runs
        pager.start()
        request: PageRequest | None = pager.first()
        count = 0
        while request is not None:
            if max_pages is not None and count >= max_pages:
                raise PaginationLimitExceeded(
                    f"stopped after {max_pages} pages and the server has more; raise max_pages or narrow the query"
                )
            page = await pager._load(fetch, request)
            count += 1
            yield page
            request = pager.next(page)
            if request is not None:
                request.number = count

    async def items(self, fetch: Fetch, *, max_pages: int | None = DEFAULT_MAX_PAGES) -> AsyncIterator[Any]:
        """Every item of every page, streamed as pages arrive."""
        async for page in self.pages(fetch, max_pages=max_pages):
            for item in page.items:
                yield item

    async def collect(
        self,
        fetch: Fetch,
        *,
        max_items: int | None = DEFAULT_MAX_ITEMS,
        max_pages: int | None = DEFAULT_MAX_PAGES,
    ) -> list[Any]:
        """All items in a list; raises PaginationLimitExceeded rather than return a truncated list."""
        collected: list[Any] = []
        async for item in self.items(fetch, max_pages=max_pages):
            if max_items is not None and len(collected) >= max_items:
                raise PaginationLimitExceeded(
                    f"more than {max_items} items; raise max_items, narrow the query or stream the items instead"
                )
            collected.append(item)
        return collected


class _RepeatGuard:
    """Remembers page fingerprints to stop a server that serves the same page forever."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()

    def check(self, token: Any, what: str, number: int) -> None:
        digest = hashlib.sha256(orjson.dumps(token, option=orjson.OPT_SORT_KEYS, default=str)).digest()
        if digest in self.seen:
            raise PaginationError(f"the server returned the same {what} again after page {number}; stopping instead of looping forever")
        self.seen.add(digest)


class CursorPaginator(Paginator):
    """``?cursor=<next_cursor of the previous page>`` until there is no next cursor.

    `has_more` (optional) is authoritative when given: false stops, true without a cursor
    is an error. An empty page with a new cursor does not stop (some APIs filter pages).
    """

    def __init__(
        self,
        *,
        cursor_param: str = "cursor",
        next_cursor: Extractor = "next_cursor",
        items: Extractor = "items",
        has_more: Extractor | None = None,
        page_size_param: str | None = None,
        page_size: int | None = None,
        first_cursor: Any = None,
    ) -> None:
        super().__init__(items)
        self.cursor_param = cursor_param
        self._next_cursor = _extractor(next_cursor)
        self._has_more = _extractor(has_more)
        self.page_size_param = page_size_param
        self.page_size = page_size
        self.first_cursor = first_cursor
        self._guard = _RepeatGuard()

    def start(self) -> None:
        self._guard = _RepeatGuard()
        if self.first_cursor is not None:
            self._guard.check(self.first_cursor, "cursor", 0)

    def _params(self, cursor: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.page_size_param and self.page_size is not None:
            params[self.page_size_param] = self.page_size
        if cursor is not None:
            params[self.cursor_param] = cursor
        return params

    def first(self) -> PageRequest:
        return PageRequest(params=self._params(self.first_cursor))

    def next(self, page: Page) -> PageRequest | None:
        cursor = self._next_cursor(page.body) if self._next_cursor else None
        missing = cursor is None or cursor == ""
        if self._has_more is not None:
            if not _truthy(self._has_more(page.body)):
                return None
            if missing:
                raise PaginationError(f"page {page.request.number + 1} says there is more but gives no next cursor")
        elif missing:
            return None
        self._guard.check(cursor, f"cursor {cursor!r}", page.request.number + 1)
        return PageRequest(params=self._params(cursor))


class OffsetPaginator(Paginator):
    """``?offset=0&limit=100``, then ``offset=100`` ... until an empty or short page, or `total`.

    The offset advances by the number of items received. Without `total`, a page shorter
    than `limit` is taken as the last one: keep `limit` at most the server's maximum.
    """

    def __init__(
        self,
        *,
        offset_param: str = "offset",
        limit_param: str = "limit",
        limit: int = 100,
        items: Extractor = "items",
        total: Extractor | None = None,
        start: int = 0,
    ) -> None:
        super().__init__(items)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.limit = limit
        self._total = _extractor(total)
        self.start_offset = start
        self._guard = _RepeatGuard()

    def start(self) -> None:
        self._guard = _RepeatGuard()

    def first(self) -> PageRequest:
        return PageRequest(params={self.offset_param: self.start_offset, self.limit_param: self.limit})

    def next(self, page: Page) -> PageRequest | None:
        if not page.items:
            return None
        self._guard.check(page.items, "page of items", page.request.number + 1)
        offset = int(page.request.params[self.offset_param]) + len(page.items)
        total = _as_int(self._total(page.body), "total") if self._total else None
        if total is not None:
            if offset >= total:
                return None
        elif len(page.items) < self.limit:
            return None
        return PageRequest(params={self.offset_param: offset, self.limit_param: self.limit})


class PagePaginator(Paginator):
    """``?page=1&page_size=100``, ``page=2`` ... until an empty page, `has_more` false, the
    last of `total_pages`, or (with neither given) a page shorter than `size`."""

    def __init__(
        self,
        *,
        page_param: str = "page",
        size_param: str | None = "page_size",
        size: int = 100,
        start: int = 1,
        items: Extractor = "items",
        has_more: Extractor | None = None,
        total_pages: Extractor | None = None,
    ) -> None:
        super().__init__(items)
        if size < 1:
            raise ValueError("size must be at least 1")
        self.page_param = page_param
        self.size_param = size_param
        self.size = size
        self.start_page = start
        self._has_more = _extractor(has_more)
        self._total_pages = _extractor(total_pages)
        self._guard = _RepeatGuard()

    def start(self) -> None:
        self._guard = _RepeatGuard()

    def _params(self, number: int) -> dict[str, Any]:
        params: dict[str, Any] = {self.page_param: number}
        if self.size_param:
            params[self.size_param] = self.size
        return params

    def first(self) -> PageRequest:
        return PageRequest(params=self._params(self.start_page))

    def next(self, page: Page) -> PageRequest | None:
        if not page.items:
            return None
        self._guard.check(page.items, "page of items", page.request.number + 1)
        number = int(page.request.params[self.page_param])
        if self._has_more is not None:
            if not _truthy(self._has_more(page.body)):
                return None
        elif self._total_pages is not None:
            total = _as_int(self._total_pages(page.body), "total_pages")
            if total is not None and number - self.start_page + 1 >= total:
                return None
        elif len(page.items) < self.size:
            return None
        return PageRequest(params=self._params(number + 1))


class NextUrlPaginator(Paginator):
    """Follows the next page's URL: `next_url` (JMESPath or callable over the body), else the
    ``Link: <...>; rel="next"`` header. Relative URLs resolve against the page's URL."""

    def __init__(self, *, next_url: Extractor | None = None, items: Extractor = "items", link_header: bool | None = None) -> None:
        super().__init__(items)
        self._next_url = _extractor(next_url)
        self.link_header = next_url is None if link_header is None else link_header
        self._guard = _RepeatGuard()

    def start(self) -> None:
        self._guard = _RepeatGuard()

    def next(self, page: Page) -> PageRequest | None:
        url = self._next_url(page.body) if self._next_url else None
        if not url and self.link_header:
            url = parse_link_header(page.headers.get("link") or page.headers.get("Link")).get("next")
        if not url:
            return None
        if not isinstance(url, str):
            raise PaginationError(f"next page URL of page {page.request.number + 1} is not a string: {url!r}")
        if page.url:
            url = urljoin(page.url, url)
        self._guard.check(url, f"next URL {url}", page.request.number + 1)
        return PageRequest(url=url)


def http_fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    inject: str = "query",
) -> Fetch:
    """A fetch callable over an httpx client: paging parameters go into the query string
    (``inject="query"``) or the JSON body (``inject="body"``); next URLs are fetched with GET."""
    if inject not in ("query", "body"):
        raise ValueError("inject must be 'query' or 'body'")

    async def fetch(request: PageRequest) -> httpx.Response:
        if request.url is not None:
            return await client.get(request.url, headers=headers)
        query = dict(params or {})
        body = dict(json) if json is not None else None
        if inject == "query":
            query.update(request.params)
        else:
            body = {**(body or {}), **request.params}
        return await client.request(method, url, params=query or None, json=body, headers=headers)

    return fetch
