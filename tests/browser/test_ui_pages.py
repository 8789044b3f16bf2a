"""The editor's other pages in headless Chromium against a real `flowlink serve`: language switch,
flow list (import, search, export), version history (diff, roll back), a concurrent save reported
instead of overwritten, the runs list (filters, bulk retry), data tables (add and edit rows) and the
audit log."""
from __future__ import annotations

import json
from pathlib import Path

from tests.browser.canvas import filter_runs, log_in, node
from tests.browser.service import ROOT

EXAMPLE = ROOT / "flows" / "customer-tiers.json"
FAILING = {"id": "always-fails", "name": "Always fails", "trigger": {"type": "manual"},
           "steps": [{"id": "prepare", "type": "set", "value": 1}, {"id": "boom", "type": "fail", "error": "Boom", "message": "no"}]}


def test_language_flow_list_versions_and_conflict(page, service, tmp_path: Path) -> None:
    api = service.api()
    log_in(page)
    page.get_by_role("button", name="English").click()
    page.get_by_role("link", name="Flows").wait_for()
    page.reload()
    page.get_by_role("button", name="New flow").wait_for()  # the choice is kept

    # import a JSON file, find it, export it
    page.get_by_test_id("import-file").set_input_files(str(EXAMPLE))
    page.get_by_text("Imported: customer-tiers v1").wait_for()
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    page.get_by_test_id("import-file").set_input_files(str(bad))
    page.get_by_text("broken.json: not valid JSON").wait_for()
    page.get_by_role("searchbox", name="Search").fill("tiers")
    row = page.locator("tr[data-flow='customer-tiers']")
    row.wait_for()
    with page.expect_download() as download:
        row.get_by_role("button", name="Export").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["id"] == "customer-tiers" and "version" not in exported

    # move a node, save version 2, diff it against version 1 side by side, roll back
    row.get_by_role("link").first.click()
    page.get_by_role("button", name="Versions").wait_for()
    box = node(page, "ranked").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 15)
    page.mouse.down()
    page.mouse.move(box["x"] + 240, box["y"] + 45, steps=6)
    page.mouse.up()
    page.get_by_text("Unsaved changes").wait_for()
    page.get_by_role("button", name="Save", exact=True).click()
    page.fill("input[name=save-message]", "tidy the layout")
    page.locator(".dialog").get_by_role("button", name="Save").click()
    page.get_by_text("Saved as version 2").wait_for()
    v2 = api.get("/api/flows/customer-tiers").json()["definition"]
    v1 = api.get("/api/flows/customer-tiers", params={"version": 1}).json()["definition"]
    assert v2["layout"]["nodes"]["ranked"] != (v1.get("layout") or {}).get("nodes", {}).get("ranked")
    page.get_by_role("button", name="Versions").click()
    page.locator("tr[data-version='1']").get_by_role("button", name="Diff").click()
    assert '"ranked"' in page.get_by_test_id("diff").inner_text()
    page.locator("tr[data-version='1']").get_by_role("button", name="Roll back to this version").click()
    page.get_by_text("Rolled back").wait_for()
    page.get_by_text("customer-tiers v3").wait_for()  # the editor reloaded the rolled-back version
    assert api.get("/api/flows/customer-tiers").json()["version"] == 3

    # someone else saves meanwhile: the save is refused and explained, nothing is overwritten
    current = api.get("/api/flows/customer-tiers").json()
    definition = {k: v for k, v in current["definition"].items() if k != "version"}
    assert api.put("/api/flows/customer-tiers", json={"definition": {**definition, "name": "Renamed elsewhere"},
                                                      "expected_version": 3, "message": "elsewhere"}).status_code == 200
    box = node(page, "ranked").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 15)
    page.mouse.down()
    page.mouse.move(box["x"] + 90, box["y"] + 95, steps=5)
    page.mouse.up()
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator(".dialog").get_by_role("button", name="Save").click()
    page.get_by_text("Someone else saved this flow as version 4").wait_for()
    assert api.get("/api/flows/customer-tiers").json()["definition"]["name"] == "Renamed elsewhere"
    page.get_by_role("button", name="Reload").click()
    page.get_by_role("heading", name="Renamed elsewhere").wait_for()
    assert page.errors == []


