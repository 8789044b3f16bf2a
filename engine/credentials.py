"""Connections (stored credentials), encrypted at rest.

Secret fields are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).
Keys come from `FLOWLINK_SECRET_KEY` (one key, or several separated by commas: the first
encrypts, all decrypt, which is how a key is rotated) or else from a key file generated
with 0600 permissions under `FLOWLINK_HOME`. `rotate()` re-encrypts every connection with
the first key so the old ones can be dropped.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine, delete, insert, select, update

from engine.errors import InvalidInput
from engine.store import audit
from engine.store.db import DEFAULT_HOME
from engine.store.tables import connections


class KeyringError(RuntimeError):
    """The secret key is missing, malformed, or cannot decrypt stored data."""


def _key_file() -> Path:
    return Path(os.environ.get("FLOWLINK_HOME", DEFAULT_HOME)) / "secret.key"


def _raw_keys() -> list[str]:
    """FLOWLINK_SECRET_KEY's keys, or the key file's (created with mode 0600 on first use)."""
    raw = os.environ.get("FLOWLINK_SECRET_KEY")
    if not raw:
        path = _key_file()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        raw = path.read_text().strip()
    return [k.strip() for k in raw.split(",") if k.strip()]


def load_keyring() -> MultiFernet:
    """Keys from FLOWLINK_SECRET_KEY, or the key file (created with mode 0600 on first use)."""
    try:
        return MultiFernet([Fernet(k.encode()) for k in _raw_keys()])
    except (ValueError, TypeError) as exc:
        raise KeyringError(f"FLOWLINK_SECRET_KEY is not a valid Fernet key list: {exc}") from None


def derived_key(purpose: str) -> bytes:
    """A 32-byte key for one `purpose`, derived from the primary (first) secret key with
    HMAC-SHA256, so that other uses never see the encryption key itself."""
    keys = _raw_keys()
    if not keys:
        raise KeyringError("FLOWLINK_SECRET_KEY holds no key")
    return hmac.new(keys[0].encode(), f"flowlink:{purpose}".encode(), hashlib.sha256).digest()


class ConnectionStore:
    """Create, read (decrypted, for actions only), list (without secrets) and rotate connections."""

    def __init__(self, engine: Engine, keyring: MultiFernet | None = None) -> None:
        self.engine = engine
        self.keyring = keyring or load_keyring()

    def put(self, name: str, connector: str, fields: dict[str, Any], actor: str = "system") -> None:
        """Create or replace a connection; every field is encrypted."""
        token = self.keyring.encrypt(orjson.dumps(fields))
        public = {"fields": sorted(fields)}
        now = time.time()
        with self.engine.begin() as conn:
            exists = conn.execute(select(connections.c.name).where(connections.c.name == name)).scalar()
            if exists:
                conn.execute(update(connections).where(connections.c.name == name).values(
                    connector=connector, secret=token, public=orjson.dumps(public).decode(), updated_at=now))
            else:
                conn.execute(insert(connections).values(name=name, connector=connector, secret=token,
                                                        public=orjson.dumps(public).decode(), created_at=now, updated_at=now))
            audit.record(conn, actor, "connection.update" if exists else "connection.create", "connection", name,
                         after={"connector": connector, "fields": {k: "***" for k in fields}})

    def delete(self, name: str, actor: str = "system") -> bool:
        """Remove a connection; False if it did not exist."""
        with self.engine.begin() as conn:
            gone = conn.execute(delete(connections).where(connections.c.name == name)).rowcount
            if gone:
                audit.record(conn, actor, "connection.delete", "connection", name)
        return bool(gone)

    def fields(self, name: str) -> dict[str, Any]:
        """The decrypted fields (for the action that uses the connection, never for display)."""
        with self.engine.connect() as conn:
            token = conn.execute(select(connections.c.secret).where(connections.c.name == name)).scalar()
        if token is None:
            raise InvalidInput(f"unknown connection '{name}'")
        try:
            return orjson.loads(self.keyring.decrypt(token))
        except InvalidToken:
            raise KeyringError(f"connection '{name}' cannot be decrypted with the configured keys") from None

    def kinds(self) -> dict[str, str]:
        """Connection name -> connector, for flow validation."""
        with self.engine.connect() as conn:
            return dict(conn.execute(select(connections.c.name, connections.c.connector)).all())

    def list(self) -> list[dict[str, Any]]:
        """Names, connectors, field names and times; never a secret value."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(connections.c.name, connections.c.connector, connections.c.public,
                                       connections.c.created_at, connections.c.updated_at)
                                .order_by(connections.c.name)).mappings().all()
        return [{**row, "public": orjson.loads(row["public"])} for row in rows]

    def rotate(self, actor: str = "system") -> int:
        """Re-encrypt every connection with the first key; returns how many were rotated."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(connections.c.name, connections.c.secret)).all()
            for name, token in rows:
                conn.execute(update(connections).where(connections.c.name == name).values(secret=self.keyring.rotate(token)))
            audit.record(conn, actor, "connection.rotate_keys", "connection", "*", details={"count": len(rows)})
        return len(rows)


class StoreConnections:
    """ConnectionResolver over a ConnectionStore (reads off the event loop)."""

    def __init__(self, store: ConnectionStore) -> None:
        self.store = store

    async def resolve(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.store.fields, name)
