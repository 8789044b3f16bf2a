"""Users, roles, login sessions and API keys.

Passwords are hashed with Argon2id (argon2-cffi). Session tokens and API keys are random;
only their SHA-256 is stored, so a database dump does not let anyone log in. Every change
(user created, role/team/active changed, password reset, key created/revoked, login, failed
login, logout) is written to the audit log, never with a password, token or key in it.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.store import audit
from engine.store.tables import api_keys, flows, sessions, users

#: From least to most powerful; each role can do everything the ones before it can.
ROLES = ("viewer", "operator", "editor", "admin")
SESSION_TTL = 12 * 3600.0
KEY_PREFIX = "flk_"
MIN_PASSWORD = 8
#: last_used_at of an API key is written at most this often (seconds), not on every request.
KEY_TOUCH_INTERVAL = 60.0

_hasher = PasswordHasher()
#: Verified against when the username is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """A request the store refuses; `status` is the HTTP answer the API gives for it."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class User:
    """An authenticated (or listed) user; never carries the password hash."""

    id: str
    username: str
    role: str
    team: str | None
    active: bool
    created_at: float
    updated_at: float

    def at_least(self, role: str) -> bool:
        """True if this user's role includes `role`'s rights."""
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def scoped_team(self) -> str | None:
        """The team whose flows this user is limited to (None: sees every flow). Admins are never limited."""
        return None if self.role == "admin" else self.team

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "role": self.role, "team": self.team,
                "active": self.active, "created_at": self.created_at, "updated_at": self.updated_at}


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _user(row: Any) -> User:
    return User(row["id"], row["username"], row["role"], row["team"], bool(row["active"]), row["created_at"], row["updated_at"])


def generate_password() -> str:
    """A random password for a new or reset account (shown once)."""
    return secrets.token_urlsafe(15)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")


