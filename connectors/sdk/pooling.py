"""An HTTP transport made of several small connection pools instead of one large one.

Why: httpcore 1.0's pool walks every pooled connection twice per request (expiry probes with a
`select()` on each idle socket, and an O(n^2) count of idle connections; encode/httpcore#1035,
still open). With 32 runs calling the same API the pool holds ~32 connections and that walk
was ~20 % of a worker's CPU. Splitting the pool into a few shards, each request going to the
shard with the fewest requests in flight, keeps every walk short; connections are still kept
alive and reused, and the overall connection limit stays what the caller asked for.
"""
from __future__ import annotations

import math
from typing import Any

import httpx


class ShardedTransport(httpx.AsyncBaseTransport):
    """`shards` independent `httpx.AsyncHTTPTransport` pools sharing the given limits."""

    def __init__(self, shards: int = 4, limits: httpx.Limits | None = None, **transport_options: Any) -> None:
        limits = limits or httpx.Limits()
        shards = max(1, shards)

        def part(value: int | None) -> int | None:
            return None if value is None else max(1, math.ceil(value / shards))

        # Each shard may keep all of its connections alive (idle ones still close after
        # `keepalive_expiry`). A smaller keep-alive limit makes httpcore 1.0 evict "surplus idle"
        # connections counting every connection, busy or not (encode/httpcore#1035), and that
        # eviction can close a connection it has just handed to a queued request, which then
        # hangs until its read timeout (encode/httpcore#1110): under load a worker's runs stalled.
        connections = part(limits.max_connections)
        per_shard = httpx.Limits(max_connections=connections,
                                 max_keepalive_connections=connections if connections is not None else part(limits.max_keepalive_connections),
                                 keepalive_expiry=limits.keepalive_expiry)
        self.shards = [httpx.AsyncHTTPTransport(limits=per_shard, **transport_options) for _ in range(shards)]
        self.in_flight = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the least busy shard (ties go to the first, so a quiet service keeps few connections)."""
        index = self.in_flight.index(min(self.in_flight))
        self.in_flight[index] += 1
        try:
            return await self.shards[index].handle_async_request(request)
        finally:
            self.in_flight[index] -= 1

    async def aclose(self) -> None:
        """Close every shard's connections."""
        for shard in self.shards:
            await shard.aclose()
