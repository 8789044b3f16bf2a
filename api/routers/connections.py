"""Connections (stored credentials): list, read, create, update, delete, test, rotate keys.

Secret values are write-only: answers carry field names, and the values of fields declared
non-secret (by the connector's connection schema or its auth kind), never a secret value.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import jsonschema
from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, Field

from api.deps import get_state, user_of
from api.errors import error_body
from api.state import ServiceState
from connectors.sdk import AUTH_KINDS, ConnectionTest, Connector
from connectors.sdk.action import _schema_of
from engine.credentials import KeyringError
from engine.errors import InvalidInput, StepError
from engine.store import audit
from engine.users import User

router = APIRouter(prefix="/api/connections", tags=["connections"])
log = logging.getLogger("flowlink.api.connections")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class ConnectionCreate(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(pattern=NAME_PATTERN)
    connector: str = Field(min_length=1, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict, description="Field values; secret ones are never shown again.")


class ConnectionUpdate(BaseModel):
    model_config = {"extra": "forbid"}

    connector: str | None = Field(None, min_length=1, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict,
                                   description="Fields to set; omitted fields keep their value, null removes one.")


def _fail(status: int, kind: str, message: str, **extra: Any) -> HTTPException:
    return HTTPException(status, error_body(kind, message, **extra))


def _connector(state: ServiceState, name: str) -> Connector:
    connector = state.engine.registry.connectors.get(name)
    if connector is None:
        known = ", ".join(sorted(state.engine.registry.connectors))
        raise _fail(422, "InvalidInput", f"unknown connector '{name}' (installed: {known})")
    return connector


def _kind_of(connector: Connector, fields: dict[str, Any]) -> str | None:
    """The auth kind a connection of `connector` with `fields` uses (None: none declared)."""
    kind = fields.get("auth") if isinstance(fields.get("auth"), str) else None
    if kind:
        return kind
    if connector.auth and connector.auth != "none":
        return connector.auth
    if len(connector.connection_kinds) == 1:
        return connector.connection_kinds[0]
    return None


def _schemas(connector: Connector, fields: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON Schemas a connection's fields must satisfy: the connector's, the auth kind's."""
    found = []
    schema = _schema_of(connector.connection_schema)
    if schema is not None:
        found.append(schema)
    kind = _kind_of(connector, fields)
    if kind and kind in AUTH_KINDS and schema is None:
        kind_schema = AUTH_KINDS[kind].connection_schema()
        if kind == connector.auth:  # what the connector's auth options give is not required of a connection
            raw = connector.auth_options
            given = raw(fields.get("base_url") or connector.base_url) if callable(raw) else raw or {}
            kind_schema["required"] = [n for n in kind_schema.get("required", []) if n not in given]
        found.append(kind_schema)
    return found


def public_fields(connector: Connector | None, fields: dict[str, Any]) -> set[str]:
    """Names of fields declared non-secret (everything else is treated as secret)."""
    if connector is None:
        return {"auth"} & set(fields)
    public = {"auth", "base_url"}
    for schema in _schemas(connector, fields):
        for name, prop in (schema.get("properties") or {}).items():
            if not isinstance(prop, dict):
                continue
            if prop.get("x-secret") or prop.get("writeOnly") or prop.get("format") == "password":
                continue
            public.add(name)
    return {n for n in public if n in fields and n.lower() not in audit.SECRET_KEYS}


def _validate(connector: Connector, fields: dict[str, Any]) -> None:
    kind = fields.get("auth")
    if kind is not None:
        allowed = connector.connection_kinds or tuple(AUTH_KINDS)
        if kind not in allowed or kind not in AUTH_KINDS:
            raise _fail(422, "InvalidInput", f"fields.auth: '{kind}' is not one of {', '.join(allowed)}")
    issues = []
    for schema in _schemas(connector, fields):
        for error in jsonschema.Draft202012Validator(schema).iter_errors(fields):
            where = "/fields" + "".join(f"/{p}" for p in error.absolute_path)
            # never echo the offending value: it may be a secret
            message = error.message if error.validator in ("required", "additionalProperties") else f"invalid value ({error.validator})"
            issues.append({"pointer": where, "message": message})
    if issues:
        raise _fail(422, "InvalidInput", "the connection's fields are not valid for connector "
                    f"'{connector.name}'", issues=issues)


def _describe(state: ServiceState, row: dict[str, Any], fields: dict[str, Any] | None) -> dict[str, Any]:
    names = list(row["public"].get("fields", []))
    data = {"name": row["name"], "connector": row["connector"], "fields": names,
            "created_at": row["created_at"], "updated_at": row["updated_at"]}
    if fields is not None:
        connector = state.engine.registry.connectors.get(row["connector"])
        public = public_fields(connector, fields)
        data["values"] = {k: fields[k] for k in sorted(public)}
        data["secret_fields"] = sorted(set(fields) - public)
    return data


def _row(state: ServiceState, name: str) -> dict[str, Any]:
    for row in state.engine.connection_store.list():
        if row["name"] == name:
            return row
    raise _fail(404, "NotFound", f"no connection '{name}'")


def _fields(state: ServiceState, name: str) -> dict[str, Any]:
    try:
        return state.engine.connection_store.fields(name)
    except InvalidInput:
        raise _fail(404, "NotFound", f"no connection '{name}'") from None
    except KeyringError as exc:
        raise _fail(500, "KeyringError", str(exc)) from None


