"""Shared set-up for the sales flows of flows/ (issue 6): the four platform fakes served on
127.0.0.1, the real service with the connections the flow files name, and small helpers to
deploy a shipped flow, sign an order webhook and wait for runs."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from connectors.dingtalk import sandbox as dingtalk_fake
from connectors.dingtalk.sandbox import FakeDingTalk
from connectors.douyin.sandbox import (
    SANDBOX_CLIENT_KEY,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_OPEN_ID,
    SANDBOX_REFRESH_TOKEN,
    FakeDouyin,
)
from connectors.fxiaoke.sandbox import SANDBOX_APP_ID, SANDBOX_APP_SECRET, SANDBOX_PERMANENT_CODE, SANDBOX_USER, FakeFxiaoke
from connectors.kingdee.actions import SANDBOX as KINGDEE_SANDBOX
from connectors.kingdee.sandbox import FakeKingdee
from connectors.sdk.sandbox import SandboxServer
from engine.store.datatables import DataTables, load_definitions
from tests.conftest import ADMIN_PASSWORD, bearer, login

FLOWS = Path(__file__).resolve().parent.parent / "flows"
ORDER_SECRET = "order-hook-secret"
SALES_FLOWS = ("douyin-lead-to-crm", "order-approval", "order-approval-result")
APPROVAL_HOOK = "/hooks/dingtalk/order-approvals"


@dataclass
class Platforms:
    """The fakes of one test and the base URL each is served at."""

    douyin: FakeDouyin
    fxiaoke: FakeFxiaoke
    dingtalk: FakeDingTalk
    kingdee: FakeKingdee
    urls: dict[str, str]

    def connections(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Every connection the sales flows name: {name: (connector, fields)}, pointed at the fakes."""
        return {
            "douyin-main": ("douyin", {"client_key": SANDBOX_CLIENT_KEY, "client_secret": SANDBOX_CLIENT_SECRET,
                                       "refresh_token": SANDBOX_REFRESH_TOKEN, "open_id": SANDBOX_OPEN_ID,
                                       "base_url": self.urls["douyin"]}),
            "fxiaoke-crm": ("fxiaoke", {"app_id": SANDBOX_APP_ID, "app_secret": SANDBOX_APP_SECRET,
                                        "permanent_code": SANDBOX_PERMANENT_CODE, "open_user_id": SANDBOX_USER,
                                        "base_url": self.urls["fxiaoke"]}),
            "dingtalk-sales-robot": ("dingtalk", {"robot_access_token": dingtalk_fake.ROBOT_SIGN_TOKEN,
                                                  "robot_secret": dingtalk_fake.ROBOT_SECRET,
                                                  "base_url": self.urls["dingtalk"]}),
            "dingtalk-main": ("dingtalk", {"app_key": dingtalk_fake.APP_KEY, "app_secret": dingtalk_fake.APP_SECRET,
                                           "agent_id": dingtalk_fake.AGENT_ID,
                                           "callback_token": dingtalk_fake.CALLBACK_TOKEN,
                                           "callback_aes_key": dingtalk_fake.CALLBACK_AES_KEY,
                                           "base_url": self.urls["dingtalk"]}),
            "kingdee-erp": ("kingdee", {**KINGDEE_SANDBOX, "base_url": self.urls["kingdee"] + "/K3Cloud"}),
            "order-hook": ("http", {"secret": ORDER_SECRET}),
        }


