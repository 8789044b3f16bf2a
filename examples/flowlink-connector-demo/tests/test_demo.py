"""The demo connector's own tests: its manifest, its actions against the fake Demo CRM served
on 127.0.0.1, and the fake's contract (so the fake cannot drift into accepting anything).

Run with ``python -m pytest examples/flowlink-connector-demo/tests``.
"""
from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from connectors.sdk import ActionContext
from connectors.sdk.manifest import validate_manifest
from engine.errors import InvalidInput, NotFound, PermissionDenied
from flowlink_connector_demo import connector
from flowlink_connector_demo.platform import FakeDemoCrm, serve


@pytest.fixture()
def crm() -> Iterator[tuple[FakeDemoCrm, str]]:
    fake = FakeDemoCrm(api_keys=("k-1",))
    with serve(fake) as base_url:
        yield fake, base_url


async def run(action: str, args: dict[str, Any], api_key: str | None = "k-1") -> Any:
    """Run one action the way the engine does: parse the input, call with a context."""
    found = connector.actions[action]
    ctx = ActionContext("run-1", "step", "flow", {"api_key": api_key} if api_key else None, lambda line: None)
    result = found.run(ctx, found.parse_input(args))
    return await result if found.is_async else result


def test_manifest_is_valid_and_carries_ui_hints() -> None:
    manifest = connector.manifest()
    assert validate_manifest(manifest) == []
    assert manifest["name"] == "demo" and manifest["version"] == "1.2.0"
    owner = manifest["actions"]["create_contact"]["input_schema"]["properties"]["owner_id"]
    assert owner["x-options"]["action"] == "list_owners" and owner["x-depends-on"] == ["base_url"]
    assert manifest["connection"]["schema"]["properties"]["api_key"]["x-secret"] is True


async def test_greet() -> None:
    assert await run("greet", {"name": "Li"}, api_key=None) == {"message": "Hello, Li."}
    assert await run("greet", {"name": "李雷", "language": "zh", "excited": True}, api_key=None) == {"message": "你好，李雷！"}
    with pytest.raises(InvalidInput, match="args.language"):
        await run("greet", {"name": "Li", "language": "fr"}, api_key=None)


async def test_create_then_lookup(crm: tuple[FakeDemoCrm, str]) -> None:
    fake, base = crm
    assert await run("lookup_contact", {"base_url": base, "email": "wu@example.com"}) == {"found": False, "contact": None}
    owners = await run("list_owners", {"base_url": base})
    created = await run("create_contact", {"base_url": base, "name": "Wu", "email": "wu@example.com",
                                           "owner_id": owners["owners"][0]["id"], "note": "line 1\nline 2"})
    assert created["id"] == "c1" and created["tags"] == [] and fake.contacts["c1"]["note"] == "line 1\nline 2"
    found = await run("lookup_contact", {"base_url": base, "email": "WU@example.com"})
    assert found["found"] is True and found["contact"]["id"] == "c1"


async def test_platform_errors_become_typed_errors(crm: tuple[FakeDemoCrm, str]) -> None:
    fake, base = crm
    args = {"base_url": base, "name": "Wu", "email": "wu@example.com", "owner_id": "u1"}
    await run("create_contact", args)
    with pytest.raises(InvalidInput) as dup:
        await run("create_contact", args)
    assert dup.value.status == 409 and "demo.duplicate_email" in dup.value.names()
    with pytest.raises(InvalidInput) as bad_owner:
        await run("create_contact", {**args, "email": "x@example.com", "owner_id": "nobody"})
    assert bad_owner.value.code == "invalid_field" and bad_owner.value.details == {"field": "owner_id"}
    with pytest.raises(PermissionDenied, match="unauthorized"):
        await run("list_owners", {"base_url": base}, api_key="wrong")
    with pytest.raises(InvalidInput, match="needs a 'demo' connection"):
        await run("list_owners", {"base_url": base}, api_key=None)
    assert len(fake.contacts) == 1


async def test_fake_enforces_the_contract(crm: tuple[FakeDemoCrm, str]) -> None:
    fake, base = crm
    auth = {"Authorization": "Bearer k-1"}
    async with httpx.AsyncClient(base_url=base, headers=auth) as client:
        cases = [
            ({}, 400, "missing_field", "name"),
            ({"name": "A", "email": "a@x", "owner_id": "u1", "vip": True}, 400, "unknown_field", "vip"),
            ({"name": "A", "email": "no-at", "owner_id": "u1"}, 400, "invalid_field", "email"),
            ({"name": "A", "email": "a@x", "owner_id": "u1", "tags": "t"}, 400, "invalid_field", "tags"),
        ]
        for body, status, code, field in cases:
            answer = await client.post("/v1/contacts", json=body)
            assert (answer.status_code, answer.json()["error"]["code"], answer.json()["error"].get("field")) == (status, code, field)
        assert (await client.post("/v1/contacts", content=b"{oops")).json()["error"]["code"] == "invalid_json"
        assert (await client.get("/v1/contacts")).json()["error"] == {"code": "missing_field", "message": "query parameter 'email' is required", "field": "email"}
        assert (await client.get("/v1/contacts/c9")).status_code == 404
        assert (await client.get("/v1/owners", headers={"Authorization": "Bearer nope"})).status_code == 401
    assert fake.contacts == {}


async def test_not_found_is_typed(crm: tuple[FakeDemoCrm, str]) -> None:
    from flowlink_connector_demo import call

    _, base = crm
    ctx = ActionContext("r", "s", "f", {"api_key": "k-1"}, lambda line: None)
    with pytest.raises(NotFound) as missing:
        await call(ctx, "GET", base, "/v1/contacts/c404")
    assert "demo.not_found" in missing.value.names()
