"""The fake's group robots (``webhook/send?key=``, ``webhook/upload_media``), a mixin of FakeWeCom."""
from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.wecom.fake_state import FakeError, multipart_file


class RobotApi:
    """Robots keyed by their webhook key: 93000 for an unknown key, 45009 after 20 a minute."""

    robots: dict[str, dict[str, Any]]
    calls: Any
    _ids: Any
    now: Callable[[], float]
    answer: Callable[..., Response]
    _over_limit: Callable[[str, str], bool]

    def _robot(self, request: Request) -> tuple[str, dict[str, Any]]:
        key = request.query_params.get("key") or ""
        robot = self.robots.get(key)
        if robot is None:
            raise FakeError(93000, "invalid webhook url")
        return key, robot

    async def robot_send(self, request: Request) -> Response:
        """``POST webhook/send?key=`` (no access token: the key is the credential)."""
        self.calls["webhook/send"] += 1
        try:
            key, robot = self._robot(request)
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                raise FakeError(47001, "data format error") from None
            if not isinstance(body, dict):
                raise FakeError(47001, "data format error")
            if self._over_limit("webhook/send", key):
                raise FakeError(45009, "api freq out of limit")
            check_robot_message(body, robot["media"])
            robot["messages"].append(body)
        except FakeError as exc:
            return self.answer(errcode=exc.errcode, errmsg=exc.errmsg)
        return self.answer()

    async def robot_upload(self, request: Request) -> Response:
        """``POST webhook/upload_media?key=&type=file`` (multipart field ``media``)."""
        try:
            _, robot = self._robot(request)
            kind = request.query_params.get("type")
            if kind not in ("file", "voice"):
                raise FakeError(40004, "invalid media type")
            data, filename = multipart_file(request.headers.get("content-type", ""), await request.body())
            if data is None or not filename:
                raise FakeError(41005, "media data missing")
            if len(data) < 5 or len(data) > 20 << 20:
                raise FakeError(40006, "invalid file size")
            media_id = f"robot-media-{next(self._ids)}"
            robot["media"][media_id] = {"filename": filename, "data": data}
        except FakeError as exc:
            return self.answer(errcode=exc.errcode, errmsg=exc.errmsg)
        return self.answer({"type": kind, "media_id": media_id, "created_at": str(int(self.now()))})


def check_robot_message(body: dict[str, Any], media: dict[str, Any]) -> None:
    msgtype = body.get("msgtype")
    content = body.get(msgtype) if isinstance(msgtype, str) else None
    if msgtype not in ("text", "markdown", "image", "news", "file", "template_card"):
        raise FakeError(40008, f"invalid message type: {msgtype}")
    if not isinstance(content, dict):
        raise FakeError(40058, f"missing required parameter: {msgtype}")
    if msgtype in ("text", "markdown"):
        text = content.get("content")
        if not isinstance(text, str) or not text:
            raise FakeError(44004, "empty content")
        if len(text.encode()) > (2048 if msgtype == "text" else 4096):
            raise FakeError(45002, "content size out of limit")
    elif msgtype == "image":
        try:
            raw = base64.b64decode(str(content.get("base64") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise FakeError(40058, "image.base64 is not base64") from None
        if not raw or len(raw) > 2 << 20:
            raise FakeError(40009, "invalid image size")
        if hashlib.md5(raw).hexdigest() != str(content.get("md5") or "").lower():
            raise FakeError(40058, "image.md5 does not match the image")
    elif msgtype == "news":
        articles = content.get("articles")
        if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
            raise FakeError(40058, "news.articles must hold 1 to 8 articles")
        if any(not isinstance(a, dict) or not a.get("title") or not a.get("url") for a in articles):
            raise FakeError(40058, "missing required parameter: news.articles[].title/url")
    elif msgtype == "file":
        if str(content.get("media_id")) not in media:
            raise FakeError(40007, "invalid media_id")
