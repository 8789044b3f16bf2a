"""The shipped flow flows/wecom-welcome.json end to end: the fake WeCom pushes an encrypted
add_external_contact event to the service, the flow welcomes the customer with the event's
WelcomeCode, tags them by the contact way's `state` and records them in the customers data
table, all against the fake; late codes, unknown channels, other events and re-sends too."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from connectors.wecom import fake_state as seed
from engine.store.datatables import DataTables, load_definitions
from tests.conftest import bearer, login
from tests.wecom_helpers import Served, served  # noqa: F401  (fixture)

FLOWS = Path(__file__).resolve().parent.parent / "flows"
HOOK = "/hooks/wecom/wecom-welcome"


@pytest.fixture()
def client(served: Served, sqlite_url: str, admin_password: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("FLOWLINK_INBOX_POLL", "0.1")
    with TestClient(create_app(sqlite_url)) as c:
        c.headers.update(bearer(login(c)))
        engine = c.app.state.flowlink.engine
        load_definitions(DataTables(engine.db), FLOWS / "tables")
        engine.connection_store.put("wecom-main", "wecom", served.connection(token=seed.CALLBACK_TOKEN,
                                                                              encoding_aes_key=seed.CALLBACK_AES_KEY))
        definition = json.loads((FLOWS / "wecom-welcome.json").read_text())
        assert c.post("/api/flows", json={"definition": definition}).status_code == 201
        assert c.post("/api/flows/wecom-welcome/activate").status_code == 200
        yield c


def finished(client: TestClient, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get("/api/runs", params={"flow_id": "wecom-welcome"}).json()
        done = [r for r in found if r["status"] in ("succeeded", "failed")]
        if len(done) >= count:
            return sorted((client.get(f"/api/runs/{r['id']}").json() for r in done), key=lambda r: r["started_at"])
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} finished runs")


def customer_row(client: TestClient, external_userid: str) -> dict[str, Any]:
    return DataTables(client.app.state.flowlink.engine.db).get("customers", key_value=external_userid)


def test_new_customer_is_welcomed_tagged_and_recorded(client: TestClient, served: Served) -> None:
    fake = served.fake
    event = fake.customer_added("zhangsan", "Lucy", state="expo")
    answers = fake.send_callback(client, HOOK, event, duplicates=1)  # WeCom re-sent it: still one run
    assert [(a.status_code, a.text) for a in answers] == [(200, "")] * 2
    (run,) = finished(client, 1)
    assert run["status"] == "succeeded", run["error"]
    ext = event["ExternalUserID"]
    assert run["output"]["welcomed"] is True and run["output"]["tags"] == ["etTagExpo"]
    (welcome,) = fake.corp().welcome_messages
    assert welcome["external_userid"] == ext and welcome["text"]["content"].startswith("您好")
    assert welcome["attachments"][0]["link"]["url"] == "https://example.com/catalogue"
    assert fake.corp().follows[("zhangsan", ext)]["tag_id"] == ["etTagExpo"]
    row = customer_row(client, ext)
    assert (row["name"], row["source"], row["state"], row["owner"], row["tags"]) == ("Lucy", "wecom", "new", "zhangsan", ["展会"])
    time.sleep(0.5)
    assert len(client.get("/api/runs", params={"flow_id": "wecom-welcome"}).json()) == 1


def test_unknown_channel_late_code_and_other_events(client: TestClient, served: Served) -> None:
    fake = served.fake
    walk_in = fake.customer_added("lisi", "Walk-in", state="poster")  # no rule for this channel
    late = fake.customer_added("zhangsan", "Late", state="ad")
    fake.send_callback(client, HOOK, walk_in)
    finished(client, 1)
    fake.advance(25)  # the second code is past its 20 s by the time it is used
    fake.send_callback(client, HOOK, late)
    fake.send_callback(client, HOOK, fake.customer_changed("del_follow_user", "lisi", "wmCustomer003"))
    runs = finished(client, 3)
    assert [r["status"] for r in runs] == ["succeeded"] * 3, [r["error"] for r in runs]
    by_ext = {r["output"]["external_userid"]: r["output"] for r in runs}
    assert by_ext[walk_in["ExternalUserID"]]["tags"] == [] and by_ext[walk_in["ExternalUserID"]]["welcomed"] is True
    assert by_ext[late["ExternalUserID"]]["welcomed"] is False and by_ext[late["ExternalUserID"]]["tags"] == ["etTagAd"]
    assert customer_row(client, late["ExternalUserID"])["tags"] == ["广告"]
    assert customer_row(client, walk_in["ExternalUserID"])["tags"] == []
    assert [w["external_userid"] for w in fake.corp().welcome_messages] == [walk_in["ExternalUserID"]]
    assert by_ext["wmCustomer003"]["customer_row"] is None  # other events end at `ignore`
