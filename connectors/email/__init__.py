"""Email connector (`email`): send over SMTP, start flows on new mail over IMAP.

The manifest is in :mod:`connectors.email.connector`; :mod:`~connectors.email.send` registers
the action and :mod:`~connectors.email.trigger` the poll trigger.
"""
from connectors.email import send, trigger  # noqa: F401  (registers the action and the trigger)
from connectors.email.check import check_connection
from connectors.email.connector import connector

connector.test = check_connection  # type: ignore[attr-defined]  # POST /api/connections/{name}/test

__all__ = ["connector"]
