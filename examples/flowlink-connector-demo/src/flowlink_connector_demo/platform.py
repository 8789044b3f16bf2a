"""A contract-faithful fake of the Demo CRM, as a Starlette ASGI app.

The contract (what the real platform documents, and what this fake enforces):

- every request carries ``Authorization: Bearer <api key>``, else 401;
- ``GET /v1/owners`` → ``{"data": [{"id", "name"}]}``;
- ``GET /v1/contacts?email=E`` → ``{"data": [contact, ...]}`` (``email`` is required);
- ``GET /v1/contacts/{id}`` → ``{"data": contact}``, 404 when unknown;
- ``POST /v1/contacts`` with a JSON object: ``name`` (1-100 characters) and ``email`` (with
  an ``@``) and ``owner_id`` (an existing owner) required, ``tags`` (list of strings) and
  ``note`` (string) optional, nothing else → 201 ``{"data": contact}``; the same email twice → 409.

A contact is ``{"id", "name", "email", "owner_id", "tags", "note", "created_at"}``. Every error
answers ``{"error": {"code", "message", "field"?}}`` with codes ``unauthorized``,
``invalid_json``, ``missing_field``, ``invalid_field``, ``unknown_field``, ``not_found``,
``duplicate_email``.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from typing import Any, Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DEFAULT_OWNERS = ({"id": "u1", "name": "Li Lei"}, {"id": "u2", "name": "Han Meimei"})
CONTACT_FIELDS = {"name", "email", "owner_id", "tags", "note"}


def platform_error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    """An answer in the platform's error shape."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return JSONResponse({"error": error}, status_code=status)


class FakeDemoCrm:
    """The fake's state (contacts, owners, accepted keys, requests seen) and its ASGI `app`."""

    def __init__(self, api_keys: tuple[str, ...] = ("demo-key",), owners: tuple[dict[str, str], ...] = DEFAULT_OWNERS) -> None:
        self.api_keys = set(api_keys)
        self.owners = [dict(o) for o in owners]
        self.contacts: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[
            Route("/v1/owners", self.list_owners, methods=["GET"]),
            Route("/v1/contacts", self.search_contacts, methods=["GET"]),
            Route("/v1/contacts", self.create_contact, methods=["POST"]),
            Route("/v1/contacts/{contact_id}", self.get_contact, methods=["GET"]),
        ])

    def _denied(self, request: Request) -> JSONResponse | None:
        self.requests.append((request.method, request.url.path))
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.api_keys:
            return platform_error(401, "unauthorized", "a valid API key is required (Authorization: Bearer <key>)")
        return None

    async def list_owners(self, request: Request) -> JSONResponse:
        if denied := self._denied(request):
            return denied
        return JSONResponse({"data": self.owners})

    async def search_contacts(self, request: Request) -> JSONResponse:
        if denied := self._denied(request):
            return denied
        email = request.query_params.get("email")
        if not email:
            return platform_error(400, "missing_field", "query parameter 'email' is required", "email")
        found = [c for c in self.contacts.values() if c["email"].lower() == email.lower()]
        return JSONResponse({"data": found})

    async def get_contact(self, request: Request) -> JSONResponse:
        if denied := self._denied(request):
            return denied
        contact = self.contacts.get(request.path_params["contact_id"])
        if contact is None:
            return platform_error(404, "not_found", f"no contact {request.path_params['contact_id']}")
        return JSONResponse({"data": contact})

    async def create_contact(self, request: Request) -> JSONResponse:
        if denied := self._denied(request):
            return denied
        try:
            body = json.loads(await request.body())
        except ValueError:
            return platform_error(400, "invalid_json", "the body is not JSON")
        if not isinstance(body, dict):
            return platform_error(400, "invalid_json", "the body must be a JSON object")
        unknown = sorted(set(body) - CONTACT_FIELDS)
        if unknown:
            return platform_error(400, "unknown_field", f"unknown field '{unknown[0]}'", unknown[0])
        for key in ("name", "email", "owner_id"):
            if body.get(key) in (None, ""):
                return platform_error(400, "missing_field", f"'{key}' is required", key)
        problem = self._invalid(body)
        if problem:
            return platform_error(400, "invalid_field", problem[1], problem[0])
        if any(c["email"].lower() == body["email"].lower() for c in self.contacts.values()):
            return platform_error(409, "duplicate_email", f"a contact with email {body['email']} exists", "email")
        contact = {
            "id": f"c{next(self._ids)}",
            "name": body["name"],
            "email": body["email"],
            "owner_id": body["owner_id"],
            "tags": list(body.get("tags") or []),
            "note": body.get("note") or "",
            "created_at": int(time.time()),
        }
        self.contacts[contact["id"]] = contact
        return JSONResponse({"data": contact}, status_code=201)

    def _invalid(self, body: dict[str, Any]) -> tuple[str, str] | None:
        if not isinstance(body["name"], str) or len(body["name"]) > 100:
            return "name", "'name' must be a string of 1 to 100 characters"
        if not isinstance(body["email"], str) or "@" not in body["email"]:
            return "email", "'email' must be an email address"
        if body["owner_id"] not in {o["id"] for o in self.owners}:
            return "owner_id", f"no owner '{body['owner_id']}'"
        tags = body.get("tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            return "tags", "'tags' must be a list of strings"
        if body.get("note") is not None and not isinstance(body["note"], str):
            return "note", "'note' must be a string"
        return None


@contextlib.contextmanager
def serve(fake: FakeDemoCrm) -> Iterator[str]:
    """Serve the fake with uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the fake Demo CRM did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
