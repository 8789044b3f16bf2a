"""A worker process for the cross-process token cache test.

    python -m tests.token_worker DB_URL BASE_URL REQUESTS

Prints "ready", waits for a line on stdin (so that every worker starts at once), sends REQUESTS concurrent WeCom-style calls through
a ConnectorClient whose TokenCache is on DB_URL, and prints one JSON line: how many calls
succeeded, how many token fetches this process made, and the token it ended with.
"""
from __future__ import annotations

import asyncio
import sys

import orjson


async def main(db_url: str, base_url: str, requests: int) -> None:
    from connectors.sdk.http import close_shared_client
    from connectors.sdk.tokens import TokenCache
    from tests.fake_token_platform import wecom_client

    cache = TokenCache(db_url, poll_interval=0.02)
    client = wecom_client(base_url, cache)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    results = await asyncio.gather(*(client.request("GET", "/cgi-bin/user/get", params={"userid": f"u{i}"})
                                     for i in range(requests)))
    token = await cache.peek(client.auth.key)
    await close_shared_client()
    cache.engine.dispose()
    print(orjson.dumps({"ok": sum(1 for r in results if r.get("errcode") == 0), "fetches": cache.fetches,
                        "token": token.value if token else None}).decode())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
