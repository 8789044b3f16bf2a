"""Shared set-up for the flow gallery's end-to-end tests (tests/test_gallery_*.py).

`gallery` starts the fake platforms (WeCom, HubSpot, Fxiaoke, Douyin) on 127.0.0.1, the real
service on a fresh SQLite database with the shipped data tables, and the connections the
gallery flows name, pointing at the fakes. Flows are deployed from flows/ unchanged (a test
may override `vars`) and run through the service: webhooks and callbacks through /hooks,
scheduled and manual runs through `POST /api/flows/{id}/runs` with the payload the
scheduler would give.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from connectors.dingtalk import sandbox as dt
from connectors.dingtalk.sandbox import FakeDingTalk
from connectors.douyin.sandbox import FakeDouyin
from connectors.email.sandbox import FakeMailServer
from connectors.fxiaoke import sandbox as fx
from connectors.hubspot import sandbox as hs
from connectors.sdk.sandbox import SandboxServer
from connectors.sms import sandbox as sms_fake
from connectors.sms.sandbox import FakeAliyunSms
from connectors.wecom import fake_state as wecom_seed
from connectors.wecom.sandbox import FakeWeCom
from engine.store.datatables import DataTables, load_definitions
from tests.conftest import bearer, login
from tests.douyin_helpers import ServedFake

FLOWS = Path(__file__).resolve().parent.parent / "flows"
#: The token the gallery's webhook flows expect in X-Flowlink-Token (connection `orders-webhook`).
WEBHOOK_TOKEN = "gallery-webhook-token"
#: A WeCom corp tag the churn flows use; created in the fake as an admin would.
CHURN_TAG = "etTagChurnRisk"


class Gallery:
    """The service under test, the fakes behind it and helpers to deploy and observe flows."""

    def __init__(self, client: TestClient, wecom: FakeWeCom, hubspot: hs.FakeHubSpot, fxiaoke: fx.FakeFxiaoke,
                 douyin: ServedFake) -> None:
        self.client, self.wecom, self.hubspot, self.fxiaoke, self.douyin = client, wecom, hubspot, fxiaoke, douyin
        self.dingtalk: FakeDingTalk | None = None  # set by the lead_gallery fixture (with mail)
        self.mail: FakeMailServer | None = None
        self.sms: FakeAliyunSms | None = None  # set by the sms_gallery fixture
        self.tables = DataTables(client.app.state.flowlink.engine.db)

    # ------------------------------------------------------------------ flows

    def definition(self, name: str, **vars: Any) -> dict[str, Any]:
        """flows/<name>.json, with `vars` overridden."""
        definition = json.loads((FLOWS / f"{name}.json").read_text())
        definition.setdefault("vars", {}).update(vars)
        return definition

    def deploy(self, name: str, activate: bool = True, **vars: Any) -> str:
        """Store flows/<name>.json through the API (activated: its webhook or callback listens)."""
        definition = self.definition(name, **vars)
        created = self.client.post("/api/flows", json={"definition": definition})
        assert created.status_code == 201, created.text
        if activate:
            assert self.client.post(f"/api/flows/{definition['id']}/activate").status_code == 200
        return definition["id"]

    def run(self, flow_id: str, payload: Any) -> dict[str, Any]:
        """Run a stored flow on `payload` through the API and wait for its end; the run record."""
        answer = self.client.post(f"/api/flows/{flow_id}/runs", params={"wait": 60}, json=payload)
        assert answer.status_code == 202, answer.text
        run = answer.json()
        assert run["status"] in ("succeeded", "failed"), run
        return self.client.get(f"/api/runs/{run['id']}").json()

    def finished(self, flow_id: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        """The first `count` finished runs of a flow (oldest first), waiting for them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.client.get("/api/runs", params={"flow_id": flow_id}).json()
            done = [r for r in found if r["status"] in ("succeeded", "failed")]
            if len(done) >= count:
                return sorted((self.client.get(f"/api/runs/{r['id']}").json() for r in done), key=lambda r: r["started_at"])
            time.sleep(0.1)
        raise AssertionError(f"{flow_id}: fewer than {count} finished runs")

    def post_hook(self, path: str, body: dict[str, Any], token: str = WEBHOOK_TOKEN) -> Any:
        """POST a JSON body to /hooks/<path> with the gallery's webhook token."""
        return self.client.post(f"/hooks/{path}", json=body, headers={"X-Flowlink-Token": token})

    # ------------------------------------------------------------------ data

    def rows(self, table: str, where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every row of a data table matching `where`, in _id order."""
        return self.tables.query(table, where, limit=1000)["rows"]

    def add_customer(self, ext: str, name: str, **columns: Any) -> dict[str, Any]:
        """A row of the customers table."""
        return self.tables.insert("customers", {"external_userid": ext, "name": name, "source": "wecom", **columns})

    def add_wecom_customer(self, owner: str, name: str) -> str:
        """A WeChat user who added member `owner` in the fake WeCom; their external_userid."""
        return self.wecom.customer_added(owner, name)["ExternalUserID"]

    def wecom_tags(self, owner: str, ext: str) -> list[str]:
        """The corp tags member `owner` sees on customer `ext` in the fake WeCom."""
        return list(self.wecom.corp().follows[(owner, ext)]["tag_id"])


def create_churn_tag(fake: FakeWeCom) -> None:
    """The corp tag 流失风险 (churn risk), as an admin would create it in WeCom's console."""
    group = fake.corp().tag_groups["etGroupLevel"]
    group["tag"].append({"id": CHURN_TAG, "name": "流失风险", "create_time": int(fake.now()), "order": 2})


@pytest.fixture()
def gallery(sqlite_url: str, admin_password: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gallery]:
    """The service with the gallery's connections and tables, and the fakes behind them."""
    monkeypatch.setenv("FLOWLINK_INBOX_POLL", "0.1")
    wecom, hubspot, fxiaoke, douyin = FakeWeCom(), hs.FakeHubSpot(), fx.FakeFxiaoke(), FakeDouyin()
    create_churn_tag(wecom)
    with SandboxServer(wecom.app) as wecom_server, SandboxServer(hubspot.app) as hubspot_server, \
            SandboxServer(fxiaoke.app) as fxiaoke_server, SandboxServer(douyin.app) as douyin_server, \
            TestClient(create_app(sqlite_url)) as client:
        client.headers.update(bearer(login(client)))
        engine = client.app.state.flowlink.engine
        load_definitions(DataTables(engine.db), FLOWS / "tables")
        put = engine.connection_store.put
        put("orders-webhook", "http", {"auth": "bearer", "token": WEBHOOK_TOKEN})
        put("wecom-main", "wecom", {"corp_id": wecom_seed.SANDBOX_CORP, "app_secret": wecom_seed.SANDBOX_SECRET,
                                    "agent_id": wecom_seed.SANDBOX_AGENT, "base_url": wecom_server.base_url,
                                    "token": wecom_seed.CALLBACK_TOKEN, "encoding_aes_key": wecom_seed.CALLBACK_AES_KEY})
        put("service-group", "wecom_robot", {"key": wecom_seed.ROBOT_KEY, "base_url": wecom_server.base_url})
        put("hubspot", "hubspot", {"auth": "bearer", "token": hs.SANDBOX_PRIVATE_APP_TOKEN, "base_url": hubspot_server.base_url})
        put("fxiaoke", "fxiaoke", {"app_id": fx.SANDBOX_APP_ID, "app_secret": fx.SANDBOX_APP_SECRET,
                                   "permanent_code": fx.SANDBOX_PERMANENT_CODE, "open_user_id": fx.SANDBOX_USER,
                                   "base_url": fxiaoke_server.base_url})
        served_douyin = ServedFake(douyin, douyin_server.base_url)
        put("douyin-shop", "douyin", served_douyin.connection())
        yield Gallery(client, wecom, hubspot, fxiaoke, served_douyin)


@pytest.fixture()
def lead_gallery(gallery: Gallery) -> Iterator[Gallery]:
    """`gallery` plus what the web-lead flows need: connections `dingtalk` (a fake DingTalk),
    `mailer` (a real SMTP server on 127.0.0.1) and `web-form` (the form's webhook token)."""
    dingtalk, mail = FakeDingTalk(ack_deadline=30.0), FakeMailServer()
    try:
        with SandboxServer(dingtalk.app) as dingtalk_server:
            put = gallery.client.app.state.flowlink.engine.connection_store.put
            put("dingtalk", "dingtalk", {"app_key": dt.APP_KEY, "app_secret": dt.APP_SECRET, "agent_id": dt.AGENT_ID,
                                         "base_url": dingtalk_server.base_url})
            put("mailer", "email", mail.connection())
            put("web-form", "http", {"auth": "bearer", "token": WEBHOOK_TOKEN})
            gallery.dingtalk, gallery.mail = dingtalk, mail
            yield gallery
    finally:
        mail.close()


@pytest.fixture()
def sms_gallery(gallery: Gallery) -> Iterator[Gallery]:
    """`gallery` plus the connection `aliyun-sms` to a fake Alibaba Cloud SMS (``gallery.sms``)."""
    fake = FakeAliyunSms()
    with SandboxServer(fake.app) as server:
        gallery.client.app.state.flowlink.engine.connection_store.put(
            "aliyun-sms", "sms", {"access_key": sms_fake.ACCESS_KEY, "secret_key": sms_fake.SECRET, "base_url": server.base_url})
        gallery.sms = fake
        yield gallery
