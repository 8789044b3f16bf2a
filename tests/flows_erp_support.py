"""Shared set-up for the ERP/CRM/SCRM flow tests (tests/test_flows_erp_crm.py): the fakes of
Kingdee, HubSpot, Fxiaoke and WeCom served on 127.0.0.1, the connections the shipped flows
use pointed at them, the flows read from flows/*.json, and a scheduler driven by a fake clock."""
from __future__ import annotations

import asyncio
import json
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pytest

from api.scheduler import Scheduler
from connectors.fxiaoke.sandbox import (
    SANDBOX_APP_ID,
    SANDBOX_APP_SECRET,
    SANDBOX_PERMANENT_CODE,
    SANDBOX_USER,
    FakeFxiaoke,
)
from connectors.hubspot.sandbox import SANDBOX_PRIVATE_APP_TOKEN, FakeHubSpot
from connectors.kingdee.actions import SANDBOX as KINGDEE_SANDBOX
from connectors.kingdee.sandbox import FakeKingdee
from connectors.sdk.sandbox import SandboxServer
from connectors.wecom import fake_state as wecom_seed
from connectors.wecom.sandbox import FakeWeCom
from engine.runtime import FlowEngine
from engine.store.datatables import DataTables, load_definitions

FLOWS = Path(__file__).resolve().parent.parent / "flows"


def flow_definition(name: str) -> dict[str, Any]:
    """A shipped flow, as its JSON file holds it."""
    return json.loads((FLOWS / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class Fakes:
    """The four fake platforms and their base URLs."""

    kingdee: FakeKingdee
    hubspot: FakeHubSpot
    fxiaoke: FakeFxiaoke
    wecom: FakeWeCom
    urls: dict[str, str]

    def connections(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """The connections the shipped flows name: name -> (connector, fields), pointed at the fakes."""
        return {
            "k3": ("kingdee", {**KINGDEE_SANDBOX, "base_url": self.urls["kingdee"] + "/K3Cloud"}),
            "hubspot": ("hubspot", {"auth": "bearer", "token": SANDBOX_PRIVATE_APP_TOKEN, "base_url": self.urls["hubspot"]}),
            "fxiaoke": ("fxiaoke", {"app_id": SANDBOX_APP_ID, "app_secret": SANDBOX_APP_SECRET,
                                    "permanent_code": SANDBOX_PERMANENT_CODE, "open_user_id": SANDBOX_USER,
                                    "base_url": self.urls["fxiaoke"]}),
            "wecom-main": ("wecom", {"corp_id": wecom_seed.SANDBOX_CORP, "app_secret": wecom_seed.SANDBOX_SECRET,
                                     "agent_id": wecom_seed.SANDBOX_AGENT, "base_url": self.urls["wecom"]}),
        }

    def wecom_messages(self) -> list[dict[str, Any]]:
        """App messages the fake WeCom accepted."""
        return self.wecom.corp().messages


@pytest.fixture()
def fakes() -> Iterator[Fakes]:
    """Fresh fakes of the four platforms, each on its own free port."""
    apps = {"kingdee": FakeKingdee(), "hubspot": FakeHubSpot(), "fxiaoke": FakeFxiaoke(), "wecom": FakeWeCom()}
    with ExitStack() as stack:
        urls = {name: stack.enter_context(SandboxServer(fake.app)).base_url for name, fake in apps.items()}
        yield Fakes(apps["kingdee"], apps["hubspot"], apps["fxiaoke"], apps["wecom"], urls)  # type: ignore[arg-type]


def prepare(engine: FlowEngine, fakes: Fakes) -> DataTables:
    """Store the connections and create the shipped data tables (flows/tables); the tables API."""
    for name, (connector, fields) in fakes.connections().items():
        engine.connection_store.put(name, connector, fields)
    tables = DataTables(engine.db)
    load_definitions(tables, FLOWS / "tables")
    return tables


class FakeClock:
    """A settable clock for the scheduler (epoch seconds)."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


async def tick(scheduler: Scheduler, clock: FakeClock, seconds: float, flow_id: str) -> list[Any]:
    """Move the clock, run one scheduler pass and wait for what it started; the new runs' records."""
    engine = scheduler.engine
    before = {r.id for r in engine.runs.list(flow_id=flow_id, limit=1000)}
    clock.now += seconds
    await scheduler.run_once()
    await asyncio.gather(*(e.task for e in scheduler.polls.values() if e.task is not None))
    while scheduler.runs:
        await asyncio.gather(*list(scheduler.runs))
    engine.flush()
    return [engine.runs.get(r.id) for r in engine.runs.list(flow_id=flow_id, limit=1000) if r.id not in before]
