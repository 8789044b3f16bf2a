"""How Douyin reports errors: codes in a 200 body, as data for the SDK's error rules.

Older APIs answer ``{"data": {..., "error_code", "description"}, "extra": {...}}``, newer
ones ``{"err_no", "err_msg", "log_id", "data"}``; both arrive with HTTP 200. Flows catch
``douyin.<code>`` (e.g. ``douyin.10020``).
"""
from __future__ import annotations

from typing import Any

#: access_token expired or invalid: refresh and retry once
EXPIRED_CODES = (10008, 2190008)
#: too many client_token calls (>500 in 5 min); also used by the sandbox for API throttling
RATE_LIMITED_CODE = 10020
#: the refresh_token expired or ran out of renewals: the user must authorize again
REFRESH_EXPIRED_CODE = 10010
#: parameter errors
INVALID_PARAM_CODES = (10002, 2190002)
#: unknown client_key, wrong key/secret, scope not granted
PERMISSION_CODES = (10003, 10013, 2190004)

_CODE = "data.error_code || err_no"
_MESSAGE = "data.description || err_msg"


def _any_code(codes: tuple[int, ...] | int) -> str:
    values = codes if isinstance(codes, tuple) else (codes,)
    return " || ".join(f"data.error_code == `{c}` || err_no == `{c}`" for c in values)


def _rule(kind: str, codes: tuple[int, ...] | int, description: str, **extra: Any) -> dict[str, Any]:
    return {"when": _any_code(codes), "kind": kind, "code": _CODE, "message": _MESSAGE,
            "description": description, **extra}


#: Rules for every Douyin answer (the SDK's HTTP-status defaults come after them).
DOUYIN_RULES: list[dict[str, Any]] = [
    _rule("AuthExpired", EXPIRED_CODES, "access_token expired"),
    _rule("RateLimited", RATE_LIMITED_CODE, "request rate over the limit"),
    _rule("PermissionDenied", REFRESH_EXPIRED_CODE, "refresh_token expired: authorize the account again"),
    _rule("InvalidInput", INVALID_PARAM_CODES, "invalid parameter"),
    _rule("PermissionDenied", PERMISSION_CODES, "the app or account is not allowed to do this"),
    {"when": "data.error_code && data.error_code != `0`", "kind": "ConnectorError", "code": _CODE, "message": _MESSAGE},
    {"when": "err_no && err_no != `0`", "kind": "ConnectorError", "code": _CODE, "message": _MESSAGE},
]
