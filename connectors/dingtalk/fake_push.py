"""How the DingTalk fake pushes event callbacks, exactly as DingTalk's HTTP push does.

POST ``<url>?signature=&timestamp=&nonce=`` (timestamp in ms) with ``{"encrypt": "…"}``, the
event JSON encrypted for the subscription's owner key; an attempt counts as acknowledged only
when the answer is HTTP 200 with ``{msg_signature, timeStamp, nonce, encrypt}`` that verifies and
decrypts to "success" within the deadline (1500 ms on DingTalk). Retries resend the very same
ciphertext, signature, timestamp and nonce.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import orjson

from connectors.sdk.callback_crypto import MsgCrypt


@dataclass
class CallbackDelivery:
    """What happened when the fake pushed one callback (all attempts carry the same ids)."""

    event: dict[str, Any]
    attempts: int = 0
    acknowledged: bool = False
    statuses: list[int] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)


class CallbackPusher:
    """The fake's push channel: one subscription, and a record of every delivery."""

    def __init__(self, clock: Callable[[], float] = time.time, ack_deadline: float = 1.5) -> None:
        self.clock = clock
        self.ack_deadline = ack_deadline  # DingTalk's 1500 ms; tests on a busy machine may allow more
        self.subscription: dict[str, Any] | None = None
        self.deliveries: list[CallbackDelivery] = []

    @property
    def subscribed(self) -> bool:
        """Whether a subscription URL is configured."""
        return self.subscription is not None

    def subscribe(self, url: str, *, token: str, aes_key: str, owner_key: str, client: httpx.Client | None = None) -> None:
        """Where and how to push: the URL, the subscription's token/aes_key/owner key, an optional client."""
        self.subscription = {"url": url, "crypt": MsgCrypt(token, aes_key, owner_key, millisecond_timestamps=True),
                             "client": client}

    def send(self, event: dict[str, Any], url: str | None = None, *, client: httpx.Client | None = None,
             attempts: int = 3, redeliver: bool = False, crypt: MsgCrypt | None = None) -> CallbackDelivery:
        """POST the event signed and encrypted as DingTalk does; retry (same ciphertext, signature,
        timestamp and nonce) until the answer is the encrypted "success" within the deadline, at most
        `attempts` times. `redeliver` sends once more after a success (a duplicate push); `crypt`
        overrides the subscription's (to forge a push with the wrong token or owner key)."""
        sub = self.subscription or {}
        url = url or sub.get("url")
        crypt = crypt or sub.get("crypt")
        if not url or crypt is None:
            raise RuntimeError("no event subscription: call subscribe(url, ...) first")
        http = client or sub.get("client")
        sealed = crypt.encrypt(orjson.dumps(event).decode(), timestamp=int(self.clock() * 1000))
        query = {"signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce}
        delivery = CallbackDelivery(event)
        self.deliveries.append(delivery)
        owned = http is None
        http = http or httpx.Client(timeout=10, trust_env=False)
        try:
            while delivery.attempts < attempts and not delivery.acknowledged:
                delivery.acknowledged = self._post(http, url, query, sealed.encrypted, crypt, delivery)
            if redeliver and delivery.acknowledged:
                self._post(http, url, query, sealed.encrypted, crypt, delivery)
        finally:
            if owned:
                http.close()
        return delivery

    def _post(self, http: httpx.Client, url: str, query: dict[str, str], encrypted: str, crypt: MsgCrypt,
              delivery: CallbackDelivery) -> bool:
        """One push attempt; True when answered with the encrypted "success" within the deadline."""
        delivery.attempts += 1
        started = time.monotonic()
        response = http.post(url, params=query, json={"encrypt": encrypted})
        in_time = time.monotonic() - started <= self.ack_deadline
        answer = _json_or_text(response)
        delivery.statuses.append(response.status_code)
        delivery.answers.append(answer)
        return in_time and response.status_code == 200 and _is_encrypted_success(crypt, answer)


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _is_encrypted_success(crypt: MsgCrypt, answer: Any) -> bool:
    """DingTalk accepts only ``{"msg_signature","timeStamp","nonce","encrypt"}`` that signs and decrypts to "success"."""
    if not isinstance(answer, dict) or not all(isinstance(answer.get(k), str) for k in ("msg_signature", "timeStamp", "nonce", "encrypt")):
        return False
    try:
        return crypt.decrypt_verified(answer["msg_signature"], answer["timeStamp"], answer["nonce"], answer["encrypt"]) == "success"
    except Exception:  # noqa: BLE001 - any failure means "not acknowledged", as on the platform
        return False
