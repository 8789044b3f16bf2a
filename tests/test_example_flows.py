"""Every ready-made flow in flows/ validates and runs end to end against fakes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runtime import FlowEngine
from engine.validation import load_flow_text
from tests.fake_crm import FakeCrm
from tests.fake_http import ServerThread

FLOWS = Path(__file__).resolve().parent.parent / "flows"


@pytest.fixture(scope="module")
def crm():
    fake = FakeCrm()
    server = ServerThread(fake.app).start()
    fake.base = f"http://127.0.0.1:{server.port}"
    yield fake
    server.stop()


def _load(name: str, crm: FakeCrm) -> dict:
    definition = json.loads((FLOWS / name).read_text())
    for key in ("crm_url", "robot_url"):
        if key in definition.get("vars", {}):
            definition["vars"][key] = definition["vars"][key].replace("http://127.0.0.1:18080", crm.base)
    return definition


@pytest.mark.parametrize("path", sorted(FLOWS.glob("*.json")), ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    result = load_flow_text(path.read_bytes())
    assert result.ok, [str(i) for i in result.issues]


@pytest.mark.parametrize("amount, tag, priority", [(4200, "high_value", "P1"), (1800, "normal", "P3")])
async def test_lead_intake(flow_engine: FlowEngine, crm: FakeCrm, amount: int, tag: str, priority: str) -> None:
    flow = flow_engine.compile(_load("lead-intake.json", crm))
    lead = {"lead_id": f"L-{amount}", "name": "Zhang San", "phone": "13800000000", "source": "douyin", "amount": amount}
    run = await flow_engine.run(flow, {"body": lead, "headers": {}, "query": {}})
    assert run.status == "succeeded", run.error
    assert run.output == {"ok": True, "crm_id": len(crm.leads), "tag": tag}
    assert crm.leads[-1]["priority"] == priority and crm.leads[-1]["external_id"] == f"L-{amount}"
    expected_prefix = "[HIGH VALUE]" if tag == "high_value" else "[new lead]"
    assert crm.messages[-1] == f"{expected_prefix} L-{amount} Zhang San (douyin) amount {amount}, CRM id {len(crm.leads)}"


async def test_customer_tiers(flow_engine: FlowEngine, crm: FakeCrm) -> None:
    definition = _load("customer-tiers.json", crm)
    flow = flow_engine.compile(definition)
    run = await flow_engine.run(flow, definition["trigger"]["sample"])
    assert run.status == "succeeded", run.error
    out = run.output
    assert [(c["id"], c["spend"], c["tier"]) for c in out["tiers"]] == [("C1", 6000, "high_value"), ("C2", 300, "normal"), ("C3", 0, "normal")]
    assert out["high_value"] == ["C1"]
    assert out["published"] == {"crm": 200, "robot": 200}
    assert crm.tiers[-1][0]["id"] == "C1"
    assert crm.messages[-1] == "Tiers updated: 1 high-value customer(s) of 3"


async def test_order_digest(flow_engine: FlowEngine) -> None:
    definition = json.loads((FLOWS / "order-digest.json").read_text())
    flow = flow_engine.compile(definition)
    logged: list[str] = []
    run = await flow_engine.run(flow, definition["trigger"]["sample"], log=logged.append)
    assert run.status == "succeeded", run.error
    assert run.output["orders"] == 3
    assert [o["no"] for o in run.output["big_orders"]] == ["SO-1003", "SO-1001"]
    assert run.output["big_total"] == 13550
    assert logged == ["[info] #1 SO-1003 Wang Wu: ¥9000", "[info] #2 SO-1001 Li Lei: ¥4550"]
    small = {"orders": [{"no": "S1", "customer": "A", "lines": [{"sku": "x", "qty": 1, "price": 5}]}]}
    quiet = await flow_engine.run(flow, small, log=logged.append)
    assert quiet.output["big_orders"] == [] and logged[-1] == "[info] no order over ¥3000 today"
