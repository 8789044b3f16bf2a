"""Error rules as data: how a platform's answers map onto Flowlink's typed errors.

A rule matches an HTTP status (``429``, ``[401, 403]``, ``"5xx"``) and/or a JMESPath
predicate over the JSON body (``"errcode == `45009`"``), and names the error kind it
means. Optional JMESPath expressions extract the platform's code and message, and
``retry_after`` is seconds or the name of a header (``"Retry-After"``). Rules are tried
in order and the first match wins; the defaults for plain HTTP statuses come last::

    ErrorRules([
        {"when": "errcode == `45009`", "kind": "RateLimited", "code": "errcode", "message": "errmsg", "retry_after": 60},
        {"when": "errcode == `40014` || errcode == `42001`", "kind": "AuthExpired", "code": "errcode", "message": "errmsg"},
        {"when": "errcode != `0`", "kind": "ConnectorError", "code": "errcode", "message": "errmsg"},
    ])

A rule whose kind is ``"ok"`` accepts the answer (no later rule is tried). A status-only
rule matches a 2xx answer only when it names that status or its class explicitly.
Note JMESPath compares a missing field as null: ``errcode != `0``` is true for a body
without `errcode`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import httpx
import orjson

from connectors.sdk.http import parse_retry_after
from engine.errors import (
    AuthExpired,
    ConnectorError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    StepError,
    Transient,
)
from engine.expressions import Expression, compile_expression, truthy

#: Kinds a rule may map to; "ok" accepts the answer.
ERROR_CLASSES: dict[str, type[StepError] | None] = {
    "RateLimited": RateLimited,
    "Transient": Transient,
    "AuthExpired": AuthExpired,
    "InvalidInput": InvalidInput,
    "NotFound": NotFound,
    "PermissionDenied": PermissionDenied,
    "ConnectorError": ConnectorError,
    "ok": None,
}

_BODY_PREVIEW_LIMIT = 2048
_RULE_KEYS = {"kind", "status", "when", "code", "message", "retry_after", "description"}


class ErrorRuleError(ValueError):
    """An error rule that is not well formed."""


def _parse_status(spec: Any) -> tuple[frozenset[int], frozenset[int]]:
    """(exact statuses, status classes) from 404, "404", "4xx" or a list of these."""
    items = spec if isinstance(spec, (list, tuple, set, frozenset)) else [spec]
    exact: set[int] = set()
    classes: set[int] = set()
    for item in items:
        if isinstance(item, bool):
            raise ErrorRuleError(f"status {item!r} is not an HTTP status")
        if isinstance(item, int):
            if not 100 <= item <= 599:
                raise ErrorRuleError(f"status {item} is not an HTTP status")
            exact.add(item)
            continue
        text = str(item).strip().lower()
        if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
            classes.add(int(text[0]))
        elif text.isdigit() and 100 <= int(text) <= 599:
            exact.add(int(text))
        else:
            raise ErrorRuleError(f"status {item!r} is not a status (404), a class (\"5xx\") or a list of these")
    return frozenset(exact), frozenset(classes)


def _compile(text: str | None, what: str) -> Expression | None:
    if text is None:
        return None
    try:
        return compile_expression(text)
    except ValueError as exc:
        raise ErrorRuleError(f"{what}: {exc}") from None


def body_preview(body: Any) -> Any:
    """The body as errors carry it: whole when small, else its first 2 KB as text."""
    if body is None:
        return None
    if isinstance(body, str):
        return body[:_BODY_PREVIEW_LIMIT]
    text = orjson.dumps(body, default=str).decode()
    return body if len(text) <= _BODY_PREVIEW_LIMIT else text[:_BODY_PREVIEW_LIMIT] + "…(truncated)"


@dataclass(frozen=True)
class ErrorRule:
    """One rule; see the module docstring."""

    kind: str
    status: Any = None
    when: str | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | str | None = None
    description: str = ""
    _exact: frozenset[int] = field(default=frozenset(), init=False, repr=False, compare=False)
    _classes: frozenset[int] = field(default=frozenset(), init=False, repr=False, compare=False)
    _when: Expression | None = field(default=None, init=False, repr=False, compare=False)
    _code: Expression | None = field(default=None, init=False, repr=False, compare=False)
    _message: Expression | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ERROR_CLASSES:
            raise ErrorRuleError(f"kind {self.kind!r} is not one of {', '.join(ERROR_CLASSES)}")
        if self.status is None and self.when is None:
            raise ErrorRuleError("a rule needs `status`, `when` or both")
        if isinstance(self.retry_after, bool) or (self.retry_after is not None and not isinstance(self.retry_after, (int, float, str))):
            raise ErrorRuleError("retry_after must be seconds or a header name")
        exact, classes = _parse_status(self.status) if self.status is not None else (frozenset(), frozenset())
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_classes", classes)
        object.__setattr__(self, "_when", _compile(self.when, "when"))
        object.__setattr__(self, "_code", _compile(self.code, "code"))
        object.__setattr__(self, "_message", _compile(self.message, "message"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ErrorRule":
        """A rule from its JSON form (as a connector manifest writes it)."""
        unknown = set(data) - _RULE_KEYS
        if unknown:
            raise ErrorRuleError(f"unknown error rule field(s): {', '.join(sorted(unknown))}")
        if "kind" not in data:
            raise ErrorRuleError("an error rule needs a `kind`")
        return cls(**dict(data))

    def status_matches(self, status: int) -> bool:
        if self.status is None:
            return True
        return status in self._exact or status // 100 in self._classes

    def matches(self, status: int, body: Any) -> bool:
        """True when this rule applies to an answer with this status and parsed body."""
        if not self.status_matches(status):
            return False
        if self._when is not None:
            if not isinstance(body, (dict, list)):
                return False
            try:
                return truthy(self._when.search(body))
            except StepError:
                return False
        return True

    def _extract(self, expr: Expression | None, body: Any) -> Any:
        if expr is None or not isinstance(body, (dict, list)):
            return None
        try:
            return expr.search(body)
        except StepError:
            return None

    def build(self, response: httpx.Response, body: Any, connector: str | None = None) -> StepError | None:
        """The typed error this rule makes of the answer (None for kind "ok")."""
        cls = ERROR_CLASSES[self.kind]
        if cls is None:
            return None
        code = self._extract(self._code, body)
        text = self._extract(self._message, body)
        if isinstance(code, (dict, list)):
            code = orjson.dumps(code).decode()
        if text is not None and not isinstance(text, str):
            text = orjson.dumps(text).decode()
        retry_after: float | None
        if isinstance(self.retry_after, str):
            retry_after = parse_retry_after(response.headers.get(self.retry_after))
        else:
            retry_after = None if self.retry_after is None else float(self.retry_after)
        return cls(
            _message(connector, response, text or self.description or None, code),
            code=code,
            status=response.status_code,
            connector=connector,
            retry_after=retry_after,
            details={"body": body_preview(body)},
        )


def _message(connector: str | None, response: httpx.Response, text: str | None, code: Any) -> str:
    try:
        request = response.request
        where = f"{request.method} {request.url.copy_with(query=None)}"  # never the query: it may hold a token
    except RuntimeError:
        where = "the request"
    prefix = f"{connector}: " if connector else ""
    code_part = f" [code {code}]" if code is not None else ""
    if text:
        return f"{prefix}{text}{code_part} (HTTP {response.status_code} from {where})"
    return f"{prefix}HTTP {response.status_code}{code_part} from {where}"


#: Plain HTTP statuses, consistent with the built-in `http` connector, except that 401
#: means AuthExpired here: the SDK can refresh the credential and retry once.
DEFAULT_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(kind="RateLimited", status=429, retry_after="Retry-After"),
    ErrorRule(kind="Transient", status=[408, "5xx"], retry_after="Retry-After"),
    ErrorRule(kind="AuthExpired", status=401),
    ErrorRule(kind="PermissionDenied", status=403),
    ErrorRule(kind="NotFound", status=[404, 410]),
    ErrorRule(kind="InvalidInput", status=[400, 409, 422]),
    ErrorRule(kind="ConnectorError", status=["1xx", "3xx", "4xx"]),
)


class ErrorRules:
    """An ordered list of rules (then, unless `defaults=False`, the default HTTP rules)."""

    def __init__(self, rules: Iterable[ErrorRule | Mapping[str, Any]] = (), *, defaults: bool = True) -> None:
        compiled: list[ErrorRule] = []
        for index, rule in enumerate(rules):
            if isinstance(rule, ErrorRule):
                compiled.append(rule)
                continue
            try:
                compiled.append(ErrorRule.from_dict(rule))
            except (ErrorRuleError, TypeError) as exc:
                raise ErrorRuleError(f"error rule {index}: {exc}") from None
        self.rules: tuple[ErrorRule, ...] = tuple(compiled)
        self.defaults = defaults

    def __iter__(self):  # noqa: ANN204
        yield from self.rules
        if self.defaults:
            yield from DEFAULT_RULES

    def __len__(self) -> int:
        return len(self.rules) + (len(DEFAULT_RULES) if self.defaults else 0)

    def match(self, status: int, body: Any) -> ErrorRule | None:
        """The first rule that matches, or None."""
        for rule in self:
            if rule.matches(status, body):
                return rule
        return None

    def classify(self, response: httpx.Response, body: Any, connector: str | None = None) -> StepError | None:
        """The typed error for this answer, or None when it is a success."""
        rule = self.match(response.status_code, body)
        if rule is not None:
            return rule.build(response, body, connector)
        if response.is_success:
            return None
        return ConnectorError(_message(connector, response, None, None), status=response.status_code,
                              connector=connector, details={"body": body_preview(body)})


def parse_body(response: httpx.Response) -> Any:
    """JSON when the answer is JSON (or looks like it), else text; None when empty."""
    if not response.content:
        return None
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    looks_json = response.content.lstrip()[:1] in (b"{", b"[")
    if ctype == "application/json" or ctype.endswith("+json") or ((not ctype or ctype.startswith("text/")) and looks_json):
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            pass
    try:
        return response.text
    except UnicodeDecodeError:
        return response.content.decode("latin-1")
