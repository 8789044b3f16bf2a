"""How K3Cloud answers map onto typed errors (HTTP 200 with ``Result.ResponseStatus``).

A failed operation answers ``{"Result": {"ResponseStatus": {"IsSuccess": false, "MsgCode",
"Errors": [{"FieldName", "Message", "DIndex"}]}}}`` (ExecuteBillQuery wraps it as
``[[{...}]]``). MsgCode 1 is "session lost": AuthExpired, so the client logs in again and
retries once. The error's `code` is the MsgCode (flows catch ``kingdee.11``), and its
`details` carry ``field`` (the first named field), ``errors`` (every item) and the body.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from connectors.sdk.error_rules import ErrorRule
from engine.errors import StepError

#: JMESPath of the ResponseStatus in every answer shape.
STATUS = "(Result.ResponseStatus || [0][0].Result.ResponseStatus)"
_FAILED = f"{STATUS}.IsSuccess == `false`"


def response_status(body: Any) -> dict[str, Any] | None:
    """The ``ResponseStatus`` of an answer of any operation, or None."""
    if isinstance(body, list) and body and isinstance(body[0], list) and body[0] and isinstance(body[0][0], dict):
        body = body[0][0]
    if isinstance(body, dict) and isinstance(body.get("Result"), dict):
        status = body["Result"].get("ResponseStatus")
        return status if isinstance(status, dict) else None
    return None


@dataclass(frozen=True)
class StatusRule(ErrorRule):
    """An ErrorRule that also puts the failing fields of ``Errors[]`` into the error's details."""

    def build(self, response: httpx.Response, body: Any, connector: str | None = None) -> StepError | None:
        """The rule's error, with ``details.field`` and ``details.errors`` from ``Errors[]``."""
        error = super().build(response, body, connector)
        if error is None:
            return None
        items = (response_status(body) or {}).get("Errors") or []
        errors = [{"field": e.get("FieldName") or None, "message": e.get("Message"), "index": e.get("DIndex")}
                  for e in items if isinstance(e, dict)]
        field = next((e["field"] for e in errors if e["field"]), None)
        error.details = {**(error.details or {}), "field": field, "errors": errors}
        return error


def _rule(kind: str, when: str, description: str) -> StatusRule:
    return StatusRule(kind=kind, when=f"{_FAILED} && ({when})", code=f"{STATUS}.MsgCode",
                      message=f"{STATUS}.Errors[0].Message", description=description)


#: MsgCode meanings (Kingdee WebAPI documentation); anything else that failed is a ConnectorError.
ERROR_RULES = [
    _rule("AuthExpired", f"{STATUS}.MsgCode == `1`", "session lost"),
    _rule("PermissionDenied", f"contains(`[2, 7, 15]`, {STATUS}.MsgCode)", "no permission or licence"),
    _rule("NotFound", f"{STATUS}.MsgCode == `10`", "no such data"),
    _rule("RateLimited", f"{STATUS}.MsgCode == `14`", "call limit reached"),
    _rule("Transient", f"{STATUS}.MsgCode == `13`", "network-control conflict"),
    _rule("InvalidInput", f"contains(`[3, 5, 8, 9, 11, 12]`, {STATUS}.MsgCode) || length({STATUS}.Errors[?FieldName]) > `0`",
          "rejected by validation"),
    _rule("ConnectorError", "`true`", "operation failed"),
]
