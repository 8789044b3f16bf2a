"""Uploading files to WeCom (``media/upload``, and the robots' ``webhook/upload_media``)."""
from __future__ import annotations

import base64
import binascii
import mimetypes
import secrets
from typing import Any

from pydantic import BaseModel, Field

from engine.errors import InvalidInput


class FileInput(BaseModel):
    """A file given inline, uploaded before it is sent."""

    model_config = {"extra": "forbid"}
    filename: str = Field(min_length=1, max_length=200, title="File name", description="With its extension, e.g. report.pdf.")
    content_base64: str = Field(min_length=1, title="Content (base64)")

    def data(self) -> bytes:
        """The decoded bytes; InvalidInput when it is not base64."""
        try:
            return base64.b64decode(self.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("content_base64 is not valid base64") from None


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data upload of one file, as WeCom wants it
    (``filename`` and ``filelength`` in the part's disposition)."""
    boundary = "----flowlink" + secrets.token_hex(12)
    ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    quoted = filename.replace('"', "%22")
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{quoted}\"; "
            f"filelength={len(data)}\r\nContent-Type: {ctype}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def upload(client: Any, path: str, kind: str, file: FileInput, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST the file to `path` (``?type=<kind>``) with the connector's client; the platform's answer."""
    body, ctype = multipart("media", file.filename, file.data())
    return await client.post(path, params={**(params or {}), "type": kind}, content=body, headers={"Content-Type": ctype})
