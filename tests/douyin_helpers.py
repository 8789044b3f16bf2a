"""Shared helpers for the Douyin tests: the fake served on 127.0.0.1 and flows around one step."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from connectors.douyin.sandbox import (
    SANDBOX_CLIENT_KEY,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_OPEN_ID,
    SANDBOX_REFRESH_TOKEN,
    FakeDouyin,
)
from connectors.sdk.sandbox import SandboxServer


class ServedFake:
    """A FakeDouyin and the address it is served at."""

    def __init__(self, fake: FakeDouyin, base_url: str) -> None:
        self.fake, self.base_url = fake, base_url

    def connection(self, **extra: Any) -> dict[str, Any]:
        """The fields of a connection to the sandbox account on this fake."""
        return {"client_key": SANDBOX_CLIENT_KEY, "client_secret": SANDBOX_CLIENT_SECRET,
                "refresh_token": SANDBOX_REFRESH_TOKEN, "open_id": SANDBOX_OPEN_ID, "base_url": self.base_url, **extra}


@pytest.fixture()
def douyin() -> Iterator[ServedFake]:
    """A fresh fake Douyin served on 127.0.0.1 for one test."""
    fake = FakeDouyin()
    with SandboxServer(fake.app) as server:
        yield ServedFake(fake, server.base_url)


def step(action: str, args: dict[str, Any] | None = None, connection: str = "dy", **extra: Any) -> dict[str, Any]:
    """One `douyin.<action>` step."""
    return {"id": extra.pop("id", "call"), "type": "action", "action": f"douyin.{action}", "connection": connection,
            "args": args or {}, **extra}


def flow(*steps: dict[str, Any], output: Any = None) -> dict[str, Any]:
    """A manual flow of the given steps (the last one ends it unless it says otherwise)."""
    steps = [dict(s) for s in steps]
    if "next" not in steps[-1] and "end" not in steps[-1]:
        steps[-1]["end"] = True
    definition: dict[str, Any] = {"id": "dy-test", "name": "douyin test", "trigger": {"type": "manual"}, "steps": steps}
    if output is not None:
        definition["output"] = output
    return definition
