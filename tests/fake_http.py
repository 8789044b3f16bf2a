"""A real HTTP server on 127.0.0.1 for engine tests: programmable failures, delays and echo.

Endpoints (all record a hit with its arrival time):
- ``POST|GET /echo``: answers 200 with the method, query, headers and JSON body it got;
- ``/status/{code}``: answers that status (``?retry_after=S`` adds Retry-After);
- ``/flaky/{key}?fail=N&code=503``: fails N times per key with `code`, then answers 200;
- ``/limited/{key}?fail=N&retry_after=S&code=429``: like ``/flaky`` but each failure carries
  ``Retry-After: S`` (a rate limit that clears after N refusals);
- ``/slow?seconds=S``: answers after S seconds;
- ``/text``, ``/bytes``: non-JSON bodies;
- ``/auth/bearer``: 401 unless ``Authorization: Bearer good-token``.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import defaultdict
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


class FakeHttp:
    """The server's state plus its base URL."""

    def __init__(self) -> None:
        self.hits: dict[str, list[float]] = defaultdict(list)
        self.failures_left: dict[str, int] = {}
        self.base_url = ""
        self.app = Starlette(routes=[
            Route("/echo", self.echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/status/{code:int}", self.status, methods=["GET", "POST"]),
            Route("/flaky/{key}", self.flaky, methods=["GET", "POST"]),
            Route("/limited/{key}", self.limited, methods=["GET", "POST"]),
            Route("/slow", self.slow, methods=["GET", "POST"]),
            Route("/text", self.text),
            Route("/bytes", self.bytes_),
            Route("/auth/bearer", self.bearer),
        ])

    def reset(self) -> None:
        """Forget hits and failure counters."""
        self.hits.clear()
        self.failures_left.clear()

    def _hit(self, name: str) -> None:
        self.hits[name].append(time.time())

    async def echo(self, request: Request) -> Response:
        self._hit("echo")
        raw = await request.body()
        body: Any
        try:
            body = await request.json() if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        return JSONResponse({
            "method": request.method,
            "query": dict(request.query_params),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
        })

    async def status(self, request: Request) -> Response:
        code = request.path_params["code"]
        self._hit(f"status/{code}")
        headers = {}
        if "retry_after" in request.query_params:
            headers["Retry-After"] = request.query_params["retry_after"]
        return JSONResponse({"error": f"status {code}"}, status_code=code, headers=headers)

    async def flaky(self, request: Request) -> Response:
        key = request.path_params["key"]
        self._hit(f"flaky/{key}")
        if key not in self.failures_left:
            self.failures_left[key] = int(request.query_params.get("fail", "1"))
        if self.failures_left[key] > 0:
            self.failures_left[key] -= 1
            return JSONResponse({"error": "try again"}, status_code=int(request.query_params.get("code", "503")))
        return JSONResponse({"ok": True, "attempts": len(self.hits[f"flaky/{key}"])})

    async def limited(self, request: Request) -> Response:
        key = request.path_params["key"]
        name = f"limited/{key}"
        self._hit(name)
        if name not in self.failures_left:
            self.failures_left[name] = int(request.query_params.get("fail", "1"))
        if self.failures_left[name] > 0:
            self.failures_left[name] -= 1
            headers = {"Retry-After": request.query_params.get("retry_after", "1")}
            return JSONResponse({"error": "slow down"}, status_code=int(request.query_params.get("code", "429")), headers=headers)
        return JSONResponse({"ok": True, "attempts": len(self.hits[name])})

    async def slow(self, request: Request) -> Response:
        self._hit("slow")
        await asyncio.sleep(float(request.query_params.get("seconds", "1")))
        return JSONResponse({"slept": True})

    async def text(self, request: Request) -> Response:
        self._hit("text")
        return PlainTextResponse("hello 你好")

    async def bytes_(self, request: Request) -> Response:
        self._hit("bytes")
        return Response(b"\x00\x01\xff", media_type="application/octet-stream")

    async def bearer(self, request: Request) -> Response:
        self._hit("bearer")
        if request.headers.get("authorization") != "Bearer good-token":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse({"ok": True})


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """Runs an ASGI app with uvicorn in a daemon thread on 127.0.0.1."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "ServerThread":
        """Start and wait until it accepts connections."""
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("test HTTP server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server and join its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)
