"""``POST /api/connections/<name>/test`` for a `dingtalk` connection: check what it holds.

App credentials are checked against both token endpoints; the callback aes_key is checked
for shape. A robot's token and secret cannot be checked without posting to the group, so
they are only reported.
"""
from __future__ import annotations

from typing import Any, Mapping

from connectors.dingtalk import client
from connectors.sdk.auth import AppTokenAuth, ConnectionTest
from connectors.sdk.callback_crypto import InvalidAesKey, MsgCrypt


async def test_connection(fields: Mapping[str, Any]) -> ConnectionTest:
    """Fetch an oapi and a new-API token with the app key/secret; validate the callback settings."""
    notes: list[str] = []
    if fields.get("app_key") or fields.get("app_secret"):
        oapi = AppTokenAuth.from_connection(fields, **client.oapi_auth_options(fields.get("base_url")))
        for label, auth in (("oapi", oapi), ("new API", client.new_api_auth(fields))):
            result = await auth.bind(client.NAME).test()
            if not result.ok:
                return ConnectionTest(False, f"{label}: {result.message}", kind=result.kind, code=result.code)
        notes.append("app key and secret accepted by both token endpoints")
    if fields.get("callback_token") or fields.get("callback_aes_key"):
        owner = fields.get("callback_owner_key") or fields.get("app_key")
        if not (fields.get("callback_token") and fields.get("callback_aes_key") and owner):
            return ConnectionTest(False, "callbacks need callback_token, callback_aes_key and app_key (or callback_owner_key)",
                                  kind="InvalidInput")
        try:
            MsgCrypt(str(fields["callback_token"]), str(fields["callback_aes_key"]), str(owner))
        except InvalidAesKey as exc:
            return ConnectionTest(False, f"callback_aes_key: {exc}", kind="InvalidInput")
        notes.append("callback token and aes_key are well formed")
    if fields.get("robot_access_token"):
        notes.append("robot token present (it is only checked when a message is sent)")
    if not notes:
        return ConnectionTest(False, "the connection has no app key, callback settings or robot token", kind="InvalidInput")
    return ConnectionTest(True, "; ".join(notes))
