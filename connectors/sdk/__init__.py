"""The connector SDK: declare a connector, its actions and their typed inputs."""
from connectors.sdk.action import Action, ActionContext, Connector
from connectors.sdk.registry import ConnectorRegistry, UnknownAction, default_registry, version_satisfies

__all__ = [
    "Action",
    "ActionContext",
    "Connector",
    "ConnectorRegistry",
    "UnknownAction",
    "default_registry",
    "version_satisfies",
]
