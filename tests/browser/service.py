"""A real `flowlink serve` subprocess on a free 127.0.0.1 port with a temporary SQLite database."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "browser-admin-password"


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """Starts the service and stops it; `url` is its base address."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> "Service":
        """Start `flowlink serve` and wait for /api/health."""
        env = {**os.environ, "FLOWLINK_HOME": str(self.home), "FLOWLINK_DATABASE_URL": f"sqlite:///{self.home / 'flowlink.db'}",
               "FLOWLINK_ADMIN_PASSWORD": ADMIN_PASSWORD, "FLOWLINK_INBOX_POLL": "0.1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(self.port)], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"flowlink serve did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Terminate the process (kill it if it does not stop)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def api(self) -> httpx.Client:
        """An API client logged in as admin."""
        client = httpx.Client(base_url=self.url, timeout=30)
        token = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        return client
