"""How YonBIP answers map onto typed errors (HTTP 200 with a string ``code``; "200" is success).

310036 "非法token" is AuthExpired (the client fetches a new token and retries once); the
throttle codes are RateLimited; 999 (a rejected field or value, named at the start of the
message) is InvalidInput; a batch whose ``data.failCount`` is not 0 is InvalidInput too.
"""
from __future__ import annotations

THROTTLED = "contains(['310032', '310039', '310042', '310046'], to_string(code))"

ERROR_RULES = [
    {"when": "to_string(code) == '310036'", "kind": "AuthExpired", "code": "code", "message": "message"},
    {"when": THROTTLED, "kind": "RateLimited", "code": "code", "message": "message", "retry_after": 1},
    {"when": "to_string(code) == '310404'", "kind": "NotFound", "code": "code", "message": "message"},
    {"when": "to_string(code) == '999'", "kind": "InvalidInput", "code": "code", "message": "message"},
    {"when": "to_string(code) == '200' && data.failCount > `0`", "kind": "InvalidInput", "code": "'batch_failed'",
     "message": "data.messages[0]"},
    {"when": "to_string(code) == '200'", "kind": "ok"},
    {"when": "code != null", "kind": "ConnectorError", "code": "code", "message": "message"},
]
