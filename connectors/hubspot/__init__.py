"""The `hubspot` connector: HubSpot CRM v3 contacts, companies, deals, associations and owners.
Flows call ``hubspot.<action>``; see docs/connectors/hubspot.md."""
from connectors.hubspot import actions as _actions  # noqa: F401  (registers the actions)
from connectors.hubspot.connector import connector

__all__ = ["connector"]
