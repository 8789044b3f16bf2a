"""The process-wide pooled HTTP client that actions share (one per event loop)."""
from __future__ import annotations

import asyncio
import email.utils
import http.cookiejar
import os
import time
import weakref

import httpx

from connectors.sdk.pooling import ShardedTransport
from engine.tracing import inject_headers

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()

USER_AGENT = "Flowlink/0.1 (+https://flowlink.dev)"


def shared_client() -> httpx.AsyncClient:
    """The pooled client of the running event loop, created on first use."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            # shared by every connection and tenant: it must never keep a cookie one answer
            # sets and send it with another tenant's request (sessions live in their own clients)
            cookies=http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
            timeout=httpx.Timeout(30.0),
            transport=ShardedTransport(shards=int(os.environ.get("FLOWLINK_HTTP_POOL_SHARDS", "4")),
                                       limits=httpx.Limits(max_connections=200, max_keepalive_connections=50), trust_env=False),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
            event_hooks={"request": [_trace_request]},
        )
        _clients[loop] = client
    return client


async def _trace_request(request: httpx.Request) -> None:
    """Carry the current step's trace (W3C `traceparent`) to the called service, only while tracing is on."""
    inject_headers(request.headers)


async def close_shared_client() -> None:
    """Close the running loop's client (service shutdown, end of a CLI run)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
