"""Serve a connector's fake platform (its *sandbox*) on 127.0.0.1.

A connector may declare ``sandbox``: a zero-argument factory returning the ASGI app of a
contract-faithful fake of its platform (each call a fresh fake with fresh state). The
contract kit (``flowlink connector test``) runs every action example against it, and
``flowlink sandbox`` serves it for manual tries from the editor or curl.

:class:`SandboxServer` runs any ASGI app with uvicorn in a daemon thread::

    with SandboxServer(connector.sandbox()) as server:
        print(server.base_url)          # http://127.0.0.1:<port>
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

HOST = "127.0.0.1"


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class SandboxError(RuntimeError):
    """A connector has no sandbox, its factory failed, or the server did not start."""


class SandboxServer:
    """Runs an ASGI app with uvicorn in a daemon thread on 127.0.0.1 (a free port unless given)."""

    def __init__(self, app: Any, port: int | None = None, *, startup_timeout: float = 10.0) -> None:
        import uvicorn

        self.app = app
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=self.port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, name=f"sandbox-{self.port}", daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> "SandboxServer":
        """Start and wait until it accepts connections; SandboxError if it does not."""
        self.thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise SandboxError(f"the sandbox server on port {self.port} stopped while starting (port in use?)")
            if time.monotonic() > deadline:
                self.stop()
                raise SandboxError(f"the sandbox server on port {self.port} did not start within {self.startup_timeout:g}s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server and join its thread."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def sandbox_factory(connector: Any) -> Callable[[], Any] | None:
    """The connector's ``sandbox`` factory, or None when it declares none."""
    factory = getattr(connector, "sandbox", None)
    return factory if callable(factory) else None


def has_sandbox(connector: Any) -> bool:
    """Whether the connector declares a sandbox factory."""
    return sandbox_factory(connector) is not None


def start_sandbox(connector: Any, port: int | None = None) -> SandboxServer:
    """A fresh fake of the connector's platform, started; SandboxError when there is none."""
    factory = sandbox_factory(connector)
    name = getattr(connector, "name", "?")
    if factory is None:
        raise SandboxError(f"connector '{name}' declares no sandbox (set Connector(sandbox=...) to a factory of its fake's ASGI app)")
    try:
        app = factory()
    except Exception as exc:
        raise SandboxError(f"connector '{name}': its sandbox factory failed: {type(exc).__name__}: {exc}") from exc
    return SandboxServer(app, port).start()
