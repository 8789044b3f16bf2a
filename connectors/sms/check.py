"""The `sms` connection test: one signed, read-only QuerySendDetails call."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.sdk import ActionContext, ConnectionTest
from connectors.sms.connector import connector
from connectors.sms.query import CHINA
from connectors.sms.rpc import call
from engine.errors import StepError

#: Any well-formed mainland number: an account with no messages to it still answers OK.
PROBE_NUMBER = "13800000000"


async def check_connection(fields: dict[str, Any]) -> ConnectionTest:
    """Signs a QuerySendDetails call: a wrong key or secret fails with the platform's code."""
    ctx = ActionContext("connection-test", "test", "-", dict(fields), lambda _line: None,
                        action=connector.actions["query_send_details"])
    try:
        await call(ctx, "QuerySendDetails", {"PhoneNumber": PROBE_NUMBER, "SendDate": datetime.now(CHINA).strftime("%Y%m%d"),
                                             "PageSize": 1, "CurrentPage": 1})
    except StepError as exc:
        return ConnectionTest(False, exc.message, kind=exc.kind, code=exc.code)
    return ConnectionTest(True, f"AccessKey {fields.get('access_key')} accepted (signed QuerySendDetails succeeded)")
