"""The `email` connector's manifest: SMTP to send, IMAP to watch a mailbox."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from connectors.sdk import Connector
from connectors.sdk.action import ui

Security = Literal["starttls", "ssl", "none"]


class EmailConnection(BaseModel):
    """What an `email` connection holds: one mailbox's SMTP and IMAP access."""

    username: str | None = Field(default=None, title="User name", description="Usually the full address.")
    password: str | None = Field(default=None, title="Password or app password",
                                 description="Many providers (QQ, 163, Aliyun, Exmail) want an authorisation code here.",
                                 json_schema_extra=ui(secret=True, title_zh="密码/授权码"))
    from_address: str | None = Field(default=None, title="From address", description="Default sender (else the user name).")
    from_name: str | None = Field(default=None, title="From name", description="Display name of the default sender.")
    smtp_host: str | None = Field(default=None, title="SMTP host", json_schema_extra=ui(placeholder="smtp.exmail.qq.com"))
    smtp_port: int | None = Field(default=None, ge=1, le=65535, description="Default 587 (starttls), 465 (ssl), 25 (none).")
    smtp_security: Security = Field(default="starttls", description="starttls (port 587), ssl (implicit TLS, 465) or none.")
    imap_host: str | None = Field(default=None, title="IMAP host", json_schema_extra=ui(placeholder="imap.exmail.qq.com"))
    imap_port: int | None = Field(default=None, ge=1, le=65535, description="Default 993 (ssl), 143 (starttls/none).")
    imap_security: Security = Field(default="ssl")
    verify_tls: bool = Field(default=True, description="Verify the server's certificate (turn off only for a trusted LAN).")
    ca_cert: str | None = Field(default=None, title="CA certificate (PEM)",
                                description="Trust this CA as well, for a server with a private certificate.",
                                json_schema_extra=ui(multiline=True))
    timeout: float = Field(default=30, gt=0, le=300, description="Seconds for connecting and each command.")
    base_url: str | None = Field(default=None, pattern=r"^https?://",
                                 description="Address of a Flowlink email sandbox (`flowlink sandbox email`): "
                                             "SMTP/IMAP hosts, ports and CA come from it.")


def _sandbox() -> Any:
    from connectors.email.sandbox import app

    return app()


connector = Connector(
    name="email",
    version="1.0.0",
    title={"en": "Email (SMTP/IMAP)", "zh": "电子邮件"},
    description="Send mail over SMTP (TLS, auth, HTML, attachments) and start flows on new mail over IMAP.",
    categories=("communication",),
    # SMTP/IMAP log in with a user name and password; there is no HTTP API, so no custom_api_call
    connection_kinds=("basic",),
    connection_schema=EmailConnection,
    sandbox=_sandbox,
)
