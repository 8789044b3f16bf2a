"""The `fxiaoke` connector: Fxiaoke (纷享销客) CRM leads, customers, opportunities, owners and
follow-up records. Flows call ``fxiaoke.<action>``; see docs/connectors/fxiaoke.md."""
from connectors.fxiaoke import actions as _actions  # noqa: F401  (registers the actions)
from connectors.fxiaoke.connector import connector

__all__ = ["connector"]
