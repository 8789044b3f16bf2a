"""The Yonyou open platform's ``getAccessToken`` signature.

Every parameter but ``signature``, sorted by name, concatenated as ``name + value`` without
separators (``appKey<key>timestamp<ms>``), HMAC-SHA256 keyed by the app secret, Base64 of the
raw digest; the query string URL-encodes it once.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Mapping


def token_signature(params: Mapping[str, str], app_secret: str) -> str:
    """The Base64 signature of the token request's parameters (``signature`` itself excluded)."""
    text = "".join(f"{name}{params[name]}" for name in sorted(params) if name != "signature")
    return base64.b64encode(hmac.new(app_secret.encode(), text.encode(), hashlib.sha256).digest()).decode()
