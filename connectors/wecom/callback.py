"""The WeCom callback trigger: ``/hooks/wecom/<path>`` set as the app's "Receive Messages" URL.

- GET (saving the URL in the admin console): verify ``msg_signature`` over the encrypted
  ``echostr``, decrypt it, answer the plaintext;
- POST (events and messages): ``ToUserName`` must be the connection's corp ID, the signature
  must cover ``Encrypt``, the timestamp must be within ``config.replay_window`` seconds
  (default 300) of now, and the decrypted message's receive id must be the corp ID; the XML
  becomes the run's trigger data with WeCom's field names (``trigger.ChangeType``,
  ``trigger.WelcomeCode``...);
- an empty 200 acknowledges the delivery at once (WeCom re-sends after 5 s); re-sends are
  dropped by the dedupe key (``MsgId``, else the event's identifying fields);
- a flow with ``"respond": "last"`` may answer a message with an encrypted passive reply:
  its output ``{"reply": "text"}`` or ``{"reply": {"msgtype": "news", "articles": [...]}}``.
"""
from __future__ import annotations

import time
from typing import Any

from connectors.sdk import RequestInfo, WebhookRejected, WebhookResponse, WebhookTrigger, add_trigger
from connectors.sdk.callback_crypto import InvalidAesKey, MsgCrypt
from connectors.wecom.base import connector
from connectors.wecom.xmlcodec import build_xml, parse_xml
from engine.errors import InvalidInput

DEFAULT_REPLAY_WINDOW = 300.0
#: fields that, with FromUserName and CreateTime, identify an event without a MsgId
EVENT_KEY_FIELDS = ("Event", "ChangeType", "UserID", "ExternalUserID", "Id", "TagType", "ChatId", "EventKey")


def crypto_for(request: RequestInfo) -> MsgCrypt:
    """The MsgCrypt of the trigger's connection (Token, EncodingAESKey, corp ID)."""
    fields = request.connection or {}
    missing = [name for name in ("token", "encoding_aes_key", "corp_id") if not fields.get(name)]
    if missing:
        raise WebhookRejected(f"the WeCom connection has no {', '.join(missing)}: set the callback Token and "
                              "EncodingAESKey from the app's Receive Messages page")
    try:
        return MsgCrypt(str(fields["token"]), str(fields["encoding_aes_key"]), str(fields["corp_id"]))
    except InvalidAesKey as exc:
        raise WebhookRejected(f"the connection's EncodingAESKey is unusable: {exc}") from None


def _check_fresh(request: RequestInfo) -> str:
    timestamp = request.query.get("timestamp") or ""
    if not timestamp.isdigit():
        raise WebhookRejected("missing or malformed timestamp")
    window = float(request.config.get("replay_window", DEFAULT_REPLAY_WINDOW))
    if abs(time.time() - int(timestamp)) > window:
        raise WebhookRejected(f"timestamp {timestamp} is more than {window:g} s from now (a replayed request?)")
    return timestamp


def open_request(request: RequestInfo) -> str:
    """Authenticate and decrypt a callback: the echostr plaintext (GET) or the message XML (POST).

    Raises WebhookRejected (the service answers 401 and audits it) for anything that does not
    prove it comes from WeCom for this corp.
    """
    crypto = crypto_for(request)
    timestamp = _check_fresh(request)
    signature, nonce = request.query.get("msg_signature") or "", request.query.get("nonce") or ""
    if not signature or not nonce:
        raise WebhookRejected("missing msg_signature or nonce")
    if request.method.upper() == "GET":
        echostr = request.query.get("echostr")
        if not echostr:
            raise WebhookRejected("a GET without echostr is not a URL verification")
        return crypto.decrypt_verified(signature, timestamp, nonce, echostr)
    try:
        envelope = parse_xml(request.body)
    except InvalidInput as exc:
        raise WebhookRejected(f"not a WeCom callback: {exc.message}") from None
    to_user = envelope.get("ToUserName")
    if to_user and to_user != crypto.receive_id:
        raise WebhookRejected(f"callback addressed to corp {to_user}, not this connection's corp")
    encrypted = envelope.get("Encrypt")
    if not isinstance(encrypted, str) or not encrypted:
        raise WebhookRejected("callback without Encrypt")
    return crypto.decrypt_verified(signature, timestamp, nonce, encrypted)


def verify(request: RequestInfo) -> None:
    """Reject a request that is not a valid, fresh callback for this corp."""
    open_request(request)


def handshake(request: RequestInfo) -> WebhookResponse | None:
    """Answer the URL verification (GET with echostr) with the decrypted plaintext."""
    if request.method.upper() != "GET":
        return None
    return WebhookResponse(200, open_request(request), {"content-type": "text/plain; charset=utf-8"})


