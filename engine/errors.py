"""Typed errors that steps raise and that a flow's `retry` and `catch` match.

Every failure inside a run becomes a :class:`StepError` of one *kind*. A retry or
catch rule lists error patterns; a pattern matches an error when it names:

- ``*``: any error;
- the error's kind (``Transient``, ``RateLimited``, ``Timeout`` ...) or a custom
  name raised by a ``fail`` step;
- ``HttpError``: any non-2xx HTTP answer; ``http.429`` one status; ``http.5xx`` a class;
- ``<connector>.<code>``: a platform error code, e.g. ``wecom.45009``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

#: The kinds of error the engine and connectors raise (issue: SDK error rules map onto these).
ERROR_KINDS = (
    "RateLimited",
    "Transient",
    "AuthExpired",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "ConnectorError",
    "Timeout",
    "ExpressionError",
    "PayloadTooLarge",
    "NoChoiceMatched",
    "StepLimitExceeded",
    "Cancelled",
    "FlowFailed",
)


class StepError(Exception):
    """An error raised while running a step, carrying what retry/catch rules match on."""

    kind: str = "ConnectorError"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        code: str | int | None = None,
        status: int | None = None,
        connector: str | None = None,
        retry_after: float | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.message = message
        self.code = None if code is None else str(code)
        self.status = status
        self.connector = connector
        self.retry_after = retry_after
        self.details = details

    def names(self) -> set[str]:
        """Every name a pattern may use to match this error."""
        names = {self.kind}
        if self.status is not None:
            names.add("HttpError")
            names.add(f"http.{self.status}")
            names.add(f"http.{self.status // 100}xx")
        if self.code is not None and self.connector:
            names.add(f"{self.connector}.{self.code}")
        return names

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the error as flows see it in context and as runs record it."""
        data: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.status is not None:
            data["status"] = self.status
        if self.code is not None:
            data["code"] = self.code
        if self.connector:
            data["connector"] = self.connector
        if self.retry_after is not None:
            data["retry_after"] = self.retry_after
        if self.details is not None:
            data["details"] = self.details
        return data

    def __repr__(self) -> str:
        return f"StepError({self.kind}: {self.message})"


class RateLimited(StepError):
    """The platform asked us to slow down; `retry_after` says for how long when known."""

    kind = "RateLimited"


class Transient(StepError):
    """A failure worth retrying as is: connection errors, 5xx answers, platform 'busy' codes."""

    kind = "Transient"


class AuthExpired(StepError):
    """The credential expired or was revoked; the SDK refreshes it and retries once."""

    kind = "AuthExpired"


class InvalidInput(StepError):
    """The step's input was rejected: by its schema or by the platform."""

    kind = "InvalidInput"


class NotFound(StepError):
    """The object the step refers to does not exist."""

    kind = "NotFound"


class PermissionDenied(StepError):
    """The credential is valid but not allowed to do this."""

    kind = "PermissionDenied"


class ConnectorError(StepError):
    """Any other failure reported by a connector or raised by its code."""

    kind = "ConnectorError"


class StepTimeout(StepError):
    """A step attempt (or the whole run) ran past its `timeout`."""

    kind = "Timeout"


class ExpressionError(StepError):
    """A JMESPath expression failed while rendering a step's input."""

    kind = "ExpressionError"


class PayloadTooLarge(StepError):
    """A step's input or a run's payload is over the configured limit."""

    kind = "PayloadTooLarge"


def error_from_exception(exc: BaseException, connector: str | None = None) -> StepError:
    """Turn any exception raised by an action into a :class:`StepError`."""
    if isinstance(exc, StepError):
        return exc
    if isinstance(exc, TimeoutError):
        return StepTimeout(str(exc) or "timed out")
    return ConnectorError(f"{type(exc).__name__}: {exc}", connector=connector)


@dataclass(frozen=True)
class ErrorMatcher:
    """A compiled list of error patterns (see module docstring)."""

    patterns: tuple[str, ...]

    @classmethod
    def of(cls, patterns: Iterable[str]) -> "ErrorMatcher":
        """Compile a pattern list; an empty list matches every error, like ``["*"]``."""
        pats = tuple(patterns) or ("*",)
        return cls(pats)

    def matches(self, error: StepError) -> bool:
        """True when any pattern names this error."""
        if "*" in self.patterns:
            return True
        names = error.names()
        return any(p in names for p in self.patterns)