class UserStore:
    """Users, sessions and API keys in the engine's database."""

    def __init__(self, engine: Engine, session_ttl: float = SESSION_TTL) -> None:
        self.engine = engine
        self.session_ttl = session_ttl

    # ------------------------------------------------------------------ users

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(users)).scalar_one()

    def get(self, user_id: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
        return _user(row) if row else None

    def by_username(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
        return _user(row) if row else None

    def list(self) -> list[User]:
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(select(users).order_by(users.c.username)).mappings().all()]

    def create(self, username: str, password: str, role: str, team: str | None = None, actor: str = "system") -> User:
        """Create an active user; UserError(409) if the username is taken."""
        username = username.strip()
        if not username or len(username) > 100:
            raise UserError("the username must have 1 to 100 characters")
        _check_role(role)
        _check_password(password)
        now = time.time()
        user = User(str(uuid.uuid4()), username, role, team or None, True, now, now)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(users).values(id=user.id, username=username, password_hash=_hasher.hash(password),
                                                  role=role, team=user.team, active=True, created_at=now, updated_at=now))
                audit.record(conn, actor, "user.create", "user", username, after=user.to_dict())
        except IntegrityError:
            raise UserError(f"the username '{username}' is taken", 409) from None
        return user

    def update(self, user_id: str, actor: str, **changes: Any) -> User:
        """Change `role`, `team` and/or `active`. Refuses to leave no active admin."""
        allowed = {k: v for k, v in changes.items() if k in ("role", "team", "active")}
        if "role" in allowed:
            _check_role(allowed["role"])
        if "team" in allowed:
            allowed["team"] = allowed["team"] or None
        with self.engine.begin() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id).with_for_update()).mappings().first()
            if row is None:
                raise UserError(f"no user '{user_id}'", 404)
            before = _user(row)
            after_row = {**row, **allowed, "updated_at": time.time()}
            after = _user(after_row)
            if before.role == "admin" and before.active and not (after.role == "admin" and after.active):
                admins = conn.execute(select(func.count()).select_from(users).where(
                    users.c.role == "admin", users.c.active.is_(True), users.c.id != user_id)).scalar_one()
                if admins == 0:
                    raise UserError("this is the last active admin: make another admin first", 409)
            conn.execute(update(users).where(users.c.id == user_id).values(**allowed, updated_at=after.updated_at))
            if not after.active:
                conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
            action = "user.role_change" if after.role != before.role else "user.update"
            audit.record(conn, actor, action, "user", before.username, before=before.to_dict(), after=after.to_dict())
        return after

    def set_password(self, user_id: str, password: str, actor: str) -> User:
        """Replace a user's password and end their sessions (the password is never audited)."""
        _check_password(password)
        with self.engine.begin() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
            if row is None:
                raise UserError(f"no user '{user_id}'", 404)
            conn.execute(update(users).where(users.c.id == user_id).values(password_hash=_hasher.hash(password), updated_at=time.time()))
            conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
            audit.record(conn, actor, "user.password_reset" if actor != row["username"] else "user.password_change", "user", row["username"])
        return _user(row)

    def ensure_first_admin(self, password: str | None = None) -> str | None:
        """Create the user `admin` when there is no user at all.

        Uses `password` (FLOWLINK_ADMIN_PASSWORD) if given, else generates one and returns it
        so the caller can show it once. Returns None when nothing was created.
        """
        if self.count():
            return None
        chosen = password if password is not None else generate_password()
        try:
            self.create("admin", chosen, "admin", actor="system")
        except UserError as exc:
            if exc.status == 409:  # another process created it at the same moment
                return None
            raise
        return chosen if password is None else None

    # ------------------------------------------------------------------ login

    def check_password(self, username: str, password: str) -> tuple[User | None, str]:
        """(user, "") if the credentials are right, else (None, reason). Takes the same time either way."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
        stored = row["password_hash"] if row else _DUMMY_HASH
        try:
            ok = _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if row is None:
            return None, "unknown user"
        if not ok:
            return None, "wrong password"
        if not row["active"]:
            return None, "user is deactivated"
        if _hasher.check_needs_rehash(stored):
            with self.engine.begin() as conn:
                conn.execute(update(users).where(users.c.id == row["id"]).values(password_hash=_hasher.hash(password)))
        return _user(row), ""

    def login(self, username: str, password: str, client: str | None = None) -> tuple[str, float, User] | None:
        """A new session (token, expires_at, user), or None; both outcomes are audited."""
        user, reason = self.check_password(username, password)
        now = time.time()
        if user is None:
            with self.engine.begin() as conn:
                audit.record(conn, username[:100] or "?", "auth.login_failed", "user", username[:200] or "?",
                             details={"reason": reason, "client": client})
            return None
        token = secrets.token_urlsafe(32)
        expires = now + self.session_ttl
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            conn.execute(insert(sessions).values(token_hash=_sha256(token), user_id=user.id, created_at=now, expires_at=expires))
            audit.record(conn, user.username, "auth.login", "user", user.username, details={"client": client, "expires_at": expires})
        return token, expires, user

    def logout(self, token: str, actor: str) -> bool:
        """End the session of `token`; False if it was not a session token."""
        with self.engine.begin() as conn:
            gone = conn.execute(delete(sessions).where(sessions.c.token_hash == _sha256(token))).rowcount
            if gone:
                audit.record(conn, actor, "auth.logout", "user", actor)
        return bool(gone)

    def authenticate(self, bearer: str) -> tuple[User, str] | None:
        """The active user behind a session token or API key, with "session" or "api_key"; None if invalid or expired."""
        if not bearer:
            return None
        digest = _sha256(bearer)
        now = time.time()
        with self.engine.connect() as conn:
            if bearer.startswith(KEY_PREFIX):
                key = conn.execute(select(api_keys).where(api_keys.c.key_hash == digest)).mappings().first()
                if key is None or key["revoked_at"] is not None or not hmac.compare_digest(key["key_hash"], digest):
                    return None
                row = conn.execute(select(users).where(users.c.id == key["user_id"])).mappings().first()
                kind = "api_key"
            else:
                sess = conn.execute(select(sessions).where(sessions.c.token_hash == digest)).mappings().first()
                if sess is None or sess["expires_at"] <= now or not hmac.compare_digest(sess["token_hash"], digest):
                    return None
                row = conn.execute(select(users).where(users.c.id == sess["user_id"])).mappings().first()
                kind = "session"
        if row is None or not row["active"]:
            return None
        if kind == "api_key" and (key["last_used_at"] or 0) < now - KEY_TOUCH_INTERVAL:
            with self.engine.begin() as conn:
                conn.execute(update(api_keys).where(api_keys.c.id == key["id"]).values(last_used_at=now))
        return _user(row), kind

    # ------------------------------------------------------------------ API keys

    def create_key(self, user: User, name: str, actor: str) -> tuple[str, dict[str, Any]]:
        """A new API key for `user`: (the key, shown once; its listing without the key)."""
        name = name.strip()
        if not name or len(name) > 100:
            raise UserError("the key name must have 1 to 100 characters")
        prefix = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        now = time.time()
        info = {"id": str(uuid.uuid4()), "user_id": user.id, "username": user.username, "name": name, "prefix": prefix,
                "created_at": now, "last_used_at": None, "revoked_at": None}
        with self.engine.begin() as conn:
            conn.execute(insert(api_keys).values(id=info["id"], user_id=user.id, name=name, prefix=prefix,
                                                 key_hash=_sha256(key), created_at=now))
            audit.record(conn, actor, "api_key.create", "api_key", info["id"],
                         after={"name": name, "prefix": prefix, "user": user.username})
        return key, info

    def list_keys(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Keys (never their hash), newest first; all users' when `user_id` is None."""
        query = (select(api_keys.c.id, api_keys.c.user_id, users.c.username, api_keys.c.name, api_keys.c.prefix,
                        api_keys.c.created_at, api_keys.c.last_used_at, api_keys.c.revoked_at)
                 .select_from(api_keys.outerjoin(users, users.c.id == api_keys.c.user_id))
                 .order_by(api_keys.c.created_at.desc()))
        if user_id is not None:
            query = query.where(api_keys.c.user_id == user_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def get_key(self, key_id: str) -> dict[str, Any] | None:
        return next((k for k in self.list_keys() if k["id"] == key_id), None) if key_id else None

    def revoke_key(self, key_id: str, actor: str) -> None:
        """Revoke a key (kept, marked revoked); revoking twice is harmless."""
        with self.engine.begin() as conn:
            done = conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                                .values(revoked_at=time.time())).rowcount
            if done:
                audit.record(conn, actor, "api_key.revoke", "api_key", key_id)

    # ------------------------------------------------------------------ flow ownership

    def flow_owner(self, flow_id: str) -> tuple[bool, str | None]:
        """(exists, owner) of a flow."""
        with self.engine.connect() as conn:
            row = conn.execute(select(flows.c.owner).where(flows.c.id == flow_id)).first()
        return (row is not None, row[0] if row else None)

    def set_flow_owner(self, flow_id: str, owner: str | None, actor: str) -> None:
        """Give a flow to a team (None: to nobody), audited as flow.owner_change."""
        with self.engine.begin() as conn:
            before = conn.execute(select(flows.c.owner).where(flows.c.id == flow_id)).scalar()
            conn.execute(update(flows).where(flows.c.id == flow_id).values(owner=owner))
            audit.record(conn, actor, "flow.owner_change", "flow", flow_id, before={"owner": before}, after={"owner": owner})

    def team_flow_ids(self, team: str) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(flows.c.id).where(flows.c.owner == team)).all()]


def first_start(store: UserStore) -> None:
    """Create the first admin if there is no user: FLOWLINK_ADMIN_PASSWORD, or a one-time password printed to stderr."""
    password = store.ensure_first_admin(os.environ.get("FLOWLINK_ADMIN_PASSWORD") or None)
    if password:
        print(f"\nFlowlink: created the first admin user 'admin' with the one-time password:\n\n    {password}\n\n"
              "It is shown only this once: log in and change it (POST /api/auth/password).\n", file=sys.stderr, flush=True)
