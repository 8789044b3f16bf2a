"""Built-in `tables` connector: data tables in Flowlink's own database (see docs/tables.md).

A manifest (:mod:`.manifest`), small actions over the store (:mod:`.actions`), the row-changed
poll trigger (:mod:`.triggers`) and the sandbox database its examples run on (:mod:`.sandbox`).
"""
from connectors.tables import actions, triggers  # noqa: F401  (registers the actions and the trigger)
from connectors.tables.manifest import connector

__all__ = ["connector"]
