"""The connector SDK: declare a connector, its actions and their typed inputs."""
from connectors.sdk.action import CUSTOM_API_CALL, Action, ActionContext, Connector, build_client, rate_key_for
from connectors.sdk.registry import ConnectorRegistry, UnknownAction, default_registry, version_satisfies

__all__ = [
    "CUSTOM_API_CALL",
    "build_client",
    "rate_key_for",
    "Action",
    "ActionContext",
    "Connector",
    "ConnectorRegistry",
    "UnknownAction",
    "default_registry",
    "version_satisfies",
]

# Rate budgets, pagination and triggers.
from connectors.sdk.paging import (  # noqa: E402
    CursorPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PagePaginator,
    PageRequest,
    PageResponse,
    PaginationError,
    PaginationLimitExceeded,
)
from connectors.sdk.ratelimit import Budget, RateLimiter, budget_of  # noqa: E402
from connectors.sdk.triggers import (  # noqa: E402
    PollStrategy,
    PollTrigger,
    RequestInfo,
    ScheduleTrigger,
    WebhookRejected,
    WebhookResponse,
    WebhookTrigger,
    add_trigger,
    poll_once,
    receive_webhook,
    triggers_of,
)

__all__ += [
    "Budget",
    "CursorPaginator",
    "NextUrlPaginator",
    "OffsetPaginator",
    "PagePaginator",
    "PageRequest",
    "PageResponse",
    "PaginationError",
    "PaginationLimitExceeded",
    "PollStrategy",
    "PollTrigger",
    "RateLimiter",
    "RequestInfo",
    "ScheduleTrigger",
    "WebhookRejected",
    "WebhookResponse",
    "WebhookTrigger",
    "add_trigger",
    "budget_of",
    "poll_once",
    "receive_webhook",
    "triggers_of",
]

# Auth kinds, the shared token cache, error rules and the connector HTTP client.
from connectors.sdk.auth import (  # noqa: E402
    AUTH_KINDS,
    ApiKeyAuth,
    AppTokenAuth,
    AuthField,
    BasicAuth,
    BearerAuth,
    CachedTokenAuth,
    ConnectionTest,
    ConnectorAuth,
    NoAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    SessionLoginAuth,
    SigningAuth,
    auth_from_connection,
    json_login,
    token_endpoint,
)
from connectors.sdk.client import ClientResponse, ConnectorClient  # noqa: E402
from connectors.sdk.error_rules import DEFAULT_RULES, ErrorRule, ErrorRuleError, ErrorRules  # noqa: E402
from connectors.sdk.tokens import Token, TokenCache, token_key  # noqa: E402

__all__ += [
    "AUTH_KINDS",
    "ApiKeyAuth",
    "AppTokenAuth",
    "AuthField",
    "BasicAuth",
    "BearerAuth",
    "CachedTokenAuth",
    "ClientResponse",
    "ConnectionTest",
    "ConnectorAuth",
    "ConnectorClient",
    "DEFAULT_RULES",
    "ErrorRule",
    "ErrorRuleError",
    "ErrorRules",
    "NoAuth",
    "OAuth2AuthorizationCode",
    "OAuth2ClientCredentials",
    "SessionLoginAuth",
    "SigningAuth",
    "Token",
    "TokenCache",
    "auth_from_connection",
    "json_login",
    "token_endpoint",
    "token_key",
]
