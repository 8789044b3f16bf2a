"""JMESPath expressions and value templates used in flow definitions.

A value in a flow definition is rendered against the run context
(``trigger``, ``vars``, ``steps.<id>.output``, ``item``/``index`` in a map,
``error`` in a catch target, ``run``):

- ``{"$expr": "steps.lookup.output.owner"}`` evaluates JMESPath and keeps the type;
- ``"Hello {{ trigger.body.name }}"`` is a string template: each ``{{ }}`` is JMESPath
  and the result is always a string;
- ``{"$literal": <any>}`` is taken verbatim, never evaluated (for text that
  contains ``{{`` or an object with a ``$expr`` key);
- anything else is a literal; objects and lists are rendered member by member.

Only the definition is rendered: data that an expression returns (a webhook body that
contains ``{{``, say) is never evaluated again.

Each expression is compiled once (cached) and each definition value is compiled once
into a :class:`Renderer`, so a run only walks prebuilt closures.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import re
import uuid as _uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jmespath
import jmespath.exceptions
import orjson
from jmespath import exceptions as jp_exceptions
from jmespath import functions as jp_functions

from engine.errors import ExpressionError

EXPR_KEY = "$expr"
LITERAL_KEY = "$literal"
_TEMPLATE_RE = re.compile(r"\{\{(.*?)\}\}", re.S)

Renderer = Callable[[dict[str, Any]], Any]


# --------------------------------------------------------------------------- functions


def _parse_instant(value: Any) -> _dt.datetime:
    """Read an ISO-8601 string or epoch seconds as an aware datetime (UTC when naive)."""
    if isinstance(value, bool):
        raise ValueError("expected a date, got a boolean")
    if isinstance(value, (int, float)):
        return _dt.datetime.fromtimestamp(value, tz=_dt.timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        parsed = _dt.datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)
    raise ValueError(f"expected a date string or epoch seconds, got {type(value).__name__}")


def _zone(name: str | None) -> _dt.tzinfo:
    if not name:
        return _dt.timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _stringify(value: Any) -> str:
    """How a value reads inside a string template or concat()."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()


_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}


