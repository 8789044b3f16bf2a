"""GET /metrics: runs, step latency, retries, webhook intake and queue depth, through HTTP."""
from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from connectors.http import sandbox as http_sandbox
from connectors.sdk.sandbox import SandboxServer


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics (fetched without a login) by (name, sorted labels)."""
    answer = client.get("/metrics", headers={"Authorization": ""})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_runs_steps_retries_and_webhooks_are_counted(api_client: TestClient) -> None:
    server = SandboxServer(http_sandbox.app()).start()
    try:
        flow = {"id": "calls", "name": "calls", "trigger": {"type": "manual"}, "steps": [
            {"id": "ok", "type": "action", "action": "http.request", "args": {"url": f"{server.base_url}/echo"}},
            {"id": "flaky", "type": "action", "action": "http.request", "args": {"url": f"{server.base_url}/status/503"},
             "retry": [{"errors": ["Transient"], "max_attempts": 3, "interval": 0}]}]}
        assert api_client.post("/api/flows", json={"definition": flow}).status_code == 201
        run = api_client.post("/api/flows/calls/runs", params={"wait": 15}, json={}).json()
        assert run["status"] == "failed"
        hello = {"id": "hello", "name": "hello", "trigger": {"type": "manual"},
                 "steps": [{"id": "hi", "type": "set", "value": "hi"}]}
        api_client.post("/api/flows", json={"definition": hello})
        for _ in range(2):
            assert api_client.post("/api/flows/hello/runs", params={"wait": 10}, json={}).json()["status"] == "succeeded"

        hook = {"id": "intake", "name": "intake", "trigger": {"type": "webhook", "path": "intake", "dedupe_key": "body.id"},
                "steps": [{"id": "echo", "type": "set", "value": {"$expr": "trigger.body"}}]}
        api_client.post("/api/flows", json={"definition": hook})
        api_client.post("/api/flows/intake/activate")
        assert api_client.post("/hooks/intake", json={"id": "E1"}).status_code == 202
        assert api_client.post("/hooks/intake", json={"id": "E1"}).json()["duplicate"] is True
        assert api_client.post("/hooks/intake", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
        assert api_client.post("/hooks/nowhere", json={}).status_code == 404
        wait_for(lambda: value(scrape(api_client), "flowlink_runs_total", flow="intake", status="succeeded") == 1)

        samples = scrape(api_client)
        assert value(samples, "flowlink_runs_total", flow="calls", status="failed") == 1
        assert value(samples, "flowlink_runs_total", flow="hello", status="succeeded") == 2
        assert value(samples, "flowlink_step_duration_seconds_count", action="http.request", status="succeeded") == 1
        assert value(samples, "flowlink_step_duration_seconds_count", action="http.request", status="failed") == 1
        assert value(samples, "flowlink_step_duration_seconds_count", action="set", status="succeeded") >= 3
        assert value(samples, "flowlink_step_duration_seconds_sum", action="http.request", status="succeeded") > 0
        assert value(samples, "flowlink_step_retries_total", action="http.request") == 2
        assert value(samples, "flowlink_webhook_requests_total", flow="intake", outcome="accepted") == 1
        assert value(samples, "flowlink_webhook_requests_total", flow="intake", outcome="duplicate") == 1
        assert value(samples, "flowlink_webhook_requests_total", flow="intake", outcome="rejected") == 1
        assert value(samples, "flowlink_webhook_requests_total", flow="", outcome="rejected") == 1
        wait_for(lambda: value(scrape(api_client), "flowlink_webhook_queue_depth", status="accepted") == 0)
    finally:
        server.stop()


def test_queue_depth_counts_accepted_and_running_events(api_client: TestClient) -> None:
    inbox = api_client.app.state.flowlink.inbox
    hook = {"id": "queued", "name": "queued", "trigger": {"type": "webhook", "path": "queued"},
            "steps": [{"id": "echo", "type": "set", "value": 1}]}
    api_client.post("/api/flows", json={"definition": hook})
    api_client.post("/api/flows/queued/activate")
    # hold the dispatcher back: with no free slot nothing is claimed
    limit, inbox.max_concurrent = inbox.max_concurrent, 0
    try:
        for n in range(3):
            assert api_client.post("/hooks/queued", json={"n": n}).status_code == 202
        assert value(scrape(api_client), "flowlink_webhook_queue_depth", status="accepted") == 3
    finally:
        inbox.max_concurrent = limit
        inbox.wake.set()
    # claimed (accepted -> running) before they finish: wait for the runs, not just the claims
    wait_for(lambda: value(scrape(api_client), "flowlink_runs_total", flow="queued", status="succeeded") == 3)
    wait_for(lambda: value(scrape(api_client), "flowlink_webhook_queue_depth", status="running") == 0)
    assert value(scrape(api_client), "flowlink_webhook_queue_depth", status="accepted") == 0
