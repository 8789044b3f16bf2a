"""How Alibaba Cloud SMS answers map onto Flowlink's typed errors.

Business errors come back as HTTP 200 with ``Code`` other than ``"OK"``; gateway errors
(signature, access key, replay) as HTTP 4xx with the same ``{Code, Message, RequestId}``
envelope. Flows catch ``sms.<Code>``, e.g. ``sms.isv.BUSINESS_LIMIT_CONTROL``.
"""
from __future__ import annotations

from typing import Any, Iterable


def _any_of(codes: Iterable[str]) -> str:
    listed = ", ".join(f"'{code}'" for code in codes)
    return f"contains([{listed}], Code)"


#: Per-number flow control (1/min, 5/h, 10/day by default) and API throttling.
RATE_LIMITED = ("isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "isv.MONTH_LIMIT_CONTROL", "Throttling",
                "Throttling.User", "Throttling.Api")
#: The request itself is wrong: fixing the input (number, template, signature name) is the only cure.
INVALID_INPUT = ("isv.MOBILE_NUMBER_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS", "isv.SMS_SIGNATURE_ILLEGAL",
                 "isv.SMS_TEMPLATE_ILLEGAL", "isv.INVALID_JSON_PARAM", "isv.MOBILE_COUNT_OVER_LIMIT",
                 "isv.PARAM_LENGTH_LIMIT", "isv.INVALID_PARAMETERS", "isv.TEMPLATE_PARAMS_ILLEGAL",
                 "isv.BLACK_KEY_CONTROL_LIMIT", "isv.DENY_IP_RANGE", "MissingParameter", "InvalidParameter",
                 "MissingPhoneNumbers", "MissingSignName", "MissingTemplateCode", "MissingSendDate",
                 "MissingPhoneNumber", "InvalidVersion", "InvalidAction.NotFound")
#: The credentials are wrong or lack permission: retrying cannot help.
PERMISSION_DENIED = ("SignatureDoesNotMatch", "IncompleteSignature", "InvalidAccessKeyId.NotFound",
                     "InvalidAccessKeyId.Inactive", "isp.RAM_PERMISSION_DENY", "Forbidden.RAM",
                     "isv.ACCOUNT_NOT_EXISTS", "isv.ACCOUNT_ABNORMAL", "isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE")
#: Worth another attempt as is: a reused nonce is fresh on the next attempt (it is signed again).
TRANSIENT = ("SignatureNonceUsed", "isp.SYSTEM_ERROR", "isp.GATEWAY_ERROR", "ServiceUnavailable", "InternalError")

ERROR_RULES: list[dict[str, Any]] = [
    {"when": "Code == 'isv.BUSINESS_LIMIT_CONTROL'", "kind": "RateLimited", "code": "Code", "message": "Message",
     "retry_after": 60, "description": "per-number flow control (minute/hour/day)"},
    {"when": _any_of(RATE_LIMITED), "kind": "RateLimited", "code": "Code", "message": "Message"},
    {"when": _any_of(INVALID_INPUT), "kind": "InvalidInput", "code": "Code", "message": "Message"},
    {"when": _any_of(PERMISSION_DENIED), "kind": "PermissionDenied", "code": "Code", "message": "Message"},
    {"when": _any_of(TRANSIENT), "kind": "Transient", "code": "Code", "message": "Message"},
    {"when": "Code != null && Code != 'OK'", "kind": "ConnectorError", "code": "Code", "message": "Message"},
]
