"""API keys for machines: create (the key is shown once), list, revoke. Your own keys; an admin's: anyone's."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, Field

from api.deps import get_state, user_of
from api.errors import error_body
from api.routers.auth import user_error
from api.state import ServiceState
from engine.users import User, UserError

router = APIRouter(prefix="/api/api-keys", tags=["api keys"])


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    user_id: str | None = Field(None, description="Admins only: create the key for this user (default: yourself).")


@router.get("")
def list_keys(user_id: str | None = None, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> list[dict[str, Any]]:
    """Your keys (an admin sees everyone's, or one user's with `user_id`); never the key itself."""
    if user.role != "admin":
        user_id = user.id
    return state.users.list_keys(user_id)


@router.post("", status_code=201)
def create_key(body: KeyCreate, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> dict[str, Any]:
    """A new key acting as its user (same role and team); `key` is in this answer only."""
    owner = user
    if body.user_id and body.user_id != user.id:
        if user.role != "admin":
            raise HTTPException(403, error_body("Forbidden", "only an admin can create keys for other users"))
        owner = state.users.get(body.user_id)
        if owner is None:
            raise HTTPException(404, error_body("NotFound", f"no user '{body.user_id}'"))
    try:
        key, info = state.users.create_key(owner, body.name, user.username)
    except UserError as exc:
        raise user_error(exc) from None
    return {**info, "key": key}


@router.delete("/{key_id}", status_code=204)
def revoke_key(key_id: str, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> Response:
    """Revoke a key; it stops working at once."""
    info = state.users.get_key(key_id)
    if info is None or (user.role != "admin" and info["user_id"] != user.id):
        raise HTTPException(404, error_body("NotFound", f"no API key '{key_id}'"))
    state.users.revoke_key(key_id, user.username)
    return Response(status_code=204)
