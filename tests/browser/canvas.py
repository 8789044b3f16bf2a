"""Playwright helpers for the editor: log in, drop palette items, draw edges, open and configure nodes."""
from __future__ import annotations

import re
from typing import Any

from tests.browser.service import ADMIN_PASSWORD

Page = Any  # playwright.sync_api.Page (imported lazily: the package may be missing when tests are skipped)


def log_in(page: Page) -> None:
    """Log in as admin through the login form."""
    page.goto("/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("header.topbar")


def node(page: Page, node_id: str) -> Any:
    """The canvas node of a step (or `__trigger__`)."""
    return page.locator(f".react-flow__node[data-id='{node_id}']")


def drop(page: Page, kind: str, x: int, y: int) -> None:
    """Drag a palette item (`set`, `choice`, `http.request`, ...) onto the canvas at pane coordinates."""
    before = page.locator(".react-flow__node").count()
    page.locator(f".palette-item[data-kind='{kind}']").drag_to(page.locator(".react-flow__pane"), target_position={"x": x, "y": y})
    page.wait_for_function(f"document.querySelectorAll('.react-flow__node').length > {before}")


def connect(page: Page, source: str, handle: str, target: str) -> None:
    """Draw an edge with the mouse from a source handle to the target node's input handle."""
    start = node(page, source).locator(f".react-flow__handle.source[data-handleid='{handle}']").bounding_box()
    end = node(page, target).locator(".react-flow__handle.target").bounding_box()
    assert start and end, f"handles of {source}/{handle} -> {target} not on screen"
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2 + 4, steps=8)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=2)
    page.mouse.up()
    page.locator(f".react-flow__edge[data-id='{source}:{handle}->{target}']").wait_for(state="attached")


def open_node(page: Page, node_id: str) -> Any:
    """Click a node and return its side panel."""
    node(page, node_id).click()
    if node_id == "__trigger__":
        return page.locator("[data-testid=trigger-panel]")
    panel = page.locator(f"[data-testid=step-panel][aria-label='{node_id}']")
    panel.wait_for()
    return panel


def rename(page: Page, old: str, new: str) -> Any:
    """Give the selected step a new id (the panel's step id box, committed on blur)."""
    panel = open_node(page, old)
    panel.locator("input[name=step-id]").fill(new)
    panel.locator("input[name=step-title]").click()
    node(page, new).wait_for()
    return page.locator(f"[data-testid=step-panel][aria-label='{new}']")


def field(panel: Any, name: str) -> Any:
    """A top-level field of the step's generated form."""
    return panel.locator(f".field[data-field='{name}']").first


def as_expression(panel: Any, name: str, text: str) -> Any:
    """Switch a form field to expression mode and type the expression; returns the field."""
    box = field(panel, name)
    box.locator("button[data-mode=expr]").click()
    box.locator(".expr input").fill(text)
    return box


def filter_runs(page: Page, flow_id: str, status: str | None = None) -> Any:
    """Go to the Runs page, filter by flow (and status), wait for the filtered list; its rows."""
    page.get_by_role("link", name=re.compile("^(运行记录|Runs)$")).click()
    page.locator(f"select[aria-label] option[value='{flow_id}']").first.wait_for(state="attached")
    page.locator("select").nth(0).select_option(flow_id)
    if status:
        page.locator("select").nth(1).select_option(status)
    wanted = f"tr[data-run][data-flow='{flow_id}']" + (f"[data-status='{status}']" if status else "")
    # the list reloads after each filter change: wait until it shows only matching runs
    page.wait_for_function("([all, wanted]) => document.querySelectorAll(all).length > 0 && "
                           "document.querySelectorAll(all).length === document.querySelectorAll(wanted).length",
                           arg=["tr[data-run]", wanted])
    return page.locator(wanted)


def open_latest_run(page: Page, flow_id: str, status: str | None = None) -> None:
    """Open the newest run of a flow (with that status) from the Runs page."""
    filter_runs(page, flow_id, status).first.locator("a").click()
