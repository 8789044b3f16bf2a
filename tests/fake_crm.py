"""A fake CRM and group robot on 127.0.0.1, checking what the example flows send.

It follows the contract of the peer benchmark's fake endpoints: a lead record must carry
every CRM key, and its tag and priority must follow the rule (amount over 3000 is
high_value/P1, else normal/P3); anything else is answered 400. The robot wants
``{"msgtype": "text", "text": {"content": <non-empty>}}``.
"""
from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

LEAD_KEYS = {"external_id", "contact_name", "mobile", "channel", "amount", "tag", "priority"}


class FakeCrm:
    """State of the fake: leads, tier uploads and robot messages received."""

    def __init__(self) -> None:
        self.leads: list[dict[str, Any]] = []
        self.tiers: list[Any] = []
        self.messages: list[str] = []
        self.app = Starlette(routes=[
            Route("/crm/leads", self.create_lead, methods=["POST"]),
            Route("/crm/tiers", self.put_tiers, methods=["POST"]),
            Route("/robot/send", self.robot, methods=["POST"]),
        ])

    async def create_lead(self, request: Request) -> JSONResponse:
        record = await request.json()
        missing = LEAD_KEYS - set(record)
        if missing:
            return JSONResponse({"error": f"missing {sorted(missing)}"}, status_code=400)
        high = record["amount"] > 3000
        if record["tag"] != ("high_value" if high else "normal") or record["priority"] != ("P1" if high else "P3"):
            return JSONResponse({"error": "tag/priority break the rule"}, status_code=400)
        self.leads.append(record)
        return JSONResponse({"id": len(self.leads)})

    async def put_tiers(self, request: Request) -> JSONResponse:
        body = await request.json()
        if not isinstance(body.get("tiers"), list):
            return JSONResponse({"error": "tiers must be a list"}, status_code=400)
        self.tiers.append(body["tiers"])
        return JSONResponse({"ok": True})

    async def robot(self, request: Request) -> JSONResponse:
        body = await request.json()
        content = (body.get("text") or {}).get("content") if body.get("msgtype") == "text" else None
        if not content:
            return JSONResponse({"errcode": 40008, "errmsg": "invalid message type"}, status_code=200)
        self.messages.append(content)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})
