"""The sharded HTTP transport: limits split over shards, busy shards avoided, connections reused."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from connectors.sdk.http import close_shared_client, shared_client
from connectors.sdk.pooling import ShardedTransport


@pytest.fixture
async def server():
    """A keep-alive HTTP/1.1 server on 127.0.0.1 that counts TCP connections and delays `/slow`."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if b"/slow" in head.split(b"\r\n", 1)[0]:
                    await asyncio.sleep(0.2)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    yield {"url": f"http://127.0.0.1:{port}", "connections": lambda: connections}
    srv.close()
    await srv.wait_closed()


def test_limits_are_split_over_the_shards() -> None:
    transport = ShardedTransport(shards=4, limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
    pools = [shard._pool for shard in transport.shards]
    assert len(pools) == 4
    assert {pool._max_connections for pool in pools} == {50}
    # keep-alive = connections per shard: httpcore's surplus-idle eviction (which can close a connection
    # it just assigned to a queued request, encode/httpcore#1110) then never runs
    assert {pool._max_keepalive_connections for pool in pools} == {50}


async def test_concurrent_requests_spread_over_shards_and_sequential_ones_reuse_a_connection(server) -> None:
    transport = ShardedTransport(shards=4)
    async with httpx.AsyncClient(transport=transport) as client:
        answers = await asyncio.gather(*(client.get(server["url"] + "/slow") for _ in range(8)))
        assert [a.text for a in answers] == ["ok"] * 8
        # 8 requests in flight at once: 2 per shard, so each shard opened 2 connections
        assert [len(shard._pool.connections) for shard in transport.shards] == [2, 2, 2, 2]
        assert transport.in_flight == [0, 0, 0, 0]
        opened = server["connections"]()
        for _ in range(20):  # one at a time: always the first shard, on a kept-alive connection
            assert (await client.get(server["url"] + "/fast")).status_code == 200
        assert server["connections"]() == opened == 8


async def test_a_failed_request_leaves_no_shard_counted_busy() -> None:
    transport = ShardedTransport(shards=2)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")  # nothing listens on the discard port
    assert transport.in_flight == [0, 0]


async def test_the_shared_client_uses_the_sharded_transport() -> None:
    client = shared_client()
    try:
        assert isinstance(client._transport, ShardedTransport)
    finally:
        await close_shared_client()
