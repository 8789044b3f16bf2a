"""Login (session token), logout, who am I, change my password."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from api.deps import bearer_token, get_state, user_of
from api.errors import error_body
from api.state import ServiceState
from engine.users import User, UserError

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1000)
    new_password: str = Field(min_length=1, max_length=1000)


def user_error(exc: UserError) -> HTTPException:
    """A store refusal as the API's JSON error."""
    kinds = {404: "NotFound", 409: "Conflict"}
    return HTTPException(exc.status, error_body(kinds.get(exc.status, "InvalidRequest"), str(exc)))


@router.post("/login")
async def login(body: Login, request: Request, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """Exchange a username and password for a session token (Authorization: Bearer <token>), valid 12 hours."""
    client = request.client.host if request.client else None
    session = await asyncio.to_thread(state.users.login, body.username, body.password, client)
    if session is None:
        raise HTTPException(401, error_body("Unauthorized", "wrong username or password"))
    token, expires_at, user = session
    return {"token": token, "token_type": "bearer", "expires_at": expires_at, "user": user.to_dict()}


@router.post("/logout", status_code=204)
def logout(request: Request, state: ServiceState = Depends(get_state), user: User = Depends(user_of)) -> Response:
    """End the session whose token authenticated this request (an API key stays valid: revoke it instead)."""
    state.users.logout(bearer_token(request) or "", user.username)
    return Response(status_code=204)


@router.get("/me")
def me(request: Request, user: User = Depends(user_of)) -> dict[str, Any]:
    """The logged-in user and how it authenticated (session or api_key)."""
    return {**user.to_dict(), "auth": getattr(request.state, "auth_kind", None)}


@router.post("/password", status_code=204)
async def change_password(body: PasswordChange, state: ServiceState = Depends(get_state),
                          user: User = Depends(user_of)) -> Response:
    """Change your own password (needs the current one); ends all your sessions."""
    checked, _ = await asyncio.to_thread(state.users.check_password, user.username, body.current_password)
    if checked is None or checked.id != user.id:
        raise HTTPException(403, error_body("Forbidden", "the current password is wrong"))
    try:
        await asyncio.to_thread(state.users.set_password, user.id, body.new_password, user.username)
    except UserError as exc:
        raise user_error(exc) from None
    return Response(status_code=204)