class FlowlinkFunctions(jp_functions.Functions):
    """The few custom functions flows need on top of standard JMESPath."""

    def _validate_arguments(self, args: list[Any], signature: Any, function_name: str) -> Any:
        # jmespath checks exact arity; our signatures may end with optional arguments
        if signature and not signature[-1].get("variadic") and any(s.get("optional") for s in signature):
            required = sum(1 for s in signature if not s.get("optional"))
            if not required <= len(args) <= len(signature):
                raise jp_exceptions.ArityError(len(signature), len(args), function_name)
            return self._type_check(args, signature[: len(args)], function_name)
        return super()._validate_arguments(args, signature, function_name)

    @jp_functions.signature({"types": ["string", "null"], "optional": True})
    def _func_now(self, tz: str | None = None) -> str:
        return _dt.datetime.now(_zone(tz)).isoformat(timespec="seconds")

    @jp_functions.signature({"types": ["string", "null"], "optional": True})
    def _func_today(self, tz: str | None = None) -> str:
        return _dt.datetime.now(_zone(tz)).date().isoformat()

    @jp_functions.signature(
        {"types": ["string", "number"]}, {"types": ["string"]}, {"types": ["string", "null"], "optional": True}
    )
    def _func_format_date(self, value: Any, fmt: str, tz: str | None = None) -> str:
        return _parse_instant(value).astimezone(_zone(tz)).strftime(fmt)

    @jp_functions.signature({"types": ["string", "number"]}, {"types": ["number"]}, {"types": ["string"]})
    def _func_date_add(self, value: Any, amount: float, unit: str) -> str:
        if unit not in _UNITS:
            raise ValueError(f"date_add unit must be one of {', '.join(_UNITS)}")
        moved = _parse_instant(value) + _dt.timedelta(seconds=amount * _UNITS[unit])
        return moved.isoformat(timespec="seconds")

    @jp_functions.signature({"types": ["string", "number"]})
    def _func_to_epoch(self, value: Any) -> float:
        return _parse_instant(value).timestamp()

    @jp_functions.signature()
    def _func_uuid(self) -> str:
        return str(_uuid.uuid4())

    @jp_functions.signature({"types": []}, {"types": [], "variadic": True})
    def _func_concat(self, first: Any, *rest: Any) -> str:
        return "".join(_stringify(v) for v in (first, *rest))

    @jp_functions.signature({"types": ["string"]}, {"types": [], "variadic": True})
    def _func_format(self, template: str, *args: Any) -> str:
        if len(args) == 1 and isinstance(args[0], dict):
            return template.format_map({k: _stringify(v) for k, v in args[0].items()})
        return template.format(*(_stringify(v) for v in args))

    @jp_functions.signature({"types": []}, {"types": []})
    def _func_default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None else value

    @jp_functions.signature({"types": ["string"]})
    def _func_lower(self, value: str) -> str:
        return value.lower()

    @jp_functions.signature({"types": ["string"]})
    def _func_upper(self, value: str) -> str:
        return value.upper()

    @jp_functions.signature({"types": ["string"]})
    def _func_trim(self, value: str) -> str:
        return value.strip()

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_replace(self, value: str, old: str, new: str) -> str:
        return value.replace(old, new)

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, value: str, sep: str) -> list[str]:
        return value.split(sep)

    @jp_functions.signature({"types": ["number"]}, {"types": ["number"], "optional": True})
    def _func_round(self, value: float, digits: int = 0) -> float:
        return round(value, int(digits))

    @jp_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_add(self, a: float, b: float) -> float:
        return a + b

    @jp_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_sub(self, a: float, b: float) -> float:
        return a - b

    @jp_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_mul(self, a: float, b: float) -> float:
        return a * b

    @jp_functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_div(self, a: float, b: float) -> float:
        if b == 0:
            raise ValueError("division by zero")
        return a / b

    @jp_functions.signature({"types": ["string"]})
    def _func_md5(self, value: str) -> str:
        return hashlib.md5(value.encode()).hexdigest()

    @jp_functions.signature({"types": ["string"]})
    def _func_sha256(self, value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()

    @jp_functions.signature({"types": ["string"]})
    def _func_from_json(self, value: str) -> Any:
        return orjson.loads(value)


_OPTIONS = jmespath.Options(custom_functions=FlowlinkFunctions())

#: Every function an expression may call (JMESPath's own and ours) with its signature.
FUNCTION_TABLE: dict[str, Any] = _OPTIONS.custom_functions.FUNCTION_TABLE

#: The names of the custom functions, for editors' autocompletion and the docs.
CUSTOM_FUNCTIONS = sorted(n[len("_func_"):] for n in dir(FlowlinkFunctions) if n.startswith("_func_"))


# --------------------------------------------------------------------------- compile


class ExpressionSyntaxError(ValueError):
    """A JMESPath expression that does not parse."""


class Expression:
    """A compiled JMESPath expression.

    A plain field path (``steps.lookup.output.owner``, the most common expression by far)
    is evaluated by direct dictionary look-ups with JMESPath's semantics (a field of
    anything but an object is null), several times faster than the generic tree walk.
    """

    __slots__ = ("text", "parsed", "search")

    def __init__(self, text: str, parsed: Any) -> None:
        self.text = text
        self.parsed = parsed
        keys = _field_path(parsed.parsed)
        self.search = _path_getter(keys) if keys is not None else self._search

    def _search(self, context: dict[str, Any]) -> Any:
        """Evaluate against the run context; a runtime failure becomes ExpressionError."""
        try:
            return self.parsed.search(context, options=_OPTIONS)
        except (jmespath.exceptions.JMESPathError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise ExpressionError(f"expression `{self.text}` failed: {exc}") from None

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def _field_path(node: dict[str, Any]) -> tuple[str, ...] | None:
    """The keys of an AST that is only `a.b.c` field access, else None."""
    if node.get("type") == "field":
        return (node["value"],)
    if node.get("type") == "subexpression":
        keys: list[str] = []
        for child in node["children"]:
            sub = _field_path(child)
            if sub is None:
                return None
            keys.extend(sub)
        return tuple(keys)
    return None


def _path_getter(keys: tuple[str, ...]) -> Callable[[Any], Any]:
    def get(value: Any) -> Any:
        for key in keys:
            if type(value) is not dict:
                return None
            value = value.get(key)
        return value

    return get


def compile_expression(text: str) -> Expression:
    """Compile JMESPath once; raise ExpressionSyntaxError naming what is wrong and where."""
    if not isinstance(text, str):
        raise ExpressionSyntaxError(f"expected a JMESPath expression (a string), got {_json_type(text)}")
    if not text.strip():
        raise ExpressionSyntaxError("empty expression")
    return _compile_cached(text)


@functools.lru_cache(maxsize=8192)
def _compile_cached(text: str) -> Expression:
    source = text.strip()
    try:
        return Expression(text, jmespath.compile(source))
    except jmespath.exceptions.ParseError as exc:
        raise ExpressionSyntaxError(f"invalid JMESPath `{source}`: {_parse_error_message(exc, source)}") from None
    except jmespath.exceptions.JMESPathError as exc:
        raise ExpressionSyntaxError(f"invalid JMESPath `{source}`: {exc}") from None
    except RecursionError:
        raise ExpressionSyntaxError(f"invalid JMESPath `{source[:40]}...`: nested too deeply") from None


#: Readable names for the parser's token types (as in "expected ']'").
_TOKEN_NAMES = {
    "eof": "end of expression",
    "rbracket": "']'",
    "lbracket": "'['",
    "rbrace": "'}'",
    "lbrace": "'{'",
    "rparen": "')'",
    "lparen": "'('",
    "comma": "','",
    "colon": "':'",
    "dot": "'.'",
    "quoted_identifier": "a field name",
    "unquoted_identifier": "a field name",
}


def _parse_error_message(exc: jmespath.exceptions.ParseError, source: str) -> str:
    """'unexpected end of expression', 'unexpected token ...', 'unclosed ...' with a 1-based column."""
    if isinstance(exc, jmespath.exceptions.LexerError):
        if (exc.message or "").startswith("Unknown token"):
            detail = f"unexpected character '{exc.lexer_value}'"
        else:
            detail = exc.message[:1].lower() + exc.message[1:] if exc.message else "invalid token"
        return f"{detail} at column {exc.lexer_position + 1}"
    token_type = (exc.token_type or "").lower()
    if isinstance(exc, jmespath.exceptions.IncompleteExpressionError) or token_type == "eof":
        message = "unexpected end of expression"
    else:
        value = exc.token_value if isinstance(exc.token_value, str) else _stringify(exc.token_value)
        message = f"unexpected token '{value}' ({token_type or 'unknown'}) at column {exc.lex_position + 1}"
    expected = re.match(r"Expecting: \[?([^\]]*?)\]?, got:", exc.msg or "")
    if expected:
        names = [n.strip(" '") for n in expected.group(1).split(",")]
        readable = list(dict.fromkeys(_TOKEN_NAMES.get(n, n) for n in names))
        message += f"; expected {' or '.join(readable)}"
    return message


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_expr(value: Any) -> bool:
    """True for ``{"$expr": "..."}``."""
    return isinstance(value, dict) and len(value) == 1 and EXPR_KEY in value


def is_literal(value: Any) -> bool:
    """True for ``{"$literal": ...}``."""
    return isinstance(value, dict) and len(value) == 1 and LITERAL_KEY in value


def is_template(value: Any) -> bool:
    """True for a string that contains ``{{ ... }}``."""
    return isinstance(value, str) and "{{" in value and _TEMPLATE_RE.search(value) is not None


def is_dynamic(value: Any) -> bool:
    """True when rendering this value evaluates anything (an expression or template)."""
    return is_expr(value) or is_template(value)


def iter_expressions(value: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(json_pointer, jmespath_text)`` for every expression inside a definition value."""
    if is_literal(value):
        return
    if is_expr(value):
        yield f"{pointer}/{EXPR_KEY}", value[EXPR_KEY]
    elif isinstance(value, str):
        if "{{" in value:
            for match in _TEMPLATE_RE.finditer(value):
                yield pointer, match.group(1)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_expressions(item, f"{pointer}/{_escape(key)}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_expressions(item, f"{pointer}/{index}")


def _escape(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def compile_value(value: Any) -> Renderer:
    """Compile a definition value into a function of the run context.

    Constant sub-trees are returned as they are (callers must not mutate rendered
    values), so a literal-only value costs one function call to render.
    """
    if not _has_dynamic(value):
        inner = value[LITERAL_KEY] if is_literal(value) else _strip_literals(value)
        return lambda _ctx: inner
    if is_expr(value):
        expr = compile_expression(value[EXPR_KEY])
        return expr.search
    if isinstance(value, str):
        return _compile_template(value)
    if isinstance(value, dict):
        parts = [(key, compile_value(item)) for key, item in value.items()]
        return lambda ctx: {key: render(ctx) for key, render in parts}
    if isinstance(value, list):
        items = [compile_value(item) for item in value]
        return lambda ctx: [render(ctx) for render in items]
    return lambda _ctx: value


def _has_dynamic(value: Any) -> bool:
    if is_literal(value):
        return False
    if is_expr(value) or is_template(value):
        return True
    if isinstance(value, dict):
        return any(_has_dynamic(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_dynamic(v) for v in value)
    return False


def _strip_literals(value: Any) -> Any:
    """Unwrap nested ``$literal`` markers inside a constant value."""
    if is_literal(value):
        return value[LITERAL_KEY]
    if isinstance(value, dict):
        return {k: _strip_literals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_literals(v) for v in value]
    return value


def _compile_template(text: str) -> Renderer:
    pieces: list[str | Expression] = []
    last = 0
    for match in _TEMPLATE_RE.finditer(text):
        if match.start() > last:
            pieces.append(text[last:match.start()])
        pieces.append(compile_expression(match.group(1)))
        last = match.end()
    if last < len(text):
        pieces.append(text[last:])

    def render(ctx: dict[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else _stringify(p.search(ctx)) for p in pieces)

    return render


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "" , [] and {} are false; everything else (0 too) is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)) and not value:
        return False
    return True
