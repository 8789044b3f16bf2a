"""connectors.sdk.sandbox (serving a connector's fake on 127.0.0.1) and `flowlink sandbox`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.sdk import Connector
from connectors.sdk.sandbox import SandboxError, SandboxServer, free_port, has_sandbox, start_sandbox

ROOT = Path(__file__).resolve().parent.parent


def _app() -> Starlette:
    async def ping(request):  # noqa: ANN001, ANN202
        return JSONResponse({"pong": True})

    return Starlette(routes=[Route("/ping", ping)])


def test_server_serves_and_stops() -> None:
    with SandboxServer(_app()) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{server.base_url}/ping").json() == {"pong": True}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/ping", timeout=2)


def test_start_sandbox_uses_the_factory_and_explains_what_is_missing() -> None:
    with_fake = Connector(name="withfake", version="1.0.0", title={"en": "With fake"}, sandbox=_app)
    assert has_sandbox(with_fake)
    server = start_sandbox(with_fake)
    try:
        assert httpx.get(f"{server.base_url}/ping").status_code == 200
    finally:
        server.stop()

    bare = Connector(name="bare", version="1.0.0", title={"en": "Bare"})
    assert not has_sandbox(bare)
    with pytest.raises(SandboxError, match="connector 'bare' declares no sandbox"):
        start_sandbox(bare)

    def broken() -> Starlette:
        raise RuntimeError("no fixtures")

    with pytest.raises(SandboxError, match="its sandbox factory failed: RuntimeError: no fixtures"):
        start_sandbox(Connector(name="broken", version="1.0.0", title={"en": "Broken"}, sandbox=broken))


def _flowlink(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWLINK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_cli_serves_the_demo_fake_until_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("flowlink_connector_demo")
    port = free_port()
    env = {**os.environ, "FLOWLINK_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "sandbox", "demo", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.split() == ["demo", f"http://127.0.0.1:{port}"], proc.stderr.read() if not line else line
        owners = httpx.get(f"http://127.0.0.1:{port}/v1/owners", headers={"Authorization": "Bearer demo-key"})
        assert owners.status_code == 200 and owners.json()["data"][0]["id"] == "u1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/owners", timeout=2)


def test_cli_refuses_unknown_connectors_and_ones_without_a_sandbox(tmp_path: Path) -> None:
    unknown = _flowlink("sandbox", "nope", home=tmp_path)
    assert unknown.returncode == 1 and "unknown connector 'nope'" in unknown.stderr
    bare = _flowlink("sandbox", "core", home=tmp_path)
    assert bare.returncode == 1 and "connector 'core' declares no sandbox" in bare.stderr