@dataclass
class World:
    """The service (logged in) and the fakes it talks to."""

    client: TestClient
    platforms: Platforms


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """For one test module: fresh Douyin, Fxiaoke, DingTalk and Kingdee fakes, each on its own port,
    and the real service on a fresh database with the shipped tables, the connections (created
    through the connections API, as an operator would) and the three sales flows active; the
    DingTalk app's event subscription points at the service. Tests share it, so they use their own
    order numbers, users and leads and compare counts before and after."""
    fakes = {"douyin": FakeDouyin(), "fxiaoke": FakeFxiaoke(),
             "dingtalk": FakeDingTalk(ack_deadline=30.0),  # DingTalk's 1.5 s is too tight for a shared CI box
             "kingdee": FakeKingdee()}
    database = f"sqlite:///{tmp_path_factory.mktemp('sales') / 'flowlink.db'}"
    with ExitStack() as stack:
        env = stack.enter_context(pytest.MonkeyPatch.context())
        env.setenv("FLOWLINK_ADMIN_PASSWORD", ADMIN_PASSWORD)
        env.setenv("FLOWLINK_INBOX_POLL", "0.1")
        urls = {name: stack.enter_context(SandboxServer(fake.app)).base_url for name, fake in fakes.items()}
        platforms = Platforms(urls=urls, **fakes)
        client = stack.enter_context(TestClient(create_app(database)))
        client.headers.update(bearer(login(client)))
        load_definitions(DataTables(client.app.state.flowlink.engine.db), FLOWS / "tables")
        for name, (connector, fields) in platforms.connections().items():
            created = client.post("/api/connections", json={"name": name, "connector": connector, "fields": fields})
            assert created.status_code == 201, created.text
        for flow in SALES_FLOWS:
            deploy(client, flow)
        platforms.dingtalk.subscribe(APPROVAL_HOOK, client=client)
        assert platforms.dingtalk.send_check_url().acknowledged
        yield World(client, platforms)


def shipped_flow(name: str) -> dict[str, Any]:
    """The definition in flows/<name>.json, unchanged."""
    return json.loads((FLOWS / f"{name}.json").read_text())


def deploy(client: TestClient, name: str) -> dict[str, Any]:
    """Create and activate the shipped flow flows/<name>.json; returns its definition."""
    definition = shipped_flow(name)
    created = client.post("/api/flows", json={"definition": definition})
    assert created.status_code == 201, created.text
    assert client.post(f"/api/flows/{definition['id']}/activate").status_code == 200
    return definition


def run_ids(client: TestClient, flow_id: str) -> set[str]:
    """The ids of the flow's runs so far (any status)."""
    return {r["id"] for r in client.get("/api/runs", params={"flow_id": flow_id, "limit": 500}).json()}


def finished_runs(client: TestClient, flow_id: str, count: int, before: set[str] | frozenset[str] = frozenset(),
                  timeout: float = 60) -> list[dict[str, Any]]:
    """The flow's finished runs not in `before` (full records, oldest first) once there are at least `count`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get("/api/runs", params={"flow_id": flow_id, "limit": 500}).json()
        done = [r for r in found if r["status"] in ("succeeded", "failed") and r["id"] not in before]
        if len(done) >= count:
            return sorted((client.get(f"/api/runs/{r['id']}").json() for r in done), key=lambda r: r["started_at"])
        time.sleep(0.1)
    raise AssertionError(f"{flow_id}: fewer than {count} finished runs")


def post_order(client: TestClient, order: dict[str, Any], secret: str = ORDER_SECRET) -> httpx.Response:
    """POST an order to /hooks/orders/new signed as the order-approval flow requires
    (hex HMAC-SHA256 of "<timestamp>.<body>" in X-Signature, epoch seconds in X-Timestamp)."""
    body = json.dumps(order, ensure_ascii=False).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return client.post("/hooks/orders/new", content=body, headers={
        "Content-Type": "application/json", "X-Timestamp": stamp, "X-Signature": f"sha256={signature}"})


def table_row(client: TestClient, table: str, key: str) -> dict[str, Any]:
    """One row of a data table by its key (through the public store)."""
    return DataTables(client.app.state.flowlink.engine.db).get(table, key_value=key)


def erp_orders(kingdee: FakeKingdee, order_no: str) -> list[dict[str, Any]]:
    """The Kingdee sales orders whose note carries `order_no`."""
    return [b for b in kingdee.store.bills["SAL_SaleOrder"].values() if str(b.get("FNote", "")).startswith(order_no)]
