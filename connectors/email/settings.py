"""Server settings of an `email` connection: host, port, TLS mode and credentials.

A connection with ``base_url`` points at a Flowlink email sandbox: its ``/endpoints`` answer
gives the SMTP/IMAP addresses and the CA certificate of the sandbox's self-signed TLS.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping

import httpx

from engine.errors import ConnectorError, InvalidInput, Transient

DEFAULT_PORTS = {"smtp": {"starttls": 587, "ssl": 465, "none": 25}, "imap": {"starttls": 143, "ssl": 993, "none": 143}}


@dataclass(frozen=True)
class ServerSettings:
    """How to reach and log in to one SMTP or IMAP server."""

    protocol: Literal["smtp", "imap"]
    host: str
    port: int
    security: Literal["starttls", "ssl", "none"]
    username: str | None
    password: str | None
    verify_tls: bool = True
    ca_cert: str | None = None
    timeout: float = 30.0

    def tls_context(self) -> ssl.SSLContext:
        """A client TLS context: system CAs plus the connection's CA; no verification when turned off."""
        context = ssl.create_default_context()
        if self.ca_cert:
            try:
                context.load_verify_locations(cadata=self.ca_cert)
            except ssl.SSLError as exc:
                raise InvalidInput(f"email: the connection's ca_cert is not a PEM certificate ({exc})") from None
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


async def server_settings(protocol: Literal["smtp", "imap"], connection: Mapping[str, Any] | None,
                          http: httpx.AsyncClient) -> ServerSettings:
    """The `protocol` server of a connection (asking the sandbox at ``base_url`` when set)."""
    fields = dict(connection or {})
    if fields.get("base_url"):
        fields = {**fields, **await _discover(protocol, fields["base_url"], http)}
    host = fields.get(f"{protocol}_host")
    if not host:
        raise InvalidInput(f"email: the connection has no {protocol}_host")
    security = fields.get(f"{protocol}_security") or ("starttls" if protocol == "smtp" else "ssl")
    if security not in DEFAULT_PORTS[protocol]:
        raise InvalidInput(f"email: {protocol}_security must be starttls, ssl or none, not {security!r}")
    settings = ServerSettings(protocol, str(host), int(fields.get(f"{protocol}_port") or DEFAULT_PORTS[protocol][security]),
                              security, fields.get("username") or None, fields.get("password") or None,
                              bool(fields.get("verify_tls", True)), fields.get("ca_cert") or None,
                              float(fields.get("timeout") or 30))
    if settings.password and not settings.username:
        return replace(settings, username=fields.get("from_address"))
    return settings


async def _discover(protocol: str, base_url: str, http: httpx.AsyncClient) -> dict[str, Any]:
    try:
        answer = await http.get(f"{base_url.rstrip('/')}/endpoints", timeout=10)
    except httpx.TransportError as exc:
        raise Transient(f"email: the sandbox at {base_url} is unreachable ({type(exc).__name__})", connector="email") from None
    if answer.status_code != 200:
        raise ConnectorError(f"email: {base_url}/endpoints answered HTTP {answer.status_code}; is it an email sandbox?",
                             connector="email")
    server = answer.json()[protocol]
    return {f"{protocol}_host": server["host"], f"{protocol}_port": server["port"],
            f"{protocol}_security": server["security"], "ca_cert": answer.json().get("ca_cert")}