@router.get("")
async def list_connections(state: ServiceState = Depends(get_state)) -> list[dict[str, Any]]:
    """Every connection: name, connector, field names and times (never a value)."""
    rows = await asyncio.to_thread(state.engine.connection_store.list)
    return [_describe(state, row, None) for row in rows]


@router.post("/rotate-keys")
async def rotate_keys(state: ServiceState = Depends(get_state), actor: User = Depends(user_of)) -> dict[str, Any]:
    """Re-encrypt every connection with the first key of FLOWLINK_SECRET_KEY (admin)."""
    try:
        count = await asyncio.to_thread(state.engine.connection_store.rotate, actor.username)
    except KeyringError as exc:
        raise _fail(500, "KeyringError", str(exc)) from None
    return {"rotated": count}


@router.get("/{name}")
async def get_connection(name: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """One connection: field names, the values of non-secret fields, which fields are secret."""
    row = await asyncio.to_thread(_row, state, name)
    fields = await asyncio.to_thread(_fields, state, name)
    return _describe(state, row, fields)


def _save(state: ServiceState, name: str, connector_name: str, fields: dict[str, Any], actor: str) -> dict[str, Any]:
    connector = _connector(state, connector_name)
    _validate(connector, fields)
    state.engine.connection_store.put(name, connector_name, fields, actor)
    return _describe(state, _row(state, name), fields)


@router.post("", status_code=201)
async def create_connection(body: ConnectionCreate, state: ServiceState = Depends(get_state),
                            actor: User = Depends(user_of)) -> dict[str, Any]:
    """Create a connection; 409 if the name is taken."""
    if body.name in await asyncio.to_thread(state.engine.connection_store.kinds):
        raise _fail(409, "Conflict", f"connection '{body.name}' exists (PATCH it to change it)")
    fields = {k: v for k, v in body.fields.items() if v is not None}
    return await asyncio.to_thread(_save, state, body.name, body.connector, fields, actor.username)


@router.patch("/{name}")
async def update_connection(name: str, body: ConnectionUpdate, state: ServiceState = Depends(get_state),
                            actor: User = Depends(user_of)) -> dict[str, Any]:
    """Change fields: omitted ones (secrets included) keep their value; null removes a field."""
    row = await asyncio.to_thread(_row, state, name)
    fields = await asyncio.to_thread(_fields, state, name)
    for key, value in body.fields.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return await asyncio.to_thread(_save, state, name, body.connector or row["connector"], fields, actor.username)


@router.delete("/{name}", status_code=204)
async def delete_connection(name: str, state: ServiceState = Depends(get_state), actor: User = Depends(user_of)) -> Response:
    """Remove a connection."""
    if not await asyncio.to_thread(state.engine.connection_store.delete, name, actor.username):
        raise _fail(404, "NotFound", f"no connection '{name}'")
    return Response(status_code=204)


async def run_test(state: ServiceState, connector: Connector, fields: dict[str, Any]) -> ConnectionTest:
    """The connector's own `test(connection)` if it has one, else its auth kind's test."""
    own = getattr(connector, "test", None)
    try:
        if callable(own):
            result = own(dict(fields))
            if asyncio.iscoroutine(result):
                result = await result
            if isinstance(result, ConnectionTest):
                return result
            return ConnectionTest(bool(result), "the connection works" if result else "the connection test failed")
        kind = _kind_of(connector, fields) or "none"
        if kind not in AUTH_KINDS:
            return ConnectionTest(False, f"unknown auth kind '{kind}'", kind="InvalidInput")
        options: dict[str, Any] = {}
        if kind == connector.auth:
            raw = connector.auth_options
            base_url = fields.get("base_url") or connector.base_url
            options = dict(raw(base_url) if callable(raw) else raw or {})
        auth = AUTH_KINDS[kind].from_connection({k: v for k, v in fields.items() if k != "auth"}, **options)
        auth.bind(connector.name, state.engine.token_cache)
        return await auth.test()
    except StepError as exc:
        return ConnectionTest(False, exc.message, kind=exc.kind, code=exc.code)


def _scrub(text: str, fields: dict[str, Any]) -> str:
    """`text` with every field value of at least 4 characters masked (defence in depth)."""
    for value in fields.values():
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, audit.SECRET_MARK)
    return text


@router.post("/{name}/test")
async def test_connection(name: str, state: ServiceState = Depends(get_state), actor: User = Depends(user_of)) -> dict[str, Any]:
    """Check the credentials: `{ok, message, kind?, code?}` (never a secret)."""
    row = await asyncio.to_thread(_row, state, name)
    fields = await asyncio.to_thread(_fields, state, name)
    connector = _connector(state, row["connector"])
    try:
        result = (await run_test(state, connector, fields)).to_dict()
    except Exception as exc:  # a broken connector test must still answer, without secrets
        log.warning("testing connection %s failed: %s", name, _scrub(f"{type(exc).__name__}: {exc}",
                                                                     {k: v for k, v in fields.items() if k != "auth"}))
        result = {"ok": False, "message": f"the test failed: {type(exc).__name__}"}
    secrets = {k: v for k, v in fields.items() if k not in public_fields(connector, fields)}
    result["message"] = _scrub(str(result.get("message", "")), secrets)
    return {"connection": name, "connector": row["connector"], **result}
