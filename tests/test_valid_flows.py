"""Valid flows load with zero issues: each file in tests/valid_flows/ and a few built here."""
from __future__ import annotations

import copy
import json
import traceback
from pathlib import Path
from typing import Any

import pytest

from engine.validation import LoadResult, load_flow_text

VALID = Path(__file__).parent / "valid_flows"
FILES = sorted(p.name for p in VALID.glob("*.json"))
#: The stored connections the valid flows may use (name -> connector).
CONNECTIONS = {"api": "http"}


def load_text(text: str) -> LoadResult:
    try:
        return load_flow_text(text, connections=CONNECTIONS)
    except Exception:
        pytest.fail(f"load_flow_text raised:\n{traceback.format_exc()}")


def load_file(name: str) -> LoadResult:
    return load_text((VALID / name).read_text(encoding="utf-8"))


def read(name: str) -> dict[str, Any]:
    return json.loads((VALID / name).read_text(encoding="utf-8"))


def test_there_are_valid_flows() -> None:
    assert {"linear.json", "choice_loop.json", "map_parallel_nesting.json", "literal_templates.json", "expression_args.json"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_valid_flow_loads_without_issues(name: str) -> None:
    result = load_file(name)
    assert result.issues == [], "\n".join(map(str, result.issues))
    assert result.ok and result.flow is not None
    assert result.flow.id == read(name)["id"]


def test_linear_flow_follows_list_order() -> None:
    flow = load_file("linear.json").flow
    assert flow.graph.start == "greet"
    assert [flow.graph.steps[s].next for s in ("greet", "log", "pause", "total")] == ["log", "pause", "total", None]


def test_loop_through_a_choice_step_is_valid() -> None:
    flow = load_file("choice_loop.json").flow
    steps = flow.graph.steps
    assert steps["wait_a_bit"].next == "check"  # the back edge
    assert [target for _, target in steps["route"].choices] == ["finished", "gave_up"]
    assert steps["route"].default == "wait_a_bit"
    assert steps["check"].catch[0].as_key == "failure"


def test_the_same_loop_without_the_choice_is_a_cycle() -> None:
    doc = read("choice_loop.json")
    doc["steps"][0].pop("catch")
    doc["steps"][2]["next"] = "check"
    doc["steps"][0]["next"] = "wait_a_bit"  # check -> wait_a_bit -> check, skipping the choice
    issues = load_text(json.dumps(doc)).issues
    assert any("does not pass through a choice step" in i.message for i in issues), issues


def test_map_and_parallel_nest() -> None:
    flow = load_file("map_parallel_nesting.json").flow
    each = flow.graph.steps["each_order"]
    both = each.graph.steps["both"]
    assert [b.id for b in both.branches] == ["notify", "lines"]
    inner_map = both.branches[1].graph.steps["each_line"]
    assert inner_map.type == "map" and "line_total" in inner_map.graph.steps
    assert each.max_concurrency == 4 and each.tolerated_failures == 1
    assert set(flow.all_steps) >= {"each_order", "both", "post", "each_line", "line_total", "sorted_lines", "summary", "done"}


def test_literal_values_are_not_evaluated() -> None:
    flow = load_file("literal_templates.json").flow
    context = {"trigger": {}, "vars": flow.vars, "steps": {}, "run": {"id": "run-1"}}
    rendered = flow.all_steps["text"].value(context)
    assert rendered == {
        "raw": "{{ not evaluated }}",
        "marker": {"$expr": "kept as data"},
        "mixed": ["run-1", "{{ still raw }}"],
    }
    assert flow.all_steps["say"].args(context) == {"message": "use {{ name }} in templates"}


def test_expressions_in_args_skip_static_type_checks() -> None:
    assert load_file("expression_args.json").ok
    # The same args as literals of the wrong type are rejected at load time.
    doc = read("expression_args.json")
    doc["steps"][0]["args"].update(url="ftp://x", method="FETCH", timeout="slow", headers=[1])
    doc["steps"][1]["args"]["seconds"] = "soon"
    doc["steps"][2]["args"] = {"items": "not a list"}
    pointers = {i.pointer for i in load_text(json.dumps(doc)).issues}
    assert pointers == {
        "/steps/0/args/url", "/steps/0/args/method", "/steps/0/args/timeout", "/steps/0/args/headers",
        "/steps/1/args/seconds", "/steps/2/args/items",
    }


def test_long_linear_flow_loads() -> None:
    """Thousands of steps must not hit the recursion limit in the graph checks."""
    doc = copy.deepcopy(read("linear.json"))
    doc["steps"] = [{"id": f"s{i}", "type": "set", "value": i} for i in range(3000)]
    doc.pop("output")
    result = load_text(json.dumps(doc))
    assert result.ok, result.issues[:3]
