"""FastAPI dependencies shared by the routers: the service state, the user, access checks."""
from __future__ import annotations

from fastapi import Depends, HTTPException, Request

from api.errors import error_body
from api.permissions import PUBLIC, required_role
from api.state import ServiceState
from engine.users import User


async def get_state(request: Request) -> ServiceState:
    """The service state created at start-up (engine, background runs). Async: a sync dependency
    would cost every request a hop to the thread pool."""
    return request.app.state.flowlink


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def current_user(request: Request, state: ServiceState = Depends(get_state)) -> User:
    """The user behind the bearer session token or API key; 401 if missing, invalid, expired or deactivated."""
    token = bearer_token(request)
    found = state.users.authenticate(token) if token else None
    if found is None:
        message = "log in first: send Authorization: Bearer <session token or API key>" if not token \
            else "the session token or API key is invalid, expired or revoked"
        raise HTTPException(401, error_body("Unauthorized", message), headers={"WWW-Authenticate": "Bearer"})
    request.state.auth_kind = found[1]
    return found[0]


def authorize(request: Request, state: ServiceState = Depends(get_state)) -> User | None:
    """Router-level check: the route's entry in api/permissions.py against the user's role (401/403)."""
    route = request.scope.get("route")
    role = required_role(request.method, getattr(route, "path", request.url.path))
    if role == PUBLIC:
        return None
    user = current_user(request, state)
    request.state.user = user
    if not user.at_least(role):
        raise HTTPException(403, error_body("Forbidden", f"this needs the {role} role; you are {user.role}"))
    return user


def user_of(request: Request) -> User:
    """The user `authorize` checked for this request (routers use it for the actor and team scope)."""
    user = getattr(request.state, "user", None)
    if user is None:  # a route included without `authorize`: never serve it anonymously
        raise HTTPException(401, error_body("Unauthorized", "log in first"), headers={"WWW-Authenticate": "Bearer"})
    return user
