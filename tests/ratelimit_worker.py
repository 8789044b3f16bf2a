"""A worker process for the cross-process rate budget test: hammers a URL through the limiter.

Usage: python -m tests.ratelimit_worker DB_URL URL KEY RATE START_AT SECONDS CONCURRENCY
Prints one JSON line: {"ok": calls answered 2xx, "failed": other outcomes, "waited": seconds}.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

from connectors.sdk.ratelimit import RateLimiter
from engine.store.db import make_engine


async def main(db_url: str, url: str, key: str, rate: int, start_at: float, seconds: float, concurrency: int) -> dict:
    engine = make_engine(db_url)
    limiter = RateLimiter(engine)
    result = {"ok": 0, "failed": 0, "waited": 0.0}
    deadline = start_at + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as client:
        # open the pooled connections beforehand (an uncounted path), so connection set-up
        # does not delay the first counted calls and blur the server's view of the limiter
        await asyncio.gather(*(client.get(url, params={"warm": "1"}) for _ in range(concurrency)))
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def hammer() -> None:
            while time.time() < deadline:
                result["waited"] += await limiter.acquire(key, rate=rate, per=1.0)
                try:
                    response = await client.get(url)
                    result["ok" if response.is_success else "failed"] += 1
                except httpx.HTTPError:
                    result["failed"] += 1

        await asyncio.gather(*(hammer() for _ in range(concurrency)))
    engine.dispose()
    return result


if __name__ == "__main__":
    db, target, key, rate, start, secs, conc = sys.argv[1:8]
    print(json.dumps(asyncio.run(main(db, target, key, int(rate), float(start), float(secs), int(conc)))))
