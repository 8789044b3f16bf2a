"""The invalid-flow corpus: each file in tests/invalid_flows/ is a broken flow definition.

`tests/invalid_flows/expected.json` maps each file name to
``{"about": ..., "issues": [{"pointer", "contains", "stage"}, ...], "connections"?: {...}}``.
Every file is read as raw text (so JSON syntax errors belong to the corpus too) and
loaded through the public loader, `engine.validation.load_flow_text`. A case passes when
the loader returns, without raising, exactly the listed issues: each expected issue is
reported (same pointer and stage, message containing `contains`) and nothing else is.
"""
from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from connectors.sdk import Connector, ConnectorRegistry, default_registry
from engine.validation import LoadResult, load_flow_text

CORPUS = Path(__file__).parent / "invalid_flows"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
CASE_FILES = sorted(p.name for p in CORPUS.iterdir() if p.is_file() and p.name != "expected.json")


# A test-only connector whose input model forbids unknown fields: pydantic then emits
# "additionalProperties": false, which is what lets the loader reject an unknown arg.
# (The built-in core and http models keep pydantic's default extra="ignore".)
class PaintInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    colour: Literal["red", "blue"]


strict = Connector(name="strict", version="1.0.0", title={"en": "Strict (tests)"})


@strict.action("paint", input=PaintInput)
def paint(ctx: Any, inp: PaintInput) -> str:
    """Return the colour."""
    return inp.colour


REGISTRY = ConnectorRegistry([*default_registry().connectors.values(), strict])


def load_case(name: str) -> LoadResult:
    """Load one corpus file as text; a raised exception fails the test with its traceback."""
    text = (CORPUS / name).read_text(encoding="utf-8")
    try:
        return load_flow_text(text, registry=REGISTRY, connections=EXPECTED[name].get("connections"))
    except Exception:  # the loader must turn every bad input into issues
        pytest.fail(f"{name}: load_flow_text raised instead of returning issues:\n{traceback.format_exc()}")


def resolve_pointer(doc: Any, pointer: str) -> bool:
    """True when the RFC 6901 pointer names an existing place in the document."""
    if pointer == "":
        return True
    node = doc
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


def test_corpus_and_expectations_match() -> None:
    assert len(CASE_FILES) >= 35
    assert set(CASE_FILES) == set(EXPECTED), "every corpus file needs an entry in expected.json and vice versa"
    for name, case in EXPECTED.items():
        assert case.get("about"), f"{name}: say what the case is about"
        assert case["issues"], f"{name}: an invalid flow needs at least one expected issue"
        for issue in case["issues"]:
            assert set(issue) == {"pointer", "contains", "stage"}, f"{name}: {issue}"
            assert issue["stage"] in ("parse", "schema", "semantics"), f"{name}: {issue}"
    stages = {issue["stage"] for case in EXPECTED.values() for issue in case["issues"]}
    assert stages == {"parse", "schema", "semantics"}


@pytest.mark.parametrize("name", CASE_FILES)
def test_invalid_flow(name: str) -> None:
    case = EXPECTED[name]
    result = load_case(name)
    assert result.flow is None and not result.ok, f"{name}: loaded although it is invalid"

    actual = [issue.to_dict() for issue in result.issues]
    unmatched = list(actual)
    missing = []
    for want in case["issues"]:
        for got in unmatched:
            if got["pointer"] == want["pointer"] and got["stage"] == want["stage"] and want["contains"] in got["message"]:
                unmatched.remove(got)
                break
        else:
            missing.append(want)
    report = "\n".join(f"  {i['stage']:9} {i['pointer'] or '/'}: {i['message']}" for i in actual)
    assert not missing, f"{name}: expected issues not reported: {missing}\nreported:\n{report}"
    assert not unmatched, f"{name}: unexpected issues: {unmatched}\nreported:\n{report}"


@pytest.mark.parametrize("name", [n for n in CASE_FILES if EXPECTED[n]["issues"][0]["stage"] != "parse"])
def test_pointers_name_existing_places(name: str) -> None:
    """An editor highlights the pointer, so it must exist in the document (a missing
    property is reported on the object that lacks it)."""
    doc = json.loads((CORPUS / name).read_text(encoding="utf-8"))
    for issue in load_case(name).issues:
        assert resolve_pointer(doc, issue.pointer), f"{name}: {issue.pointer!r} is not in the document ({issue.message})"


@pytest.mark.parametrize(("name", "stage"), [("schema_many_errors.json", "schema"), ("semantic_many_errors.json", "semantics")])
def test_independent_errors_are_all_reported_in_one_pass(name: str, stage: str) -> None:
    issues = load_case(name).issues
    assert len(issues) >= 5
    assert {issue.stage for issue in issues} == {stage}
    assert len({issue.pointer for issue in issues}) == len(issues), "each error at its own place"


def test_several_cases_have_three_or_more_errors() -> None:
    many = [name for name, case in EXPECTED.items() if len(case["issues"]) >= 3]
    assert len(many) >= 2, many


def test_json_syntax_errors_name_line_and_column() -> None:
    for name in CASE_FILES:
        if name.startswith("parse_") and name != "parse_deeply_nested.json":
            (issue,) = load_case(name).issues
            assert issue.stage == "parse" and "line " in issue.message and "column " in issue.message
