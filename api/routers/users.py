"""User administration (admin only): list, create, change role/team/active, reset a password."""
from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from api.deps import get_state, user_of
from api.errors import error_body
from api.routers.auth import user_error
from api.state import ServiceState
from engine.users import User, UserError, generate_password

router = APIRouter(prefix="/api/users", tags=["users"])
Role = Literal["admin", "editor", "operator", "viewer"]


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    role: Role
    team: str | None = Field(None, max_length=100)
    password: str | None = Field(None, max_length=1000, description="Omit to have a one-time password generated and returned once.")


class UserUpdate(BaseModel):
    role: Role | None = None
    team: str | None = Field(None, max_length=100)
    active: bool | None = None


class PasswordReset(BaseModel):
    password: str | None = Field(None, max_length=1000, description="Omit to have one generated and returned once.")


@router.get("")
def list_users(state: ServiceState = Depends(get_state)) -> list[dict[str, Any]]:
    """Every user (never a password hash)."""
    return [u.to_dict() for u in state.users.list()]


@router.post("", status_code=201)
async def create_user(body: UserCreate, state: ServiceState = Depends(get_state), actor: User = Depends(user_of)) -> dict[str, Any]:
    """Create a user; the generated password (if none was given) is in the answer, this once."""
    password = body.password or generate_password()
    try:
        user = await asyncio.to_thread(state.users.create, body.username, password, body.role, body.team, actor.username)
    except UserError as exc:
        raise user_error(exc) from None
    return {**user.to_dict(), **({"password": password} if body.password is None else {})}


@router.get("/{user_id}")
def get_user(user_id: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """One user."""
    user = state.users.get(user_id)
    if user is None:
        raise HTTPException(404, error_body("NotFound", f"no user '{user_id}'"))
    return user.to_dict()


@router.patch("/{user_id}")
def update_user(user_id: str, body: UserUpdate, state: ServiceState = Depends(get_state), actor: User = Depends(user_of)) -> dict[str, Any]:
    """Change role, team (null or "" removes it) and/or active; deactivating ends the user's sessions."""
    try:
        return state.users.update(user_id, actor.username, **body.model_dump(exclude_unset=True)).to_dict()
    except UserError as exc:
        raise user_error(exc) from None


@router.post("/{user_id}/password")
async def reset_password(user_id: str, body: PasswordReset, state: ServiceState = Depends(get_state),
                         actor: User = Depends(user_of)) -> dict[str, Any]:
    """Set a new password and end the user's sessions; a generated one is returned this once."""
    password = body.password or generate_password()
    try:
        user = await asyncio.to_thread(state.users.set_password, user_id, password, actor.username)
    except UserError as exc:
        raise user_error(exc) from None
    return {**user.to_dict(), **({"password": password} if body.password is None else {})}
