"""The `email` connection test: log in to SMTP (and IMAP when configured) without sending."""
from __future__ import annotations

from typing import Any

from connectors.email.imap import check_imap
from connectors.email.settings import server_settings
from connectors.email.smtp import check_smtp
from connectors.sdk import ConnectionTest
from connectors.sdk.http import shared_client
from engine.errors import StepError


async def check_connection(fields: dict[str, Any]) -> ConnectionTest:
    """SMTP login, then IMAP login and INBOX when the connection has an IMAP host (or a sandbox)."""
    http = shared_client()
    try:
        lines = [await check_smtp(await server_settings("smtp", fields, http))]
        if fields.get("imap_host") or fields.get("base_url"):
            lines.append(await check_imap(await server_settings("imap", fields, http)))
    except StepError as exc:
        return ConnectionTest(False, exc.message, kind=exc.kind, code=exc.code)
    return ConnectionTest(True, "; ".join(lines))
