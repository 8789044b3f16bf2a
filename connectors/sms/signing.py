"""Alibaba Cloud RPC request signing (signature version 1.0, HMAC-SHA1).

The documented algorithm ("签名机制", help.aliyun.com/document_detail/28839):

1. every request parameter except ``Signature`` is percent-encoded (UTF-8; ``A-Z a-z 0-9 - _ . ~``
   kept, a space as ``%20``, never ``+``), sorted by encoded name, and joined as
   ``name=value`` pairs with ``&``: the *canonicalized query string*;
2. ``StringToSign = HTTPMethod + "&" + percentEncode("/") + "&" + percentEncode(canonicalized)``;
3. ``Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))``.

The common parameters ``AccessKeyId``, ``SignatureMethod``, ``SignatureVersion``,
``SignatureNonce`` (unique per request, against replays) and ``Timestamp`` (UTC ISO 8601)
are added by :func:`sign_request`, the hook the SDK's ``signed`` auth calls on every attempt.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime, timezone
from typing import Callable, Mapping
from urllib.parse import parse_qsl, quote

import httpx

SIGNATURE_METHOD = "HMAC-SHA1"
SIGNATURE_VERSION = "1.0"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def percent_encode(value: str) -> str:
    """Alibaba's percentEncode: RFC 3986 unreserved characters kept, everything else %XY."""
    return quote(str(value), safe="-_.~")


def canonicalized_query(params: Mapping[str, str]) -> str:
    """The sorted, percent-encoded ``name=value&...`` string (``Signature`` excluded)."""
    pairs = sorted((percent_encode(k), percent_encode(v)) for k, v in params.items() if k != "Signature")
    return "&".join(f"{k}={v}" for k, v in pairs)


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&percentEncode(canonicalized query)``."""
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonicalized_query(params))}"


def signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """Base64 HMAC-SHA1 of the string to sign, keyed with ``secret + "&"``."""
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def timestamp(moment: datetime | None = None) -> str:
    """A UTC ``Timestamp`` as the API wants it (``2017-07-12T02:42:19Z``)."""
    return (moment or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def signed_params(params: Mapping[str, str], method: str, key_id: str, secret: str, *,
                  nonce: str | None = None, now: datetime | None = None) -> dict[str, str]:
    """`params` plus the common signing parameters and the ``Signature`` itself."""
    full = {str(k): str(v) for k, v in params.items() if k != "Signature"}
    full.update(AccessKeyId=key_id, SignatureMethod=SIGNATURE_METHOD, SignatureVersion=SIGNATURE_VERSION,
                SignatureNonce=nonce or uuid.uuid4().hex, Timestamp=timestamp(now))
    full["Signature"] = signature(secret, method, full)
    return full


def make_signer(clock: Callable[[], datetime] | None = None) -> Callable[[httpx.Request, str, str], None]:
    """The ``sign(request, key_id, secret)`` hook for the SDK's signed auth.

    All parameters travel in the query string (as Alibaba's own SDKs send RPC calls), so the
    signature covers exactly what the server reads; a fresh nonce and timestamp are used on
    every attempt, so a retried call is never refused as a replay.
    """

    def sign(request: httpx.Request, key_id: str, secret: str) -> None:
        params = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        signed = signed_params(params, request.method, key_id, secret, now=clock() if clock else None)
        query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in signed.items())
        request.url = request.url.copy_with(query=query.encode())

    return sign


sign_request = make_signer()