def test_runs_tables_and_audit(page, service) -> None:
    api = service.api()
    assert api.post("/api/flows", json={"definition": FAILING}).status_code == 201
    for _ in range(2):
        assert api.post("/api/flows/always-fails/runs", params={"wait": 10}).json()["status"] == "failed"
    assert api.post("/api/tables", json={"name": "customers", "key": "code", "required": ["code"],
                                         "columns": {"code": {"type": "string"}, "city": {"type": "string"}, "spend": {"type": "number"}}}).status_code == 201

    log_in(page)
    assert filter_runs(page, "always-fails", "failed").count() == 2
    page.get_by_role("button", name="批量重试失败的运行").click()
    page.get_by_text("已重试 2 个运行").wait_for()
    assert len(api.get("/api/runs", params={"flow_id": "always-fails"}).json()) == 4
    page.locator("tr[data-run] a").first.click()
    page.locator(".fl-node[data-node='boom'][data-status='failed']").wait_for()

    page.get_by_role("link", name="数据表").click()
    page.get_by_role("button", name="添加一行").click()
    dialog = page.locator(".dialog")
    dialog.locator("#root_code").fill("C-1")
    dialog.locator("#root_city").fill("上海")
    dialog.locator("#root_spend").fill("1200")
    dialog.get_by_role("button", name="保存").click()
    page.get_by_test_id("rows").get_by_text("上海").wait_for()
    page.get_by_test_id("rows").get_by_role("button", name="编辑").click()
    page.locator(".dialog #root_city").fill("杭州")
    page.locator(".dialog").get_by_role("button", name="保存").click()
    page.get_by_test_id("rows").get_by_text("杭州").wait_for()
    assert api.get("/api/tables/customers/rows").json()["rows"][0]["city"] == "杭州"

    page.get_by_role("link", name="审计日志").click()
    page.get_by_role("textbox", name="操作人").fill("admin")
    page.get_by_role("button", name="筛选").click()
    page.get_by_role("cell", name="run.retry").first.wait_for()
    assert page.errors == []


def test_new_flow_from_a_template(page, service) -> None:
    """The shipped flows are templates: a new flow starts as a copy under its own id and path."""
    api = service.api()
    if api.get("/api/connections/wecom-main").status_code == 404:  # the template names this connection
        created = api.post("/api/connections", json={"name": "wecom-main", "connector": "wecom", "fields": {
            "corp_id": "ww0123456789abcdef", "app_secret": "s" * 43, "agent_id": 1000002,
            "token": "tok", "encoding_aes_key": "a" * 43}})
        assert created.status_code == 201, created.text
    log_in(page)
    page.get_by_role("button", name="新建流程").click()
    page.locator("select[name=flow-template]").select_option("wecom-welcome")
    page.get_by_text("wecom.callback · ").wait_for()  # the template's trigger and connectors
    page.fill("input[name=flow-id]", "welcome-shop-2")
    page.locator(".dialog").get_by_role("button", name="创建").click()
    node(page, "welcome").wait_for()  # the template's steps are on the canvas
    page.get_by_role("button", name="保存", exact=True).click()
    page.fill("input[name=save-message]", "from the template")
    page.locator(".dialog").get_by_role("button", name="保存").click()
    page.get_by_text("已保存为版本 1").wait_for()
    saved = api.get("/api/flows/welcome-shop-2").json()["definition"]
    template = api.get("/api/templates/wecom-welcome").json()
    shape = lambda steps: [(x["id"], x["type"], x.get("action"), x.get("args")) for x in steps]  # noqa: E731
    assert shape(saved["steps"]) == shape(template["steps"]) and saved["trigger"]["type"] == "wecom.callback"
    assert saved["trigger"]["path"] == "welcome-shop-2" and saved["name"] == template["name"]
