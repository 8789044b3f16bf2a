"""End to end in headless Chromium against a real `flowlink serve` and the connectors' own fake
platforms: a Douyin lead push -> a lead in Fxiaoke CRM -> a DingTalk group robot notice, built from
scratch on the canvas (connector trigger, palette, forms with a dynamic owner dropdown loaded through
the Fxiaoke connection, connection pickers), saved, activated, fired by the fake Douyin with a signed
callback. Then the robot's secret is broken on the Connections page, the failed notice shows on its
node, the secret is fixed and the run is retried from the failed step: the CRM lead is not created
twice. The README's screenshots (docs/screenshots) are taken here, so they stay current.
"""
from __future__ import annotations

import re
from typing import Iterator

import httpx
import pytest

from connectors.dingtalk import sandbox as dingtalk_fake
from connectors.douyin.sandbox import SANDBOX_CLIENT_KEY, SANDBOX_CLIENT_SECRET, SANDBOX_OPEN_ID, SANDBOX_REFRESH_TOKEN, FakeDouyin
from connectors.fxiaoke.sandbox import SANDBOX_APP_ID, SANDBOX_APP_SECRET, SANDBOX_PERMANENT_CODE, SANDBOX_USER, FakeFxiaoke
from connectors.sdk.sandbox import SandboxServer
from tests.browser.canvas import as_expression, connect, drop, field, log_in, node, open_latest_run, open_node, rename
from tests.browser.conftest import SCREENSHOTS


@pytest.fixture(scope="module")
def platforms() -> Iterator[dict]:
    """The fake Douyin, Fxiaoke and DingTalk, each served on 127.0.0.1."""
    douyin, fxiaoke, dingtalk = FakeDouyin(), FakeFxiaoke(), dingtalk_fake.FakeDingTalk(ack_deadline=30.0)
    with SandboxServer(douyin.app) as dy, SandboxServer(fxiaoke.app) as fx, SandboxServer(dingtalk.app) as dt:
        yield {"douyin": douyin, "fxiaoke": fxiaoke, "dingtalk": dingtalk, "urls": {"dy": dy.base_url, "fx": fx.base_url, "dt": dt.base_url}}


def wait_status(page, node_id: str, status: str) -> None:
    """Wait until a node of the run view shows `status`."""
    page.locator(f".fl-node[data-node='{node_id}'][data-status='{status}']").wait_for(timeout=30_000)


def set_robot_secret(page, secret: str) -> None:
    """Change only the robot secret of `dt-robot` on the Connections page (other fields keep their values)."""
    page.get_by_role("link", name="连接").click()
    page.get_by_role("row", name=re.compile("dt-robot")).get_by_role("button", name="更新密钥").click()
    dialog = page.locator(".dialog")
    dialog.locator("[data-field=robot_secret] input").fill(secret)
    dialog.get_by_role("button", name="保存").click()
    page.get_by_text("dt-robot ✓").wait_for()


def leads(fxiaoke: FakeFxiaoke) -> list[dict]:
    """The CRM's leads created by the flow (the fake seeds a few of its own)."""
    return [r for r in fxiaoke.records["LeadsObj"].values() if str(r.get("remark") or "").startswith("抖音")]


