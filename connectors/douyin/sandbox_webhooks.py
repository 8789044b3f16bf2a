"""How the fake Douyin pushes webhook events: signed, with ``Msg-Id``, retried with the same id.

Douyin POSTs JSON (``content`` a JSON string), signs it with ``X-Douyin-Signature`` =
SHA1(client_secret + raw body), drops the connection after 5 s and retries 3 times;
a 200 answer ends the delivery.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.douyin.signature import MSG_ID_HEADER, SIGNATURE_HEADER, sign

DELIVERY_TIMEOUT = 5.0


@dataclass
class Delivery:
    """One event's delivery: its Msg-Id, the exact body sent, and every attempt's answer."""

    msg_id: str
    body: bytes
    responses: list[httpx.Response] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        """True when an attempt was answered 200."""
        return any(r.status_code == 200 for r in self.responses)

    @property
    def statuses(self) -> list[int]:
        """The HTTP status of each answered attempt."""
        return [r.status_code for r in self.responses]


def verify_webhook_body(client_key: str, challenge: int) -> dict[str, Any]:
    """The URL-verification event (its ``content`` is an object, not a string)."""
    return {"event": "verify_webhook", "client_key": client_key, "content": {"challenge": challenge}}


def deliver(url: str, event: dict[str, Any], *, secret: str, msg_id: str, client: httpx.Client | None = None,
            retries: int = 3, timeout: float = DELIVERY_TIMEOUT) -> Delivery:
    """POST `event` signed with `secret`; retry up to `retries` times (same Msg-Id) until a 200.

    `client` may be any ``httpx.Client`` (a Starlette TestClient included) and keeps its own
    timeouts; without one a private client with Douyin's 5 s deadline is used.
    """
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", MSG_ID_HEADER: msg_id, SIGNATURE_HEADER: sign(secret, body)}
    delivery = Delivery(msg_id, body)
    own = client is None
    http = client or httpx.Client(timeout=timeout, trust_env=False)
    try:
        for _ in range(retries + 1):
            try:
                response = http.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                delivery.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            delivery.responses.append(response)
            if response.status_code == 200:
                break
    finally:
        if own:
            http.close()
    return delivery
