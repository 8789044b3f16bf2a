"""What the fake WeCom pushes: events that change its state, signed and encrypted deliveries
to a callback URL, and the URL check; a mixin of FakeWeCom."""
from __future__ import annotations

import secrets
from typing import Any, Callable

from connectors.sdk.callback_crypto import MsgCrypt
from connectors.wecom import fake_state as seed
from connectors.wecom.fake_state import Corp
from connectors.wecom.xmlcodec import build_xml

WELCOME_CODE_TTL = 20.0


class CallbackSender:
    """Builds WeCom's callback events and delivers them like WeCom (see FakeWeCom)."""

    corps: dict[str, Corp]
    _ids: Any
    now: Callable[[], float]

    def callback_crypto(self, corp_id: str = seed.SANDBOX_CORP, token: str = seed.CALLBACK_TOKEN,
                        aes_key: str = seed.CALLBACK_AES_KEY) -> MsgCrypt:
        """The MsgCrypt the corp's app signs and encrypts its callbacks with."""
        return MsgCrypt(token, aes_key, corp_id)

    def encrypt_callback(self, event: dict[str, Any], *, corp_id: str | None = None, token: str = seed.CALLBACK_TOKEN,
                         aes_key: str = seed.CALLBACK_AES_KEY, timestamp: int | None = None,
                         nonce: str | None = None, agent_id: int = seed.SANDBOX_AGENT) -> tuple[dict[str, str], bytes]:
        """The query string and XML body of one push of `event`, as WeCom builds them."""
        corp_id = corp_id or str(event.get("ToUserName") or seed.SANDBOX_CORP)
        sealed = self.callback_crypto(corp_id, token, aes_key).encrypt(
            build_xml(event), nonce=nonce, timestamp=int(self.now()) if timestamp is None else timestamp)
        body = build_xml({"ToUserName": corp_id, "AgentID": agent_id, "Encrypt": sealed.encrypted}).encode()
        return {"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce}, body

    def send_callback(self, client: Any, url: str, event: dict[str, Any], *, duplicates: int = 0,
                      **options: Any) -> list[Any]:
        """POST `event` to `url` with a sync client (httpx.Client, Starlette's TestClient).

        Like WeCom: a non-200 answer makes it re-send the same delivery, 3 retries at most;
        `duplicates` extra identical deliveries follow (the platform missed the ack in 5 s).
        Returns every response.
        """
        query, body = self.encrypt_callback(event, **options)
        responses = []
        for _ in range(4):
            responses.append(client.post(url, params=query, content=body, headers={"content-type": "text/xml"}))
            if responses[-1].status_code == 200:
                break
        for _ in range(duplicates):
            responses.append(client.post(url, params=query, content=body, headers={"content-type": "text/xml"}))
        return responses

    def verify_url(self, client: Any, url: str, *, corp_id: str = seed.SANDBOX_CORP, token: str = seed.CALLBACK_TOKEN,
                   aes_key: str = seed.CALLBACK_AES_KEY, timestamp: int | None = None) -> tuple[Any, str]:
        """The URL check WeCom makes when the callback URL is saved: GET with an encrypted echostr.

        Returns (response, the plaintext the URL must echo)."""
        plain = str(secrets.randbelow(10**19))
        sealed = self.callback_crypto(corp_id, token, aes_key).encrypt(
            plain, timestamp=int(self.now()) if timestamp is None else timestamp)
        query = {"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce,
                 "echostr": sealed.encrypted}
        return client.get(url, params=query), plain

    def _event(self, corp_id: str, event: str, **fields: Any) -> dict[str, Any]:
        return {"ToUserName": corp_id, "FromUserName": "sys", "CreateTime": int(self.now()), "MsgType": "event",
                "Event": event, **fields}

    def customer_added(self, userid: str, name: str, *, state: str = "", external_userid: str | None = None,
                       corp_id: str = seed.SANDBOX_CORP, half: bool = False) -> dict[str, Any]:
        """A WeChat user adds member `userid` (e.g. by scanning a contact way with `state`):
        the customer exists, a welcome code is issued (20 s, single use); returns the event."""
        corp = self.corps[corp_id]
        if userid not in corp.users:
            raise ValueError(f"no member {userid} in {corp_id}")
        ext = external_userid or f"wmFake{next(self._ids):06d}"
        seed.add_customer(corp, ext, name, userid, state, int(self.now()), add_way=1 if state else 0)
        code = f"welcome-{secrets.token_hex(8)}"
        corp.welcome_codes[code] = {"userid": userid, "external_userid": ext, "expires_at": self.now() + WELCOME_CODE_TTL,
                                    "used": False}
        fields = {"ChangeType": "add_half_external_contact" if half else "add_external_contact", "UserID": userid,
                  "ExternalUserID": ext}
        if state:
            fields["State"] = state
        fields["WelcomeCode"] = code
        return self._event(corp_id, "change_external_contact", **fields)

    def customer_changed(self, change_type: str, userid: str, external_userid: str, *,
                         corp_id: str = seed.SANDBOX_CORP) -> dict[str, Any]:
        """``edit_external_contact``, ``del_external_contact`` (the member removed the customer) or
        ``del_follow_user`` (the customer removed the member); deletions change the state."""
        corp = self.corps[corp_id]
        if (userid, external_userid) not in corp.follows:
            raise ValueError(f"{external_userid} is not a customer of {userid}")
        if change_type in ("del_external_contact", "del_follow_user"):
            del corp.follows[(userid, external_userid)]
        extra = {"Source": "DELETE_BY_TRANSFER"} if change_type == "del_external_contact" else {}
        return self._event(corp_id, "change_external_contact", ChangeType=change_type, UserID=userid,
                           ExternalUserID=external_userid, **extra)

    def tag_changed(self, change_type: str, tag_id: str, *, tag_type: str = "tag",
                    corp_id: str = seed.SANDBOX_CORP) -> dict[str, Any]:
        """``change_external_tag`` (create, update, delete, shuffle) of a corp tag or group."""
        return self._event(corp_id, "change_external_tag", Id=tag_id, TagType=tag_type, ChangeType=change_type)

    def member_changed(self, change_type: str, userid: str, *, corp_id: str = seed.SANDBOX_CORP,
                       **fields: Any) -> dict[str, Any]:
        """``change_contact`` for a member: create_user, update_user (with e.g. Name, Mobile) or delete_user."""
        corp = self.corps[corp_id]
        if change_type == "delete_user":
            corp.users.pop(userid, None)
        elif change_type == "create_user":
            corp.users[userid] = seed.member(userid, str(fields.get("Name", userid)), str(fields.get("Mobile", "")), [1])
        return self._event(corp_id, "change_contact", ChangeType=change_type, UserID=userid, **fields)

    def text_message(self, from_user: str, content: str, *, corp_id: str = seed.SANDBOX_CORP,
                     agent_id: int = seed.SANDBOX_AGENT) -> dict[str, Any]:
        """A member writes `content` to the app."""
        return {"ToUserName": corp_id, "FromUserName": from_user, "CreateTime": int(self.now()), "MsgType": "text",
                "Content": content, "MsgId": str(7_000_000_000_000_000_000 + next(self._ids)), "AgentID": agent_id}