def test_douyin_lead_to_fxiaoke_and_dingtalk(page, service, platforms) -> None:
    douyin, fxiaoke, dingtalk, urls = platforms["douyin"], platforms["fxiaoke"], platforms["dingtalk"], platforms["urls"]
    api = service.api()
    for name, connector, fields in [
        ("dy", "douyin", {"client_key": SANDBOX_CLIENT_KEY, "client_secret": SANDBOX_CLIENT_SECRET, "refresh_token": SANDBOX_REFRESH_TOKEN,
                          "open_id": SANDBOX_OPEN_ID, "base_url": urls["dy"]}),
        ("fx", "fxiaoke", {"app_id": SANDBOX_APP_ID, "app_secret": SANDBOX_APP_SECRET, "permanent_code": SANDBOX_PERMANENT_CODE,
                           "open_user_id": SANDBOX_USER, "base_url": urls["fx"]}),
    ]:
        assert api.post("/api/connections", json={"name": name, "connector": connector, "fields": fields}).status_code == 201, name

    log_in(page)
    # the DingTalk robot connection through its generated form; secrets are password fields
    page.get_by_role("link", name="连接").click()
    page.get_by_role("button", name="新建连接").click()
    dialog = page.locator(".dialog")
    dialog.locator("input[name=connection-name]").fill("dt-robot")
    dialog.locator("select[name=connection-connector]").select_option("dingtalk")
    assert dialog.locator("[data-field=robot_secret] input").get_attribute("type") == "password"
    dialog.locator("[data-field=robot_access_token] input").fill(dingtalk_fake.ROBOT_SIGN_TOKEN)
    dialog.locator("[data-field=robot_secret] input").fill(dingtalk_fake.ROBOT_SECRET)
    dialog.locator("[data-field=base_url] input").fill(urls["dt"])
    dialog.get_by_role("button", name="创建").click()
    page.get_by_text("dt-robot ✓").wait_for()
    assert dingtalk_fake.ROBOT_SECRET not in page.content()

    page.get_by_role("link", name="流程").click()
    page.get_by_role("button", name="新建流程").click()
    page.fill("input[name=flow-id]", "douyin-leads")
    page.fill("input[name=flow-name]", "抖音线索 → 纷享销客 → 钉钉群通知")
    page.get_by_role("button", name="创建").click()

    # the trigger: Douyin's lead push, verified with the `dy` connection's client secret
    trigger = open_node(page, "__trigger__")
    trigger.locator("select[name=trigger-type]").select_option("douyin.new_lead")
    trigger.locator("select[name=trigger-connection]").select_option("dy")
    trigger.locator("input[name=trigger-path]").fill("leads")
    assert trigger.get_by_test_id("webhook-url").inner_text().endswith("/hooks/douyin/leads")

    page.get_by_placeholder("搜索动作…").fill("线索")
    drop(page, "fxiaoke.create_lead", 420, 190)
    page.get_by_placeholder("搜索动作…").fill("robot")
    drop(page, "dingtalk.robot_send", 420, 340)
    rename(page, "fxiaoke_create_lead", "crm_lead")
    rename(page, "dingtalk_robot_send", "notice")
    connect(page, "__trigger__", "next", "crm_lead")
    connect(page, "crm_lead", "next", "notice")

    panel = open_node(page, "crm_lead")
    panel.locator("select[name=connection]").select_option("fx")
    name = as_expression(panel, "name", "trigger.lead.name")
    name.get_by_test_id("expr-preview").filter(has_text="Zhang Wei").wait_for()  # from the trigger's sample
    owner = field(panel, "owner_id").locator("select")
    owner.focus()  # the choices come from Fxiaoke's user list, through the connection
    owner.locator(f"option[value='{SANDBOX_USER}']").wait_for(state="attached")
    owner.select_option(SANDBOX_USER)
    as_expression(panel, "mobile", "trigger.lead.phone")
    field(panel, "remark").locator("textarea").fill("抖音 {{ trigger.lead.source }} 线索 {{ trigger.lead.lead_id }}")

    panel = open_node(page, "notice")
    panel.locator("select[name=connection]").select_option("dt-robot")
    field(panel, "content").locator("textarea").fill("抖音新线索：{{ trigger.lead.name }} {{ trigger.lead.phone }}，纷享销客 {{ steps.crm_lead.output.id }}")
    panel.locator("input[name=retry-times]").fill("0")

    page.get_by_role("button", name="保存", exact=True).click()
    page.fill("input[name=save-message]", "抖音线索进 CRM 并通知")
    page.locator(".dialog").get_by_role("button", name="保存").click()
    page.get_by_text("已保存为版本 1").wait_for()
    page.get_by_placeholder("搜索动作…").fill("")
    open_node(page, "crm_lead").get_by_test_id("expr-preview").first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "editor.png"))
    page.get_by_role("button", name="启用").click()
    page.get_by_test_id("active-badge").filter(has_text="已启用").wait_for()

    hook = f"{service.url}/hooks/douyin/leads"
    with httpx.Client(timeout=10) as client:
        first = douyin.deliver(hook, douyin.lead_event({"clue_id": "clue-9", "name": "王小明", "telephone": "13800001111"}), client=client)
        assert first.statuses == [200]
    open_latest_run(page, "douyin-leads")
    wait_status(page, "notice", "succeeded")
    created = leads(fxiaoke)
    assert [(r["name"], r["mobile"], r["owner"]) for r in created] == [("王小明", "13800001111", [SANDBOX_USER])]
    sent = dingtalk.robot_messages[dingtalk_fake.ROBOT_SIGN_TOKEN]
    assert sent[-1]["text"]["content"] == f"抖音新线索：王小明 13800001111，纷享销客 {created[0]['_id']}"

    # break the robot's secret: the notice fails (the lead is already in the CRM)
    set_robot_secret(page, "not-the-robot-secret")
    with httpx.Client(timeout=10) as client:
        douyin.deliver(hook, douyin.lead_event({"clue_id": "clue-10", "name": "李华", "telephone": "13900002222"}), client=client)
    open_latest_run(page, "douyin-leads", "failed")
    wait_status(page, "notice", "failed")
    wait_status(page, "crm_lead", "succeeded")
    node(page, "notice").click()
    assert "310000" in page.get_by_test_id("run-panel").inner_text() or "sign" in page.get_by_test_id("run-panel").inner_text().lower()
    page.screenshot(path=str(SCREENSHOTS / "run.png"))
    failed_run = page.url.rsplit("/", 1)[1]

    # fix the secret and retry from the failed step: only the notice runs again
    set_robot_secret(page, dingtalk_fake.ROBOT_SECRET)
    page.goto(f"/runs/{failed_run}")
    page.get_by_role("button", name="从失败步骤重试").click()
    page.wait_for_url(re.compile(r"/runs/(?!" + failed_run + ")"))
    wait_status(page, "notice", "succeeded")
    retried = api.get(f"/api/runs/{page.url.rsplit('/', 1)[1]}").json()
    assert retried["status"] == "succeeded" and retried["resumed_from"] == failed_run
    assert [s["step_id"] for s in retried["steps"]] == ["notice"]
    assert [r["name"] for r in leads(fxiaoke)] == ["王小明", "李华"]  # no duplicate lead
    assert sent[-1]["text"]["content"].startswith("抖音新线索：李华 13900002222")
    assert page.errors == []
