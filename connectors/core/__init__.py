"""Built-in `core` actions: set, filter, sort, dedupe, log and delay."""
from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from connectors.sdk import ActionContext, Connector
from engine.errors import InvalidInput
from engine.expressions import Expression, ExpressionSyntaxError, compile_expression, truthy

connector = Connector(
    name="core",
    version="1.0.0",
    title={"en": "Core", "zh": "核心"},
    description="Build, filter, sort and de-duplicate data; log; delay.",
    categories=("core",),
)


def _item_expression(text: str, field: str) -> Expression:
    try:
        return compile_expression(text)
    except ExpressionSyntaxError as exc:
        raise InvalidInput(f"args.{field}: {exc}") from None


class SetInput(BaseModel):
    model_config = {"extra": "forbid"}

    value: Any = Field(description="The value to output; build objects with expressions.")


class FilterInput(BaseModel):
    model_config = {"extra": "forbid"}

    items: list[Any] = Field(description="The list to filter.")
    where: str = Field(description="JMESPath evaluated on each item (the item is the root); truthy keeps it.")


class SortInput(BaseModel):
    model_config = {"extra": "forbid"}

    items: list[Any]
    by: str | None = Field(default=None, description="JMESPath giving each item's sort key (default: the item).")
    order: Literal["asc", "desc"] = "asc"


class DedupeInput(BaseModel):
    model_config = {"extra": "forbid"}

    items: list[Any]
    key: str | None = Field(default=None, description="JMESPath giving each item's identity (default: the item).")


class LogInput(BaseModel):
    model_config = {"extra": "forbid"}

    message: Any
    level: Literal["debug", "info", "warning", "error"] = "info"


class DelayInput(BaseModel):
    model_config = {"extra": "forbid"}

    seconds: float = Field(ge=0, le=86400)

    @field_validator("seconds")
    @classmethod
    def _finite(cls, value: float) -> float:
        if value != value:  # NaN
            raise ValueError("must be a number")
        return value


@connector.action("set", input=SetInput, title={"en": "Set value", "zh": "设置数据"}, examples=[
    {"title": "Build an object", "input": {"value": {"tag": "high_value", "priority": "P1"}},
     "expect": {"tag": "high_value", "priority": "P1"}},
])
def set_value(ctx: ActionContext, inp: SetInput) -> Any:
    """Output a value built from literals and expressions."""
    return inp.value


@connector.action("filter", input=FilterInput, title={"en": "Filter list", "zh": "过滤列表"}, examples=[
    {"title": "Orders over 3000", "input": {"items": [{"no": 1, "total": 4200}, {"no": 2, "total": 900}], "where": "total > `3000`"},
     "expect": [{"no": 1, "total": 4200}]},
])
def filter_items(ctx: ActionContext, inp: FilterInput) -> list[Any]:
    """Keep the items for which `where` is truthy."""
    expr = _item_expression(inp.where, "where")
    return [item for item in inp.items if truthy(expr.search(item))]


def _sort_key(value: Any) -> tuple[int, Any]:
    # Order across JSON types: null < numbers < strings; mixed types are an input error.
    if value is None:
        return (0, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInput(f"args.by: cannot sort by {type(value).__name__} values (use numbers or strings)")
    return (1, value) if isinstance(value, (int, float)) else (2, value)


@connector.action("sort", input=SortInput, title={"en": "Sort list", "zh": "排序列表"}, examples=[
    {"title": "Biggest spend first", "input": {"items": [{"id": "a", "spend": 10}, {"id": "b", "spend": 30}], "by": "spend", "order": "desc"},
     "expect": [{"id": "b", "spend": 30}, {"id": "a", "spend": 10}]},
])
def sort_items(ctx: ActionContext, inp: SortInput) -> list[Any]:
    """Sort items by a key expression, nulls first."""
    expr = _item_expression(inp.by, "by") if inp.by else None
    keyed = [(_sort_key(expr.search(item) if expr else item), item) for item in inp.items]
    kinds = {k[0] for k, _ in keyed if k[0] != 0}
    if len(kinds) > 1:
        raise InvalidInput("args.by: sort keys mix numbers and strings")
    keyed.sort(key=lambda pair: pair[0], reverse=inp.order == "desc")
    return [item for _, item in keyed]


@connector.action("dedupe", input=DedupeInput, title={"en": "Remove duplicates", "zh": "去重"}, examples=[
    {"title": "Repeated leads by phone", "input": {"items": [{"phone": "1"}, {"phone": "2"}, {"phone": "1"}], "key": "phone"},
     "expect": [{"phone": "1"}, {"phone": "2"}]},
])
def dedupe_items(ctx: ActionContext, inp: DedupeInput) -> list[Any]:
    """Keep the first item for each distinct key."""
    import orjson

    expr = _item_expression(inp.key, "key") if inp.key else None
    seen: set[bytes] = set()
    kept = []
    for item in inp.items:
        identity = orjson.dumps(expr.search(item) if expr else item, option=orjson.OPT_SORT_KEYS)
        if identity not in seen:
            seen.add(identity)
            kept.append(item)
    return kept


@connector.action("log", input=LogInput, title={"en": "Log", "zh": "记录日志"}, examples=[
    {"title": "A warning", "input": {"message": "CRM slow", "level": "warning"}, "expect": {"logged": "CRM slow", "level": "warning"}},
])
def log_message(ctx: ActionContext, inp: LogInput) -> dict[str, Any]:
    """Write a message to the run's log."""
    ctx.log(f"[{inp.level}] {inp.message}")
    return {"logged": inp.message, "level": inp.level}


@connector.action("delay", input=DelayInput, title={"en": "Delay", "zh": "延时"}, examples=[
    {"title": "A short pause", "input": {"seconds": 0.01}, "expect": {"waited": 0.01}},
])
async def delay(ctx: ActionContext, inp: DelayInput) -> dict[str, Any]:
    """Pause the run for a number of seconds."""
    await asyncio.sleep(inp.seconds)
    return {"waited": inp.seconds}
