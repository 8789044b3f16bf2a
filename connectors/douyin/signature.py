"""The Douyin webhook signature: hex SHA1 of client_secret + raw body (no HMAC)."""
from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Douyin-Signature"
MSG_ID_HEADER = "Msg-Id"


def sign(client_secret: str, body: bytes) -> str:
    """The ``X-Douyin-Signature`` of a raw request body."""
    return hashlib.sha1(client_secret.encode() + body).hexdigest()


def signature_matches(client_secret: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of a delivered signature against the body."""
    if not signature:
        return False
    return hmac.compare_digest(sign(client_secret, body), signature.strip().lower())
