"""Which role each API route needs: the single place where access is decided.

Roles are ordered (engine/users.py ROLES): viewer < operator < editor < admin; a role may do
everything the ones before it may. `PUBLIC` routes need no login. A route missing from
`PERMISSIONS` is admin-only (and tests/test_auth.py fails, so every new route gets an entry).
"""
from __future__ import annotations

PUBLIC = "public"

PERMISSIONS: dict[tuple[str, str], str] = {
    # open to everyone
    ("GET", "/api/health"): PUBLIC,
    ("GET", "/api/ready"): PUBLIC,
    ("POST", "/api/auth/login"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,
    # any logged-in user: themselves and their own API keys
    ("GET", "/api/auth/me"): "viewer",
    ("POST", "/api/auth/logout"): "viewer",
    ("POST", "/api/auth/password"): "viewer",
    ("GET", "/api/api-keys"): "viewer",
    ("POST", "/api/api-keys"): "viewer",
    ("DELETE", "/api/api-keys/{key_id}"): "viewer",
    # reading flows and runs
    ("GET", "/api/flows"): "viewer",
    ("GET", "/api/flows/{flow_id}"): "viewer",
    ("GET", "/api/flows/{flow_id}/versions"): "viewer",
    ("GET", "/api/runs"): "viewer",
    ("GET", "/api/runs/{run_id}"): "viewer",
    ("GET", "/api/events"): "viewer",
    ("GET", "/api/events/{event_id}"): "viewer",
    # running
    ("POST", "/api/flows/{flow_id}/runs"): "operator",
    ("POST", "/api/events/{event_id}/replay"): "operator",
    # changing flows
    ("POST", "/api/flows"): "editor",
    ("POST", "/api/flows/validate"): "editor",
    ("PUT", "/api/flows/{flow_id}"): "editor",
    ("POST", "/api/flows/{flow_id}/activate"): "editor",
    ("POST", "/api/flows/{flow_id}/deactivate"): "editor",
    # administration
    ("PUT", "/api/flows/{flow_id}/owner"): "admin",
    ("GET", "/api/users"): "admin",
    ("POST", "/api/users"): "admin",
    ("GET", "/api/users/{user_id}"): "admin",
    ("PATCH", "/api/users/{user_id}"): "admin",
    ("POST", "/api/users/{user_id}/password"): "admin",
    ("GET", "/api/audit"): "admin",
}


def required_role(method: str, path: str) -> str:
    """The role a request needs (`PUBLIC` for none); unknown routes are admin-only."""
    return PERMISSIONS.get((method, path), "admin")
