"""A fake sales back office for the browser tests: a CRM that creates leads and a group robot.

Like the real systems it stands in for, it refuses what they refuse: a missing or wrong bearer
token (401), a lead without a name or with a malformed mobile number (400), a robot message that
is not `{"msgtype": "text", "text": {"content": ...}}` (400). It keeps what it accepted.
"""
from __future__ import annotations

import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MOBILE = re.compile(r"^1\d{10}$")


class FakeSales:
    """State and ASGI app; `token` is the CRM API token a connection must carry."""

    def __init__(self, token: str = "crm-secret-token") -> None:
        self.token = token
        self.leads: list[dict[str, Any]] = []
        self.messages: list[str] = []
        self.app = Starlette(routes=[Route("/crm/leads", self.create_lead, methods=["POST"]),
                                     Route("/robot/send", self.robot_send, methods=["POST"])])

    async def create_lead(self, request: Request) -> JSONResponse:
        """POST /crm/leads with `Authorization: Bearer <token>` and {name, mobile, ...}: 201 {id, ...}."""
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "invalid_token", "message": "the API token is missing or wrong"}, status_code=401)
        try:
            lead = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid_json"}, status_code=400)
        if not isinstance(lead, dict) or not str(lead.get("name") or "").strip():
            return JSONResponse({"error": "invalid_field", "field": "name"}, status_code=400)
        if not MOBILE.match(str(lead.get("mobile") or "")):
            return JSONResponse({"error": "invalid_field", "field": "mobile"}, status_code=400)
        created = {**lead, "id": f"CRM-{len(self.leads) + 1}"}
        self.leads.append(created)
        return JSONResponse(created, status_code=201)

    async def robot_send(self, request: Request) -> JSONResponse:
        """POST /robot/send {msgtype: text, text: {content}}: {errcode: 0}."""
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"errcode": 40001, "errmsg": "invalid json"}, status_code=400)
        content = (body.get("text") or {}).get("content") if isinstance(body, dict) else None
        if body.get("msgtype") != "text" or not isinstance(content, str) or not content:
            return JSONResponse({"errcode": 40035, "errmsg": "msgtype text needs text.content"}, status_code=400)
        self.messages.append(content)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})
