"""Shared fixtures for the DingTalk tests: the fake served on 127.0.0.1 and a FlowEngine using it."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from connectors.core import connector as core_connector
from connectors.dingtalk import connector as dingtalk
from connectors.dingtalk import sandbox as fake_mod
from connectors.dingtalk.sandbox import FakeDingTalk
from connectors.sdk import ConnectorRegistry
from connectors.sdk.sandbox import SandboxServer
from engine.runtime import FlowEngine

CONNECTION = "dt"


@pytest.fixture()
def fake() -> Iterator[FakeDingTalk]:
    """A fresh fake DingTalk on a free port (``fake.base_url``)."""
    platform = FakeDingTalk(ack_deadline=30.0)
    with SandboxServer(platform.app) as server:
        platform.base_url = server.base_url  # type: ignore[attr-defined]
        yield platform


def connection_fields(fake: FakeDingTalk, **extra: Any) -> dict[str, Any]:
    """The seeded app, robot and callback credentials, pointed at the fake."""
    return {"app_key": fake_mod.APP_KEY, "app_secret": fake_mod.APP_SECRET, "agent_id": fake_mod.AGENT_ID,
            "robot_access_token": fake_mod.ROBOT_SIGN_TOKEN, "robot_secret": fake_mod.ROBOT_SECRET,
            "callback_token": fake_mod.CALLBACK_TOKEN, "callback_aes_key": fake_mod.CALLBACK_AES_KEY,
            "base_url": fake.base_url, **extra}  # type: ignore[attr-defined]


@pytest.fixture()
def engine(fake: FakeDingTalk, sqlite_url: str) -> Iterator[FlowEngine]:
    """A FlowEngine with the dingtalk connector and the connection ``dt`` on the fake."""
    eng = FlowEngine(sqlite_url, registry=ConnectorRegistry([core_connector, dingtalk]))
    eng.connection_store.put(CONNECTION, "dingtalk", connection_fields(fake))
    yield eng
    eng.close()


def step(action: str, args: dict[str, Any], step_id: str = "s", connection: str = CONNECTION, **extra: Any) -> dict[str, Any]:
    """One dingtalk action step."""
    return {"id": step_id, "type": "action", "action": f"dingtalk.{action}", "connection": connection, "args": args, **extra}


def flow(*steps: dict[str, Any]) -> dict[str, Any]:
    """A manual flow of these steps, the last one ending it."""
    steps_list = list(steps)
    steps_list[-1] = {**steps_list[-1], "end": True}
    return {"id": "dt-test", "name": "dt-test", "trigger": {"type": "manual"}, "steps": steps_list}


async def run(engine: FlowEngine, *steps: dict[str, Any]) -> Any:
    """Compile and run a flow of these steps; the run record."""
    return await engine.run(engine.compile(flow(*steps)))