def parse(request: RequestInfo) -> dict[str, Any]:
    """The decrypted event or message as a dict with WeCom's field names."""
    return parse_xml(open_request(request))


def event_key(event: dict[str, Any]) -> str:
    """``MsgId`` for messages; for events, the sender, time and identifying fields (WeCom's advice)."""
    if event.get("MsgId"):
        return f"msg:{event['MsgId']}"
    parts = [str(event.get("FromUserName", "")), str(event.get("CreateTime", ""))]
    parts += [f"{name}={event[name]}" for name in EVENT_KEY_FIELDS if event.get(name) not in (None, "")]
    return "evt:" + "|".join(parts)


def ack(request: RequestInfo, events: list[Any]) -> WebhookResponse:
    """WeCom takes an empty HTTP 200 as "received"."""
    return WebhookResponse(200, "", {"content-type": "text/plain"})


def _reply_fields(reply: Any) -> dict[str, Any]:
    if isinstance(reply, str):
        return {"MsgType": "text", "Content": reply}
    if not isinstance(reply, dict):
        raise InvalidInput("the flow's reply must be text or {msgtype, ...}")
    msgtype = reply.get("msgtype", "text")
    if msgtype == "text":
        return {"MsgType": "text", "Content": str(reply.get("content", ""))}
    if msgtype == "image":
        return {"MsgType": "image", "Image": {"MediaId": str(reply["media_id"])}}
    if msgtype == "news":
        items = [{"Title": a.get("title", ""), "Description": a.get("description", ""), "PicUrl": a.get("picurl", ""),
                  "Url": a.get("url", "")} for a in reply.get("articles", [])][:8]
        return {"MsgType": "news", "ArticleCount": len(items), "Articles": {"item": items}}
    raise InvalidInput(f"passive reply msgtype {msgtype!r} is not one of text, image, news")


def reply(request: RequestInfo, output: Any) -> WebhookResponse | None:
    """An encrypted passive reply from the run's ``output.reply`` (None: just acknowledge)."""
    answer = output.get("reply") if isinstance(output, dict) else None
    if not answer or request.method.upper() != "POST":
        return None
    message = parse_xml(open_request(request))
    crypto = crypto_for(request)
    plain = {"ToUserName": message.get("FromUserName", ""), "FromUserName": crypto.receive_id,
             "CreateTime": int(time.time()), **_reply_fields(answer)}
    sealed = crypto.encrypt(build_xml(plain))
    body = build_xml({"Encrypt": sealed.encrypted, "MsgSignature": sealed.signature, "TimeStamp": int(sealed.timestamp),
                      "Nonce": sealed.nonce})
    return WebhookResponse(200, body, {"content-type": "application/xml"})


SAMPLE = {"ToUserName": "ww-sandbox-corp", "FromUserName": "sys", "CreateTime": 1763900000, "MsgType": "event",
          "Event": "change_external_contact", "ChangeType": "add_external_contact", "UserID": "zhangsan",
          "ExternalUserID": "wmCustomer001", "State": "expo", "WelcomeCode": "WELCOMECODE"}

OUTPUT_SCHEMA = {
    "type": "object",
    "required": ["ToUserName", "CreateTime", "MsgType"],
    "properties": {
        "ToUserName": {"type": "string", "description": "The corp ID."},
        "FromUserName": {"type": "string", "description": "`sys` for events, the member's userid for messages."},
        "CreateTime": {"type": "integer"},
        "MsgType": {"type": "string", "description": "event, text, image, ..."},
        "Event": {"type": "string", "description": "change_external_contact, change_external_tag, change_contact ..."},
        "ChangeType": {"type": "string"},
        "UserID": {"type": "string"},
        "ExternalUserID": {"type": "string"},
        "State": {"type": "string", "description": "The contact way's state (source channel)."},
        "WelcomeCode": {"type": "string", "description": "For send_welcome_message, valid 20 s."},
        "Content": {"type": "string"},
        "MsgId": {"type": "string"},
        "AgentID": {"type": "integer"},
    },
    "additionalProperties": True,
}

callback = add_trigger(connector, WebhookTrigger(
    name="callback",
    title={"en": "Event or message from WeCom", "zh": "企业微信回调事件"},
    description="Customer added/edited/deleted, tag and member changes, messages to the app: verified, decrypted, "
                "acknowledged at once and deduplicated.",
    sample=SAMPLE,
    output_schema=OUTPUT_SCHEMA,
    verify=verify,
    handshake=handshake,
    parse=parse,
    dedupe_key=event_key,
    ack=ack,
    reply=reply,
))
