"""End to end in headless Chromium against a real `flowlink serve`, with generic steps: build a lead
flow on the canvas by drag-and-drop and forms (a choice branch, expressions with completion, syntax
flagging and previews, a step test), save (fixing an issue the API points at), activate, fire its
webhook, watch the run succeed, break the CRM credential, see the failure on the node, fix it, retry
from the failed step. test_douyin_lead_e2e.py does the same with the Douyin, Fxiaoke and DingTalk connectors.

The flow: webhook -> map_lead (set, an expression) -> route (choice: amount over 3000?) ->
create_lead (http.request to the fake CRM with a bearer connection) -> notify (http.request to the
fake robot); small leads go to `ignore` (succeed).
"""
from __future__ import annotations

import json
import re

import httpx

from tests.browser.canvas import as_expression, connect, drop, field, log_in, node, open_node, rename

LEAD = {"lead_id": "L1", "name": "张三", "phone": "13800000000", "amount": 4200}


def wait_status(page, node_id: str, status: str) -> None:
    """Wait until a node of the run view shows `status`."""
    page.locator(f".fl-node[data-node='{node_id}'][data-status='{status}']").wait_for(timeout=30_000)


def test_build_run_break_fix_retry_a_lead_flow(page, service, fake_sales) -> None:
    fake, sandbox = fake_sales
    api = service.api()
    assert api.post("/api/connections", json={"name": "crm", "connector": "http",
                                               "fields": {"auth": "bearer", "token": fake.token}}).status_code == 201

    log_in(page)
    page.get_by_role("button", name="新建流程").click()
    page.fill("input[name=flow-id]", "lead-to-crm")
    page.fill("input[name=flow-name]", "线索进 CRM 并通知销售群")
    page.get_by_role("button", name="创建").click()
    page.wait_for_selector("[data-testid=palette]")

    # the trigger: a webhook with sample data for completion, previews and step tests
    trigger = open_node(page, "__trigger__")
    trigger.locator("textarea[name=trigger-sample]").fill(json.dumps({"body": LEAD}, ensure_ascii=False))
    assert trigger.get_by_test_id("webhook-url").inner_text().endswith("/hooks/lead-to-crm")

    # steps from the palette, dragged onto the canvas
    drop(page, "set", 420, 180)
    drop(page, "choice", 420, 310)
    drop(page, "http.request", 260, 450)
    drop(page, "succeed", 640, 450)
    drop(page, "http.request", 260, 590)
    for old, new in [("set", "map_lead"), ("choice", "route"), ("http_request", "create_lead"), ("succeed", "ignore"), ("http_request_2", "notify")]:
        rename(page, old, new)

    connect(page, "__trigger__", "next", "map_lead")
    connect(page, "map_lead", "next", "route")
    connect(page, "route", "choice-0", "create_lead")
    connect(page, "route", "default", "ignore")
    connect(page, "create_lead", "next", "notify")

    # map_lead: an expression with path completion, syntax flagging and a live preview
    panel = open_node(page, "map_lead")
    value = as_expression(panel, "value", "{name: trigger.body.na")
    value.get_by_role("option", name="trigger.body.name").click()
    assert value.locator(".expr input").input_value() == "{name: trigger.body.name"
    assert "无效" in value.get_by_test_id("expr-error").inner_text()  # unbalanced brace flagged as you type
    value.locator(".expr input").fill("{name: trigger.body.name, mobile: trigger.body.phone, amount: trigger.body.amount}")
    assert '"name":"张三"' in value.get_by_test_id("expr-preview").inner_text()
    panel.get_by_role("button", name="测试此步骤").click()
    assert '"amount": 4200' in panel.get_by_test_id("test-result").inner_text()

    # route: the condition previews against map_lead's tested output
    panel = open_node(page, "route")
    rule = panel.locator("[data-rule='0'] input")
    rule.fill("steps.map_lead.output.amount > `3000`")
    panel.locator("[data-rule='0']").get_by_test_id("expr-preview").filter(has_text="true").wait_for()

    # create_lead: connection picker, enum, literal URL, JSON body from an expression, retry in words
    panel = open_node(page, "create_lead")
    panel.locator("select[name=connection]").select_option("crm")
    field(panel, "method").locator("select").select_option("POST")
    field(panel, "url").locator("input").fill(f"{sandbox.base_url}/crm/leads")
    as_expression(panel, "json", "steps.map_lead.output")
    panel.locator("input[name=retry-times]").fill("0")

    # notify: a URL the API rejects first
    panel = open_node(page, "notify")
    field(panel, "method").locator("select").select_option("POST")
    field(panel, "url").locator("input").fill("robot/send")
    message = {"msgtype": "text", "text": {"content": "新线索 {{ trigger.body.name }}，CRM 编号 {{ steps.create_lead.output.body.id }}"}}
    field(panel, "json").locator("textarea").fill(json.dumps(message, ensure_ascii=False))

    page.get_by_role("button", name="保存", exact=True).click()
    page.fill("input[name=save-message]", "第一版")
    page.locator(".dialog").get_by_role("button", name="保存").click()
    assert "does not match" in node(page, "notify").get_by_test_id("node-issue").inner_text()
    panel = open_node(page, "notify")
    assert "does not match" in field(panel, "url").get_by_test_id("field-issue").inner_text()
    field(panel, "url").locator("input").fill(f"{sandbox.base_url}/robot/send")
    page.get_by_role("button", name="保存", exact=True).click()
    page.fill("input[name=save-message]", "第一版")
    page.locator(".dialog").get_by_role("button", name="保存").click()
    page.get_by_text("已保存为版本 1").wait_for()
    assert node(page, "notify").get_by_test_id("node-issue").count() == 0

    saved = api.get("/api/flows/lead-to-crm").json()["definition"]
    steps = {s["id"]: s for s in saved["steps"]}
    assert steps["route"]["choices"] == [{"when": "steps.map_lead.output.amount > `3000`", "next": "create_lead"}]
    assert steps["route"]["default"] == "ignore"
    assert steps["create_lead"]["args"]["json"] == {"$expr": "steps.map_lead.output"}
    assert steps["create_lead"]["connection"] == "crm" and steps["create_lead"]["retry"] == []
    assert set(saved["layout"]["nodes"]) >= {"__trigger__", "map_lead", "route", "create_lead", "notify", "ignore"}

    page.get_by_role("button", name="启用").click()
    page.get_by_test_id("active-badge").filter(has_text="已启用").wait_for()

    # fire the webhook (what the curl command in the trigger panel does) and watch the run
    first = httpx.post(f"{service.url}/hooks/lead-to-crm", json=LEAD, timeout=10).json()["run_id"]
    page.get_by_role("link", name="运行记录").click()
    page.locator(f"tr[data-run='{first}'] a").click()
    wait_status(page, "notify", "succeeded")
    assert [lead["name"] for lead in fake.leads] == ["张三"] and fake.messages == ["新线索 张三，CRM 编号 CRM-1"]

    # break the CRM credential: the next lead fails at create_lead, shown on the node
    set_crm_token(page, "wrong-token")
    second = httpx.post(f"{service.url}/hooks/lead-to-crm", json={**LEAD, "lead_id": "L2", "name": "李四"}, timeout=10).json()["run_id"]
    page.goto(f"/runs/{second}")
    wait_status(page, "create_lead", "failed")
    wait_status(page, "map_lead", "succeeded")
    assert page.locator(".fl-node[data-node='notify'][data-status='']").count() == 1
    node(page, "create_lead").click()
    page.get_by_test_id("run-panel").locator("[data-step='create_lead']").wait_for()
    assert re.search(r"401|AuthExpired|PermissionDenied", page.get_by_test_id("run-panel").inner_text())

    # fix it and retry from the failed step: map_lead's output is reused, the rest runs again
    set_crm_token(page, fake.token)
    page.goto(f"/runs/{second}")
    page.get_by_role("button", name="从失败步骤重试").click()
    page.wait_for_url(re.compile(r"/runs/(?!" + second + ")"))
    wait_status(page, "notify", "succeeded")
    retried = api.get(f"/api/runs/{page.url.rsplit('/', 1)[1]}").json()
    assert retried["resumed_from"] == second and retried["status"] == "succeeded"
    assert [(s["step_id"], s["status"]) for s in retried["steps"]] == [("create_lead", "succeeded"), ("notify", "succeeded")]
    assert [lead["name"] for lead in fake.leads] == ["张三", "李四"]
    assert page.errors == []


def set_crm_token(page, token: str) -> None:
    """Change the `crm` connection's secret on the Connections page (secrets are write-only)."""
    page.get_by_role("link", name="连接").click()
    page.get_by_role("row", name=re.compile("crm")).get_by_role("button", name="更新密钥").click()
    page.fill("textarea[name=connection-fields]", json.dumps({"auth": "bearer", "token": token}))
    page.locator(".dialog").get_by_role("button", name="保存").click()
    page.get_by_text("crm ✓").wait_for()
