"""Functions documented with optional arguments accept the shorter call at run time too."""
from __future__ import annotations

import re

import pytest

from engine.expressions import ExpressionError, compile_expression


@pytest.mark.parametrize("text, check", [
    ("now()", lambda v: re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", v)),
    ("now('Asia/Shanghai')", lambda v: v.endswith("+08:00")),
    ("today()", lambda v: re.fullmatch(r"\d{4}-\d\d-\d\d", v)),
    ("format_date(`0`, '%Y-%m-%d')", lambda v: v == "1970-01-01"),
    ("format_date(`0`, '%H', 'Asia/Shanghai')", lambda v: v == "08"),
    ("round(`2.6`)", lambda v: v == 3),
    ("round(`2.567`, `1`)", lambda v: v == 2.6),
])
def test_optional_arguments(text: str, check) -> None:
    assert check(compile_expression(text).search({}))


def test_too_many_or_too_few_arguments_still_fail() -> None:
    with pytest.raises(ExpressionError, match="Expected"):
        compile_expression("now('UTC', 'x')").search({})
    with pytest.raises(ExpressionError, match="Expected"):
        compile_expression("format_date(`0`)").search({})
