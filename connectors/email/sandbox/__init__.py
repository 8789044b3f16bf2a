"""The `email` connector's sandbox: real local mail servers sharing one mail store.

- SMTP submission with STARTTLS (required) and SMTP over implicit TLS, both with AUTH
  (aiosmtpd; see :mod:`.smtp`);
- IMAP4rev1 over implicit TLS (:mod:`.imap`), whose INBOX receives what SMTP accepts;
- TLS from a CA made at start (:mod:`.tls`); clients trust it through the connection's ``ca_cert``;
- an HTTP app (the ``sandbox`` factory's ASGI app) with ``GET /endpoints`` (hosts, ports,
  security and the CA, which the connector reads when a connection has ``base_url``) and
  ``GET /messages`` (what SMTP accepted).

User :data:`USER` / :data:`PASSWORD` may send as :data:`USER` only. Test hooks on
:class:`FakeMailServer`: ``smtp_behaviour`` (unknown and full recipients, forced DATA replies),
``store.append(raw, internal_date)``, ``store.rebuild()`` (a new UIDVALIDITY), ``delivered``,
:meth:`FakeMailServer.close`.
"""
from __future__ import annotations

import base64
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.email.sandbox.imap import ImapServer
from connectors.email.sandbox.smtp import Delivered, Handler, SmtpBehaviour, start_smtp
from connectors.email.sandbox.store import MailStore
from connectors.email.sandbox.tls import make_certificates
from connectors.sdk.sandbox import HOST, free_port

USER = "robot@flowlink.test"
PASSWORD = "sandbox-password"


class FakeMailServer:
    """SMTP (STARTTLS and implicit TLS) and IMAP servers on 127.0.0.1 over one store; see the module docstring."""

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.certificates = make_certificates(HOST)
        self.store = MailStore(users or {USER: PASSWORD})
        self.smtp_behaviour = SmtpBehaviour()
        self.delivered: list[Delivered] = []
        handler = Handler(self.store, self.smtp_behaviour, self.delivered)
        self.smtp_port, self.smtps_port, self.imap_port = free_port(), free_port(), free_port()
        self._smtp = start_smtp(handler, self.smtp_port, self.certificates, implicit_tls=False)
        self._smtps = start_smtp(handler, self.smtps_port, self.certificates, implicit_tls=True)
        self._imap = ImapServer(self.store, self.imap_port, self.certificates.server_context()).start()

    def endpoints(self) -> dict[str, Any]:
        """Where the servers listen, how to secure the connection, and the CA to trust."""
        return {"smtp": {"host": HOST, "port": self.smtp_port, "security": "starttls"},
                "smtps": {"host": HOST, "port": self.smtps_port, "security": "ssl"},
                "imap": {"host": HOST, "port": self.imap_port, "security": "ssl"},
                "ca_cert": self.certificates.ca_pem, "user": USER}

    def connection(self, **overrides: Any) -> dict[str, Any]:
        """A complete `email` connection for these servers (no ``base_url`` needed)."""
        return {"username": USER, "password": PASSWORD, "smtp_host": HOST, "smtp_port": self.smtp_port,
                "smtp_security": "starttls", "imap_host": HOST, "imap_port": self.imap_port, "imap_security": "ssl",
                "ca_cert": self.certificates.ca_pem, "timeout": 10, **overrides}

    @property
    def app(self) -> Starlette:
        """The HTTP side: ``/endpoints`` and ``/messages``."""
        async def endpoints(request: Request) -> JSONResponse:
            return JSONResponse(self.endpoints())

        async def messages(request: Request) -> JSONResponse:
            return JSONResponse([{"mail_from": d.mail_from, "rcpt_tos": d.rcpt_tos,
                                  "raw_base64": base64.b64encode(d.raw).decode()} for d in self.delivered])

        app = Starlette(routes=[Route("/endpoints", endpoints), Route("/messages", messages)])
        app.state.mail_server = self
        return app

    def close(self) -> None:
        """Stop every server."""
        for controller in (self._smtp, self._smtps):
            controller.stop()
        self._imap.stop()


def app() -> Starlette:
    """A fresh sandbox (the connector's ``sandbox`` factory); its servers live as long as the process."""
    return FakeMailServer().app
