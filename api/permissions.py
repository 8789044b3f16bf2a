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
    ("POST", "/api/erasures"): "admin",  # right to erasure (also counts with dry_run)
    # flows and runs: history, recovery, import/export (Flowlink API helper)
    ("GET", "/api/flows/{flow_id}/diff"): "viewer",
    ("GET", "/api/flows/{flow_id}/export"): "viewer",
    ("POST", "/api/flows/import"): "editor",
    ("POST", "/api/flows/{flow_id}/rollback"): "editor",
    ("DELETE", "/api/flows/{flow_id}"): "editor",
    ("POST", "/api/steps/test"): "editor",
    ("POST", "/api/runs/{run_id}/cancel"): "operator",
    ("POST", "/api/runs/{run_id}/retry"): "operator",
    ("POST", "/api/runs/retry"): "operator",
    # connections (credentials: secret values are write-only) and the connector catalog
    ("GET", "/api/connections"): "viewer",
    ("GET", "/api/connections/{name}"): "viewer",
    ("POST", "/api/connections"): "editor",
    ("PATCH", "/api/connections/{name}"): "editor",
    ("DELETE", "/api/connections/{name}"): "editor",
    ("POST", "/api/connections/{name}/test"): "editor",
    ("POST", "/api/connections/rotate-keys"): "admin",
    ("GET", "/api/connectors"): "viewer",
    ("GET", "/api/connectors/{name}"): "viewer",
    ("POST", "/api/connectors/{name}/options"): "editor",
    # tracked campaign links (GET /r/{code} is outside /api and public)
    ("POST", "/api/links"): "editor",
    # data tables: viewers read definitions and rows, editors change them
    ("GET", "/api/tables"): "viewer",
    ("GET", "/api/tables/{name}"): "viewer",
    ("GET", "/api/tables/{name}/rows"): "viewer",
    ("GET", "/api/tables/{name}/rows/{row_id}"): "viewer",
    ("POST", "/api/tables"): "editor",
    ("PATCH", "/api/tables/{name}"): "editor",
    ("DELETE", "/api/tables/{name}"): "editor",
    ("POST", "/api/tables/{name}/rows"): "editor",
    ("PATCH", "/api/tables/{name}/rows/{row_id}"): "editor",
    ("DELETE", "/api/tables/{name}/rows/{row_id}"): "editor",
    # flow templates (the shipped flows) to start from
    ("GET", "/api/templates"): "viewer",
    ("GET", "/api/templates/{template_id}"): "viewer",
    # the web editor's helpers
    ("POST", "/api/ui/preview"): "editor",
}


def required_role(method: str, path: str) -> str:
    """The role a request needs (`PUBLIC` for none); unknown routes are admin-only."""
    return PERMISSIONS.get((method, path), "admin")
