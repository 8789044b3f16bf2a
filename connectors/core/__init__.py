"""Built-in `core` actions: set, filter, sort, dedupe, aggregate, log and delay."""
from __future__ import annotations

import asyncio
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field, field_validator

from connectors.sdk import ActionContext, Connector
from engine.errors import InvalidInput
from engine.expressions import Expression, ExpressionSyntaxError, compile_expression, truthy

connector = Connector(
    name="core",
    version="1.0.0",
    title={"en": "Core", "zh": "核心"},
    description="Build, filter, sort, de-duplicate and aggregate data; log; delay.",
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


class Metric(BaseModel):
    model_config = {"extra": "forbid"}

    op: Literal["sum", "count", "count_distinct", "min", "max", "avg", "first", "last"] = Field(
        description="sum/avg of numbers; min/max of numbers or of strings (ISO dates order as text); count of items "
                    "(of non-null values with `of`); count_distinct; first/last non-null value.")
    of: str | None = Field(default=None, description="JMESPath giving each item's value (the item is the root); "
                                                     "nulls are skipped. Optional for count.")


class AggregateInput(BaseModel):
    model_config = {"extra": "forbid"}

    items: list[Any] = Field(description="The list to group.")
    group_by: str = Field(description="JMESPath giving each item's group key (a string, number, boolean or null).")
    metrics: dict[str, Metric] = Field(description="Output field -> {op, of}, computed over each group's items.")

    @field_validator("metrics")
    @classmethod
    def _not_key(cls, value: dict[str, Metric]) -> dict[str, Metric]:
        if "key" in value:
            raise ValueError("'key' is the group key's field; name the metric otherwise")
        for name, metric in value.items():
            if metric.of is None and metric.op != "count":
                raise ValueError(f"{name}: `of` is required for {metric.op}")
        return value


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
    expr = _item_expression(inp.key, "key") if inp.key else None
    seen: set[bytes] = set()
    kept = []
    for item in inp.items:
        identity = orjson.dumps(expr.search(item) if expr else item, option=orjson.OPT_SORT_KEYS)
        if identity not in seen:
            seen.add(identity)
            kept.append(item)
    return kept


def _group_key(value: Any) -> Any:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise InvalidInput(f"args.group_by: group keys must be strings, numbers, booleans or null, got {type(value).__name__}")
    return value


def _numbers(name: str, values: list[Any]) -> list[float]:
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise InvalidInput(f"args.metrics.{name}: expected numbers, got {sorted({type(v).__name__ for v in values})}")
    return values


def _extreme(name: str, values: list[Any], pick: Any) -> Any:
    if not values:
        return None
    kinds = {"number" if isinstance(v, (int, float)) and not isinstance(v, bool) else "string" if isinstance(v, str) else "other"
             for v in values}
    if len(kinds) > 1 or "other" in kinds:
        raise InvalidInput(f"args.metrics.{name}: min/max need all numbers or all strings")
    return pick(values)


def _metric(name: str, metric: Metric, items: list[Any], of: Expression | None) -> Any:
    if of is None:  # count without `of`: every item of the group
        return len(items)
    values = [v for v in (of.search(item) for item in items) if v is not None]
    if metric.op == "sum":
        return sum(_numbers(name, values))
    if metric.op == "avg":
        return sum(_numbers(name, values)) / len(values) if values else None
    if metric.op == "count":
        return len(values)
    if metric.op == "count_distinct":
        return len({orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in values})
    if metric.op in ("min", "max"):
        return _extreme(name, values, min if metric.op == "min" else max)
    return (values[0] if metric.op == "first" else values[-1]) if values else None


@connector.action("aggregate", input=AggregateInput, title={"en": "Group and aggregate", "zh": "分组汇总"}, examples=[
    {"title": "Spend and last order per customer",
     "input": {"items": [{"customer": "C1", "amount": 4200, "date": "2026-11-02"}, {"customer": "C2", "amount": 300, "date": "2026-10-09"},
                         {"customer": "C1", "amount": 1800, "date": "2026-11-20"}],
               "group_by": "customer",
               "metrics": {"spend": {"op": "sum", "of": "amount"}, "orders": {"op": "count"}, "last_order": {"op": "max", "of": "date"}}},
     "expect": [{"key": "C1", "spend": 6000, "orders": 2, "last_order": "2026-11-20"},
                {"key": "C2", "spend": 300, "orders": 1, "last_order": "2026-10-09"}]},
])
def aggregate_items(ctx: ActionContext, inp: AggregateInput) -> list[dict[str, Any]]:
    """Group items by a key and compute metrics per group (groups in order of first appearance)."""
    key_expr = _item_expression(inp.group_by, "group_by")
    value_exprs = {name: _item_expression(m.of, f"metrics.{name}.of") if m.of else None for name, m in inp.metrics.items()}
    groups: dict[Any, list[Any]] = {}
    for item in inp.items:
        # 1 and True are equal dict keys in Python: keep JSON's distinction by keying on the type too
        key = _group_key(key_expr.search(item))
        kind = "bool" if isinstance(key, bool) else "number" if isinstance(key, (int, float)) else "other"
        groups.setdefault((kind, key), []).append(item)
    return [{"key": key, **{name: _metric(name, inp.metrics[name], members, value_exprs[name]) for name in inp.metrics}}
            for (_, key), members in groups.items()]


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
