"""Corp customer tags (企业客户标签): list, add, edit, delete, and mark them on customers."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from connectors.sdk import ActionContext
from connectors.sdk.action import ui
from connectors.wecom.base import MEMBER_OPTIONS, connector
from connectors.wecom.fake_state import SANDBOX_CONNECTION

TAG_OPTIONS = ui(options={"action": "list_corp_tags", "items": "tags", "value": "id", "label": "label"})
DONE = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


class ListTagsInput(BaseModel):
    model_config = {"extra": "forbid"}
    tag_ids: list[str] = Field(default_factory=list)
    group_ids: list[str] = Field(default_factory=list)


@connector.action(
    "list_corp_tags", input=ListTagsInput, title={"en": "List corp tags", "zh": "获取企业标签库"},
    output_schema={"type": "object", "properties": {"tag_groups": {"type": "array"}, "tags": {"type": "array"}},
                   "required": ["tag_groups", "tags"]},
    examples=[{"title": "Every tag", "connection": SANDBOX_CONNECTION, "input": {},
               "expect": {"tags": [{"id": "etTagAd", "label": "来源 / 广告"}, {"id": "etTagExpo"}, {"id": "etTagVip"}]}}],
)
async def list_corp_tags(ctx: ActionContext, inp: ListTagsInput) -> dict[str, Any]:
    """Tag groups as WeCom returns them, plus a flat `tags` list (``group / tag`` labels) for dropdowns."""
    body = {k: v for k, v in (("tag_id", inp.tag_ids), ("group_id", inp.group_ids)) if v}
    groups = (await ctx.client.post("/cgi-bin/externalcontact/get_corp_tag_list", json=body)).get("tag_group") or []
    tags = [{"id": t["id"], "name": t["name"], "group_id": g["group_id"], "group_name": g["group_name"],
             "label": f"{g['group_name']} / {t['name']}"} for g in groups for t in g.get("tag") or []]
    return {"tag_groups": groups, "tags": tags}


class NewTag(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1, max_length=30)
    order: int | None = None


class AddTagsInput(BaseModel):
    model_config = {"extra": "forbid"}
    group_id: str | None = Field(default=None, description="An existing group ...")
    group_name: str | None = Field(default=None, max_length=30, description="... or a group name (created when new).")
    tags: list[NewTag] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _group(self) -> "AddTagsInput":
        if (self.group_id is None) == (self.group_name is None):
            raise ValueError("give exactly one of group_id and group_name")
        return self


@connector.action(
    "add_corp_tags", input=AddTagsInput, title={"en": "Add corp tags", "zh": "添加企业客户标签"},
    output_schema={"type": "object", "properties": {"group_id": {"type": "string"}, "tag": {"type": "array"}},
                   "required": ["group_id", "tag"]},
    examples=[{"title": "A new group with two tags", "connection": SANDBOX_CONNECTION,
               "input": {"group_name": "意向", "tags": [{"name": "高"}, {"name": "低"}]},
               "expect": {"group_name": "意向", "tag": [{"name": "高"}, {"name": "低"}]}}],
)
async def add_corp_tags(ctx: ActionContext, inp: AddTagsInput) -> dict[str, Any]:
    """Add tags to a group; returns the group with the new tags and their ids."""
    body: dict[str, Any] = {"tag": [t.model_dump(exclude_none=True) for t in inp.tags]}
    body.update({"group_id": inp.group_id} if inp.group_id else {"group_name": inp.group_name})
    return (await ctx.client.post("/cgi-bin/externalcontact/add_corp_tag", json=body))["tag_group"]


class EditTagInput(BaseModel):
    model_config = {"extra": "forbid"}
    id: str = Field(min_length=1, description="A tag id or a group id.", json_schema_extra=TAG_OPTIONS)
    name: str | None = Field(default=None, min_length=1, max_length=30)
    order: int | None = None

    @model_validator(mode="after")
    def _change(self) -> "EditTagInput":
        if self.name is None and self.order is None:
            raise ValueError("give name or order")
        return self


@connector.action("edit_corp_tag", input=EditTagInput, output_schema=DONE, title={"en": "Edit corp tag", "zh": "编辑企业客户标签"},
                  examples=[{"title": "Rename a tag", "connection": SANDBOX_CONNECTION,
                             "input": {"id": "etTagVip", "name": "VIP 客户"}, "expect": {"ok": True}}])
async def edit_corp_tag(ctx: ActionContext, inp: EditTagInput) -> dict[str, Any]:
    """Rename or reorder a tag or a tag group."""
    await ctx.client.post("/cgi-bin/externalcontact/edit_corp_tag", json=inp.model_dump(exclude_none=True))
    return {"ok": True}


class DeleteTagsInput(BaseModel):
    model_config = {"extra": "forbid"}
    tag_ids: list[str] = Field(default_factory=list)
    group_ids: list[str] = Field(default_factory=list, description="A group is deleted with its tags.")

    @model_validator(mode="after")
    def _something(self) -> "DeleteTagsInput":
        if not self.tag_ids and not self.group_ids:
            raise ValueError("give tag_ids or group_ids")
        return self


@connector.action("delete_corp_tags", input=DeleteTagsInput, output_schema=DONE,
                  title={"en": "Delete corp tags", "zh": "删除企业客户标签"},
                  examples=[{"title": "Delete a tag", "connection": SANDBOX_CONNECTION, "input": {"tag_ids": ["etTagAd"]},
                             "expect": {"ok": True}}])
async def delete_corp_tags(ctx: ActionContext, inp: DeleteTagsInput) -> dict[str, Any]:
    """Delete tags and/or whole groups (customers lose them too)."""
    body = {k: v for k, v in (("tag_id", inp.tag_ids), ("group_id", inp.group_ids)) if v}
    await ctx.client.post("/cgi-bin/externalcontact/del_corp_tag", json=body)
    return {"ok": True}


class MarkTagsInput(BaseModel):
    model_config = {"extra": "forbid"}
    userid: str = Field(min_length=1, title="Member userid", json_schema_extra=MEMBER_OPTIONS)
    external_userid: str = Field(min_length=1, title="Customer external_userid")
    add_tags: list[str] = Field(default_factory=list, json_schema_extra=TAG_OPTIONS)
    remove_tags: list[str] = Field(default_factory=list, json_schema_extra=TAG_OPTIONS)

    @model_validator(mode="after")
    def _something(self) -> "MarkTagsInput":
        if not self.add_tags and not self.remove_tags:
            raise ValueError("give add_tags or remove_tags")
        return self


@connector.action("mark_customer_tags", input=MarkTagsInput, output_schema=DONE,
                  title={"en": "Tag / untag a customer", "zh": "编辑客户企业标签"},
                  examples=[{"title": "Tag Li Lei as VIP", "connection": SANDBOX_CONNECTION,
                             "input": {"userid": "zhangsan", "external_userid": "wmCustomer001", "add_tags": ["etTagVip"]},
                             "expect": {"ok": True}}])
async def mark_customer_tags(ctx: ActionContext, inp: MarkTagsInput) -> dict[str, Any]:
    """Add and remove corp tags on a customer (as seen by one member)."""
    await ctx.client.post("/cgi-bin/externalcontact/mark_tag",
                          json={"userid": inp.userid, "external_userid": inp.external_userid,
                                "add_tag": inp.add_tags, "remove_tag": inp.remove_tags})
    return {"ok": True}
