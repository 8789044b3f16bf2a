"""Douyin actions: small functions over ``ctx.client`` (auth, refresh, error codes from the SDK)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from connectors.sdk import ActionContext, Connector
from connectors.sdk.paging import CursorPaginator
from engine.errors import InvalidInput

#: Reads are safe to repeat: retry throttling and hiccups unless the step says otherwise.
READ_RETRY = ({"errors": ["RateLimited", "Transient"], "max_attempts": 3, "interval": 1, "backoff_rate": 2, "max_delay": 30},)

#: the examples run against the sandbox's seeded account (see connectors/douyin/sandbox.py)
SANDBOX_CONNECTION = {"client_key": "aw_sandbox_key", "client_secret": "sandbox-client-secret",
                      "refresh_token": "rft.sandbox-1", "open_id": "open-sandbox-1"}
#: ids of the sandbox's seed data: the first video, its first comment, the first private message
SANDBOX_ITEM, SANDBOX_COMMENT = "@9VwK000001", "cmt-6"


def open_id(ctx: ActionContext) -> str:
    """The authorized account's open_id from the step's connection."""
    value = (ctx.connection or {}).get("open_id")
    if not value:
        raise InvalidInput("this action needs a user-authorized Douyin connection (auth douyin_oauth) with an open_id")
    return str(value)


def data_of(body: Any) -> dict[str, Any]:
    """The ``data`` object of an answer without its error_code/description."""
    data = body.get("data") if isinstance(body, dict) else None
    return {k: v for k, v in (data or {}).items() if k not in ("error_code", "description")}


async def cursor_pages(ctx: ActionContext, path: str, params: dict[str, Any], *, cursor: int, count: int,
                       all_pages: bool, max_items: int) -> dict[str, Any]:
    """One page (``{list, cursor, has_more}``) or, with `all_pages`, every item from `cursor` on."""
    if not all_pages:
        return data_of(await ctx.client.get(path, params={**params, "cursor": cursor, "count": count}))
    pager = CursorPaginator(cursor_param="cursor", next_cursor="data.cursor", items="data.list", has_more="data.has_more",
                            page_size_param="count", page_size=count, first_cursor=cursor)
    items = await pager.collect(lambda req: ctx.client.get(path, params={**params, **req.params}), max_items=max_items)
    return {"list": items, "cursor": None, "has_more": False}


class Paging(BaseModel):
    cursor: int = Field(default=0, ge=0, description="Where to start: 0, or the `cursor` of the previous page.")
    all_pages: bool = Field(default=False, description="Follow `has_more` and return every item from `cursor` on.")
    max_items: int = Field(default=1000, ge=1, le=100_000, description="With all_pages: fail rather than return more than this.")


class NoInput(BaseModel):
    model_config = {"extra": "forbid"}


class ListVideosInput(Paging):
    model_config = {"extra": "forbid"}
    count: int = Field(default=10, ge=1, le=20, description="Videos per page (Douyin allows at most 20).")


class ListCommentsInput(Paging):
    model_config = {"extra": "forbid"}
    item_id: str = Field(min_length=1, description="The video's item_id (from list_videos).")
    comment_id: str | None = Field(default=None, description="List the replies to this comment instead of the comments.")
    count: int = Field(default=20, ge=1, le=50, description="Comments per page (at most 50).")
    sort_type: Literal["time", "time_asc"] = "time"


class ReplyCommentInput(BaseModel):
    model_config = {"extra": "forbid"}
    item_id: str = Field(min_length=1, description="The video's item_id.")
    comment_id: str | None = Field(default=None, description="The comment to reply to; without it a top-level comment.")
    content: str = Field(min_length=1, max_length=1000, description="The reply text.")


class SendImReplyInput(BaseModel):
    model_config = {"extra": "forbid"}
    msg_id: str = Field(min_length=1, description="server_message_id of the received message (trigger.message.server_message_id).")
    conversation_id: str = Field(min_length=1, description="trigger.message.conversation_id")
    to_user_id: str = Field(min_length=1, description="The sender's open_id (trigger.from_user_id).")
    text: str = Field(min_length=1, max_length=1000, description="The reply text.")


_PAGE_SCHEMA = {"type": "object", "required": ["list", "has_more"],
                "properties": {"list": {"type": "array", "items": {"type": "object"}}, "cursor": {"type": ["integer", "null"]},
                               "has_more": {"type": "boolean"}}}


def register(connector: Connector) -> None:
    """Declare the Douyin actions on `connector`."""

    @connector.action("get_user_info", input=NoInput, title={"en": "Get user info", "zh": "获取用户信息"},
                      default_retry=READ_RETRY,
                      output_schema={"type": "object", "required": ["open_id", "nickname"],
                                     "properties": {"open_id": {"type": "string"}, "union_id": {"type": "string"},
                                                    "nickname": {"type": "string"}, "avatar": {"type": "string"}}},
                      examples=[{"title": "The sandbox account", "input": {}, "connection": SANDBOX_CONNECTION,
                                 "expect": {"open_id": "open-sandbox-1", "nickname": "Flowlink Tea House"}}])
    async def get_user_info(ctx: ActionContext, inp: NoInput) -> dict[str, Any]:
        """The authorized account's public profile (open_id, union_id, nickname, avatar)."""
        return data_of(await ctx.client.get("/oauth/userinfo/", params={"open_id": open_id(ctx)}))

    @connector.action("list_videos", input=ListVideosInput, title={"en": "List videos", "zh": "查询视频列表"},
                      default_retry=READ_RETRY, output_schema=_PAGE_SCHEMA,
                      examples=[{"title": "First page of two", "input": {"count": 2}, "connection": SANDBOX_CONNECTION,
                                 "expect": {"has_more": True}},
                                {"title": "Every video", "input": {"count": 2, "all_pages": True},
                                 "connection": SANDBOX_CONNECTION, "expect": {"has_more": False}}])
    async def list_videos(ctx: ActionContext, inp: ListVideosInput) -> dict[str, Any]:
        """The account's videos, newest first: one page (`cursor`, `has_more`), or all of them."""
        return await cursor_pages(ctx, "/api/douyin/v1/video/video_list/", {"open_id": open_id(ctx)}, cursor=inp.cursor,
                                  count=inp.count, all_pages=inp.all_pages, max_items=inp.max_items)

    @connector.action("list_comments", input=ListCommentsInput, title={"en": "List comments of a video", "zh": "查询视频评论"},
                      default_retry=READ_RETRY, output_schema=_PAGE_SCHEMA,
                      examples=[{"title": "Comments of the newest video", "input": {"item_id": SANDBOX_ITEM},
                                 "connection": SANDBOX_CONNECTION, "expect": {"has_more": False}}])
    async def list_comments(ctx: ActionContext, inp: ListCommentsInput) -> dict[str, Any]:
        """Comments of a video (or, with `comment_id`, the replies to one comment)."""
        params: dict[str, Any] = {"open_id": open_id(ctx), "item_id": inp.item_id, "sort_type": inp.sort_type}
        path = "/item/comment/list/"
        if inp.comment_id:
            path, params = "/item/comment/reply/list/", {**params, "comment_id": inp.comment_id}
        return await cursor_pages(ctx, path, params, cursor=inp.cursor, count=inp.count, all_pages=inp.all_pages,
                                  max_items=inp.max_items)

    @connector.action("reply_comment", input=ReplyCommentInput, title={"en": "Reply to a comment", "zh": "回复评论"},
                      output_schema={"type": "object", "required": ["comment_id"], "properties": {"comment_id": {"type": "string"}}},
                      examples=[{"title": "Answer a viewer", "connection": SANDBOX_CONNECTION,
                                 "input": {"item_id": SANDBOX_ITEM, "comment_id": SANDBOX_COMMENT,
                                           "content": "38 yuan for 100 g, thank you!"}}])
    async def reply_comment(ctx: ActionContext, inp: ReplyCommentInput) -> dict[str, Any]:
        """Reply to a comment on one of the account's videos (not retried: a retry could post twice)."""
        body = {"item_id": inp.item_id, "content": inp.content, **({"comment_id": inp.comment_id} if inp.comment_id else {})}
        return data_of(await ctx.client.post("/item/comment/reply/", params={"open_id": open_id(ctx)}, json=body))

    @connector.action("send_im_reply", input=SendImReplyInput, title={"en": "Reply to a private message", "zh": "回复私信"},
                      output_schema={"type": "object", "required": ["msg_id"], "properties": {"msg_id": {"type": "string"}}},
                      examples=[{"title": "Answer the sandbox's private message", "connection": SANDBOX_CONNECTION,
                                 "input": {"msg_id": "smsg-8", "conversation_id": "conv-open-viewer-1",
                                           "to_user_id": "open-viewer-1", "text": "Yes, 2 days to Hangzhou."}}])
    async def send_im_reply(ctx: ActionContext, inp: SendImReplyInput) -> dict[str, Any]:
        """Reply to a received private message (within 24 h of it, a few replies per message)."""
        body = {"msg_id": inp.msg_id, "conversation_id": inp.conversation_id, "to_user_id": inp.to_user_id,
                "content": {"msg_type": "text", "text": inp.text}, "scene": "im_reply_msg"}
        return data_of(await ctx.client.post("/im/send/msg/", params={"open_id": open_id(ctx)}, json=body))

    custom = connector.actions["custom_api_call"]
    custom.examples.extend([
        {"title": "User API with the account's token", "connection": SANDBOX_CONNECTION,
         "input": {"path": "/oauth/userinfo/", "query": {"open_id": "open-sandbox-1"}},
         "expect": {"status": 200, "body": {"data": {"error_code": 0, "open_id": "open-sandbox-1"}}}},
        {"title": "App-level API with a client_token connection",
         "connection": {"auth": "douyin_client_token", "client_key": "aw_sandbox_key",
                        "client_secret": "sandbox-client-secret"},
         "input": {"path": "/data/extern/billboard/hot_video/"}, "expect": {"status": 200, "body": {"data": {"error_code": 0}}}},
    ])
