"""The `hubspot` connector's manifest: connection kinds, HTTP plumbing, error rules, limits, fake."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from connectors.hubspot.sandbox import create_app
from connectors.sdk import Budget, ConnectionTest, Connector
from connectors.sdk.action import build_client, ui

BASE_URL = "https://api.hubapi.com"
TOKEN_PATH = "/oauth/v1/token"


class HubSpotConnection(BaseModel):
    """What a `hubspot` connection stores: a private app's token, or an OAuth app's refresh token."""

    auth: Literal["bearer", "oauth2_authorization_code"] = Field(
        title="Authentication", description="bearer: a private app's access token; oauth2_authorization_code: "
        "an OAuth app's client id, secret and the account's refresh token.")
    token: str | None = Field(default=None, title="Private app access token", description="Settings → Integrations → "
                              "Private Apps → your app → Access token (pat-…).", json_schema_extra=ui(secret=True))
    client_id: str | None = Field(default=None, title="OAuth client ID")
    client_secret: str | None = Field(default=None, title="OAuth client secret", json_schema_extra=ui(secret=True))
    refresh_token: str | None = Field(default=None, title="OAuth refresh token", json_schema_extra=ui(secret=True))
    base_url: str | None = Field(default=None, pattern=r"^https?://", title="API address", description=f"Default {BASE_URL}.")


def auth_options(base_url: str | None) -> dict[str, Any]:
    """OAuth's token endpoint is on the API host (the sandbox's too)."""
    return {"token_url": f"{(base_url or BASE_URL).rstrip('/')}{TOKEN_PATH}"}


#: HubSpot answers errors as ``{status: "error", message, correlationId, category, errors?}``;
#: 429s carry ``policyName`` (TEN_SECONDLY_ROLLING, SECONDLY, DAILY), the code flows can catch.
ERROR_RULES: list[dict[str, Any]] = [
    {"status": 429, "kind": "RateLimited", "code": "policyName", "message": "message", "retry_after": "Retry-After"},
    {"status": 401, "kind": "AuthExpired", "code": "category", "message": "message"},
    {"status": 403, "kind": "PermissionDenied", "code": "category", "message": "message"},
    {"status": 404, "kind": "NotFound", "code": "category", "message": "message"},
    {"status": [400, 409, 422], "kind": "InvalidInput", "code": "category", "message": "message"},
    {"status": "5xx", "kind": "Transient", "code": "category", "message": "message", "retry_after": "Retry-After"},
]

connector = Connector(
    name="hubspot",
    version="1.0.0",
    title={"en": "HubSpot CRM", "zh": "HubSpot CRM"},
    description="Contacts, companies and deals in HubSpot CRM (v3): create, update, upsert by a unique property, "
                "search with paging, associate, and list owners.",
    categories=("crm",),
    homepage="https://developers.hubspot.com/docs/api/crm/understanding-the-crm",
    connection_kinds=("bearer", "oauth2_authorization_code"),
    connection_schema=HubSpotConnection,
    base_url=BASE_URL,
    auth="oauth2_authorization_code",
    auth_options=auth_options,
    error_rules=ERROR_RULES,
    # private apps: 100 calls per 10 s per account (Free/Starter); shared by every run and worker,
    # with headroom for the skew between our clock and HubSpot's window
    budget=Budget(90, 10, "hubspot"),
    sandbox=create_app,
)


async def test_connection(fields: dict[str, Any]) -> ConnectionTest:
    """`POST /api/connections/{name}/test`: read one owner, so a private-app token (which no
    token endpoint can check) is verified too, along with the owners scope the forms need."""
    return await build_client(connector, fields).test_connection("GET", "/crm/v3/owners", params={"limit": 1})


connector.test = test_connection  # type: ignore[attr-defined]
