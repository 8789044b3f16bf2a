"""Kingdee K3Cloud per-request signatures (SDK ≥ v7 ``ApiRequester.buildHeader``).

Two HMAC-SHA256 signatures, each sent as Base64 of the *lower-case hex* digest:

- ``X-Api-Signature`` over ``"POST\\n" + URLEncode(path) + "\\n\\nx-api-nonce:" + nonce +
  "\\nx-api-timestamp:" + ts + "\\n"``, keyed by the gateway secret derived from the app id;
- ``X-Kd-Signature`` over ``appId + appData``, keyed by the app secret, where appData is
  ``"{acctId},{username},{lcid},{orgNum}"`` (sent Base64-encoded as ``X-Kd-Appdata``).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from urllib.parse import quote_plus

import httpx

#: The fixed key the SDKs XOR the app id's secret part with.
_XOR_KEY = b"0054f397c6234378b09ca7d3e5debce7"


def hmac_hex_b64(message: str, key: str) -> str:
    """Base64 of the lower-case hex HMAC-SHA256 of `message` (the SDKs' ``hashMAC``)."""
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()
    return base64.b64encode(digest.encode()).decode()


def gateway_secret(app_id: str) -> str:
    """The API-gateway secret: Base64(Base64Decode(part after "_") XOR key) when that part has 32 characters."""
    _, _, sec = app_id.partition("_")
    if len(sec) != 32:
        return ""
    try:
        raw = base64.b64decode(sec, validate=True)
    except (binascii.Error, ValueError):
        return ""
    return base64.b64encode(bytes(b ^ _XOR_KEY[i] for i, b in enumerate(raw))).decode()


def app_data(acct_id: str, username: str, lcid: str | int, org_num: str | int) -> str:
    """The plain ``X-Kd-Appdata`` text."""
    return f"{acct_id},{username},{lcid},{org_num}"


def signed_path(path: str, nonce: str, timestamp: str) -> str:
    """The string ``X-Api-Signature`` signs (the path URL-encoded like Java's URLEncoder, ``/`` too)."""
    return f"POST\n{quote_plus(path, safe='*')}\n\nx-api-nonce:{nonce}\nx-api-timestamp:{timestamp}\n"


def signature_headers(path: str, *, app_id: str, app_secret: str, acct_id: str, username: str, lcid: str | int,
                      org_num: str | int, now: float | None = None) -> dict[str, str]:
    """Every ``X-Api-*``/``X-Kd-*`` header of a request to `path`."""
    stamp = str(int((time.time() if now is None else now) * 1000))
    data = app_data(acct_id, username, lcid, org_num)
    return {
        "X-Api-ClientID": app_id.split("_")[0],
        "X-Api-Auth-Version": "2.0",
        "x-api-timestamp": stamp,
        "x-api-nonce": stamp,
        "x-api-signheaders": "X-Api-TimeStamp,X-Api-Nonce",
        "X-Api-Signature": hmac_hex_b64(signed_path(path, stamp, stamp), gateway_secret(app_id)),
        "X-Kd-Appkey": app_id,
        "X-Kd-Appdata": base64.b64encode(data.encode()).decode(),
        "X-Kd-Signature": hmac_hex_b64(app_id + data, app_secret),
    }


def sign_request(request: httpx.Request, **credentials: str) -> None:
    """Put the signature headers on `request` (over its final path)."""
    request.headers.update(signature_headers(request.url.path, **credentials))
