"""Shared fixtures for the WeCom tests: the fake served on 127.0.0.1, an engine with
connections to it, and small builders for one-flow-per-test definitions."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from connectors.core import connector as core_connector
from connectors.sdk import Connector, ConnectorRegistry
from connectors.sdk.sandbox import SandboxServer
from connectors.wecom import connector as wecom
from connectors.wecom import fake_state as seed
from connectors.wecom.robot import connector as robot
from connectors.wecom.sandbox import FakeWeCom
from engine.runtime import FlowEngine


class Served:
    """A fake WeCom and the address it is served at."""

    def __init__(self, fake: FakeWeCom, base_url: str) -> None:
        self.fake, self.base_url = fake, base_url

    def connection(self, corp_id: str = seed.SANDBOX_CORP, secret: str = seed.SANDBOX_SECRET,
                   agent_id: int = seed.SANDBOX_AGENT, **extra: Any) -> dict[str, Any]:
        """Connection fields of an app of the fake."""
        return {"corp_id": corp_id, "app_secret": secret, "agent_id": agent_id, "base_url": self.base_url, **extra}


@pytest.fixture()
def served() -> Iterator[Served]:
    """A fresh fake WeCom on a free port."""
    fake = FakeWeCom()
    with SandboxServer(fake.app) as server:
        yield Served(fake, server.base_url)


def control_connector(fake: FakeWeCom) -> Connector:
    """Test-only actions that act on the fake from inside a flow (expire tokens mid-run)."""
    connector = Connector(name="fakecontrol", version="1.0.0", title={"en": "Fake control"})

    @connector.action("expire_tokens")
    def expire_tokens(ctx: Any, inp: Any) -> dict[str, Any]:
        fake.expire_tokens()
        return {"expired": True}

    return connector


@pytest.fixture()
def engine(served: Served, sqlite_url: str) -> Iterator[FlowEngine]:
    """A FlowEngine with the WeCom connectors and connections to three apps of the fake and its robot."""
    registry = ConnectorRegistry([core_connector, wecom, robot, control_connector(served.fake)])
    eng = FlowEngine(sqlite_url, registry=registry)
    eng.connection_store.put("wecom-main", "wecom", served.connection())
    eng.connection_store.put("wecom-limited", "wecom", served.connection(secret=seed.LIMITED_SECRET, agent_id=seed.LIMITED_AGENT))
    eng.connection_store.put("wecom-second", "wecom", served.connection(corp_id=seed.SECOND_CORP, secret=seed.SECOND_SECRET))
    eng.connection_store.put("robot", "wecom_robot", {"key": seed.ROBOT_KEY, "base_url": served.base_url})
    yield eng
    eng.close()


def step(step_id: str, action: str, args: dict[str, Any] | None = None, connection: str = "wecom-main",
         **extra: Any) -> dict[str, Any]:
    """An action step (``wecom.<action>`` unless the action names its connector)."""
    ref = action if "." in action else f"wecom.{action}"
    found: dict[str, Any] = {"id": step_id, "type": "action", "action": ref, "args": args or {}, **extra}
    if connection and not ref.startswith(("core.", "fakecontrol.")):
        found["connection"] = connection
    return found


def flow(*steps: dict[str, Any], output: Any = None, **top: Any) -> dict[str, Any]:
    """A manual-trigger flow of `steps`."""
    definition: dict[str, Any] = {"id": "wecom-test", "name": "wecom test", "trigger": {"type": "manual"},
                                  "steps": list(steps), **top}
    if output is not None:
        definition["output"] = output
    return definition


async def run(engine: FlowEngine, definition: dict[str, Any], trigger: Any = None) -> Any:
    """Compile and run a flow; the run record."""
    return await engine.run(engine.compile(definition), trigger)
