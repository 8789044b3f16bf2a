"""The `fxiaoke` actions: small typed functions over :mod:`connectors.fxiaoke.api`."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from connectors.fxiaoke import api
from connectors.fxiaoke.api import ObjectName
from connectors.fxiaoke.connector import connector
from connectors.fxiaoke.sandbox import (
    SANDBOX_APP_ID,
    SANDBOX_APP_SECRET,
    SANDBOX_PERMANENT_CODE,
    SANDBOX_USER,
)
from connectors.sdk import ActionContext
from connectors.sdk.action import ui
from engine.errors import InvalidInput

#: The examples' connection: `flowlink connector test fxiaoke` runs them against the sandbox.
SANDBOX = {"app_id": SANDBOX_APP_ID, "app_secret": SANDBOX_APP_SECRET, "permanent_code": SANDBOX_PERMANENT_CODE,
           "open_user_id": SANDBOX_USER}
#: Seeded in the sandbox: a customer and a lead.
SEED_ACCOUNT, SEED_LEAD = "5f0000000000000000000001", "5f0000000000000000000002"

#: Reads are safe to repeat.
READ_RETRY = ({"errors": ["RateLimited", "Transient"], "max_attempts": 3, "interval": 1, "backoff_rate": 2, "max_delay": 30},)

OWNER_OPTIONS = {"action": "list_owners", "items": "owners", "value": "id", "label": "name"}
WHOLE_COMPANY = 999999  # the root department (全公司): with fetchChild, every employee


def owner_field(required: bool = True) -> Any:
    """An owner input: an employee's open user id, chosen from `list_owners`."""
    return Field(... if required else None, title="Owner", pattern=r"^FSUID_\w+$",
                 description="The employee (openUserId FSUID_…) who owns the record (负责人).",
                 json_schema_extra=ui(options=OWNER_OPTIONS, title_zh="负责人"))


Fields = Field(default_factory=dict, title="Other fields",
               description="More fields by API name (custom ones end in __c): numbers as strings, dates as epoch "
                           "milliseconds, employee fields as lists of openUserIds.")


class Filter(BaseModel):
    model_config = {"extra": "forbid"}

    field: str = Field(title="Field API name")
    operator: Literal["EQ", "N", "GT", "GTE", "LT", "LTE", "LIKE", "NLIKE", "IN", "NIN", "IS", "ISN", "BETWEEN"] = "EQ"
    values: list[Any] = Field(default_factory=list, title="Values")


class Order(BaseModel):
    model_config = {"extra": "forbid"}

    field: str = Field(title="Field API name")
    ascending: bool = True


def _filters(filters: list[Filter]) -> list[dict[str, Any]]:
    return [{"field_name": f.field, "operator": f.operator, "field_values": f.values} for f in filters]


def _orders(orders: list[Order]) -> list[dict[str, Any]]:
    return [{"fieldName": o.field, "isAsc": o.ascending} for o in orders] or [{"fieldName": "create_time", "isAsc": True}]


class RecordId(BaseModel):
    id: str


class Upserted(BaseModel):
    id: str
    created: bool


class QueryOutput(BaseModel):
    records: list[dict[str, Any]]
    total: int


# ---------------------------------------------------------------------------- owners


class ListOwnersInput(BaseModel):
    model_config = {"extra": "forbid"}

    include_stopped: bool = Field(default=False, title="Include stopped employees")


class Owner(BaseModel):
    id: str
    name: str
    mobile: str | None = None


class OwnersOutput(BaseModel):
    owners: list[Owner]


@connector.action("list_owners", input=ListOwnersInput, output_schema=OwnersOutput, default_retry=READ_RETRY,
                  title={"en": "List owners", "zh": "列出员工（负责人）"},
                  examples=[{"title": "Active employees", "input": {}, "connection": SANDBOX,
                             "expect": {"owners": [{"id": "FSUID_LILEI", "name": "李雷"}, {"id": "FSUID_HANMEIMEI"},
                                                   {"id": "FSUID_WANGWU"}]}}])
async def list_owners(ctx: ActionContext, inp: ListOwnersInput) -> dict[str, Any]:
    """The company's employees (the choices of every owner field), active ones unless asked."""
    answer = await ctx.client.post("/cgi/user/list", json={"departmentId": WHOLE_COMPANY, "fetchChild": True})
    return {"owners": [{"id": u["openUserId"], "name": u["name"], "mobile": u.get("mobile")}
                       for u in answer["userList"] if inp.include_stopped or not u.get("isStop")]}


# ---------------------------------------------------------------------------- leads


class CreateLeadInput(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=100, title="Name", json_schema_extra=ui(title_zh="姓名"))
    owner_id: str = owner_field()
    company: str | None = Field(default=None, title="Company", json_schema_extra=ui(title_zh="公司"))
    mobile: str | None = Field(default=None, title="Mobile", json_schema_extra=ui(title_zh="手机"))
    email: str | None = Field(default=None, title="Email")
    source: str | None = Field(default=None, title="Source (option value)", json_schema_extra=ui(title_zh="线索来源"))
    remark: str | None = Field(default=None, title="Remark", json_schema_extra=ui(multiline=True, title_zh="备注"))
    fields: dict[str, Any] = Fields
    trigger_workflow: bool = Field(default=True, title="Trigger workflows")


def _named_fields(inp: BaseModel) -> dict[str, Any]:
    named = inp.model_dump(exclude={"fields", "owner_id", "trigger_workflow", "id"}, exclude_none=True)
    return {**named, **getattr(inp, "fields", {})}


@connector.action("create_lead", input=CreateLeadInput, output_schema=RecordId, title={"en": "Create lead", "zh": "新建线索"},
                  examples=[{"title": "A web-form lead for Li Lei", "connection": SANDBOX,
                             "input": {"name": "王小明", "owner_id": "FSUID_LILEI", "company": "北京示例", "mobile": "13700000000"},
                             "expect": {"id": "5f0000000000000000000003"}}])
async def create_lead(ctx: ActionContext, inp: CreateLeadInput) -> dict[str, Any]:
    """Create a lead (LeadsObj) owned by `owner_id`."""
    fields = {**_named_fields(inp), "owner": [inp.owner_id]}
    return {"id": await api.create(ctx, "LeadsObj", fields, workflow=inp.trigger_workflow)}


class UpdateLeadInput(BaseModel):
    model_config = {"extra": "forbid"}

    id: str = Field(title="Lead ID")
    name: str | None = Field(default=None, min_length=1, max_length=100, title="Name")
    company: str | None = Field(default=None, title="Company")
    mobile: str | None = Field(default=None, title="Mobile")
    email: str | None = Field(default=None, title="Email")
    remark: str | None = Field(default=None, title="Remark", json_schema_extra=ui(multiline=True))
    fields: dict[str, Any] = Fields


@connector.action("update_lead", input=UpdateLeadInput, output_schema=RecordId, title={"en": "Update lead", "zh": "更新线索"},
                  examples=[{"title": "Add a company", "connection": SANDBOX,
                             "input": {"id": SEED_LEAD, "company": "上海样例贸易有限公司"}, "expect": {"id": SEED_LEAD}}])
async def update_lead(ctx: ActionContext, inp: UpdateLeadInput) -> dict[str, Any]:
    """Update a lead's fields (change its owner with change_owner)."""
    return {"id": await api.update(ctx, "LeadsObj", inp.id, _named_fields(inp))}


class QueryInput(BaseModel):
    model_config = {"extra": "forbid"}

    filters: list[Filter] = Field(default_factory=list, title="Filters (all must hold)")
    orders: list[Order] = Field(default_factory=list, title="Sort by", description="Default: oldest first.")
    fields: list[str] = Field(default_factory=list, title="Fields to return", description="Default: all.")
    max_records: int = Field(default=1000, ge=1, le=10_000, title="Max records",
                             description="Fail rather than return a partial list when more match.")


async def _query(ctx: ActionContext, api_name: str, inp: QueryInput) -> dict[str, Any]:
    records, total = await api.query(ctx, api_name, _filters(inp.filters), _orders(inp.orders), inp.max_records,
                                     inp.fields or None)
    return {"records": records, "total": total}


@connector.action("query_leads", input=QueryInput, output_schema=QueryOutput, default_retry=READ_RETRY,
                  title={"en": "Query leads", "zh": "查询线索"},
                  examples=[{"title": "Leads by mobile", "connection": SANDBOX,
                             "input": {"filters": [{"field": "mobile", "operator": "EQ", "values": ["13900000000"]}]},
                             "expect": {"total": 1, "records": [{"_id": SEED_LEAD, "name": "张三"}]}}])
async def query_leads(ctx: ActionContext, inp: QueryInput) -> dict[str, Any]:
    """Every lead matching the filters, read page by page to the end."""
    return await _query(ctx, "LeadsObj", inp)


# ---------------------------------------------------------------------------- accounts


class CreateAccountInput(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=200, title="Customer name", json_schema_extra=ui(title_zh="客户名称"))
    owner_id: str = owner_field()
    tel: str | None = Field(default=None, title="Phone")
    email: str | None = Field(default=None, title="Email")
    address: str | None = Field(default=None, title="Address")
    account_level: str | None = Field(default=None, title="Level (option value)", json_schema_extra=ui(title_zh="客户级别"))
    remark: str | None = Field(default=None, title="Remark", json_schema_extra=ui(multiline=True))
    fields: dict[str, Any] = Fields


@connector.action("create_account", input=CreateAccountInput, output_schema=RecordId,
                  title={"en": "Create customer", "zh": "新建客户"},
                  examples=[{"title": "A customer for Han Meimei", "connection": SANDBOX,
                             "input": {"name": "深圳样例电子", "owner_id": "FSUID_HANMEIMEI", "account_level": "2"},
                             "expect": {"id": "5f0000000000000000000003"}}])
async def create_account(ctx: ActionContext, inp: CreateAccountInput) -> dict[str, Any]:
    """Create a customer (AccountObj) owned by `owner_id`."""
    return {"id": await api.create(ctx, "AccountObj", {**_named_fields(inp), "owner": [inp.owner_id]})}


class UpdateAccountInput(BaseModel):
    model_config = {"extra": "forbid"}

    id: str = Field(title="Customer ID")
    name: str | None = Field(default=None, min_length=1, max_length=200, title="Customer name")
    tel: str | None = Field(default=None, title="Phone")
    email: str | None = Field(default=None, title="Email")
    address: str | None = Field(default=None, title="Address")
    account_level: str | None = Field(default=None, title="Level (option value)")
    remark: str | None = Field(default=None, title="Remark", json_schema_extra=ui(multiline=True))
    fields: dict[str, Any] = Fields


@connector.action("update_account", input=UpdateAccountInput, output_schema=RecordId,
                  title={"en": "Update customer", "zh": "更新客户"},
                  examples=[{"title": "Tag a customer's level", "connection": SANDBOX,
                             "input": {"id": SEED_ACCOUNT, "account_level": "3"}, "expect": {"id": SEED_ACCOUNT}}])
async def update_account(ctx: ActionContext, inp: UpdateAccountInput) -> dict[str, Any]:
    """Update a customer's fields, e.g. its level by spend tier (change its owner with change_owner)."""
    return {"id": await api.update(ctx, "AccountObj", inp.id, _named_fields(inp))}


@connector.action("query_accounts", input=QueryInput, output_schema=QueryOutput, default_retry=READ_RETRY,
                  title={"en": "Query customers", "zh": "查询客户"},
                  examples=[{"title": "Customers of Li Lei", "connection": SANDBOX,
                             "input": {"filters": [{"field": "owner", "operator": "EQ", "values": ["FSUID_LILEI"]}]},
                             "expect": {"total": 1, "records": [{"_id": SEED_ACCOUNT}]}}])
async def query_accounts(ctx: ActionContext, inp: QueryInput) -> dict[str, Any]:
    """Every customer matching the filters, read page by page to the end."""
    return await _query(ctx, "AccountObj", inp)


# ---------------------------------------------------------------------------- any preset object


class GetRecordInput(BaseModel):
    model_config = {"extra": "forbid"}

    object: ObjectName = Field(title="Object")
    id: str = Field(title="Record ID")


@connector.action("get_record", input=GetRecordInput, output_schema={"type": "object", "required": ["_id"]},
                  default_retry=READ_RETRY, title={"en": "Get record", "zh": "获取数据详情"},
                  examples=[{"title": "The seeded customer", "connection": SANDBOX,
                             "input": {"object": "AccountObj", "id": SEED_ACCOUNT},
                             "expect": {"_id": SEED_ACCOUNT, "owner": ["FSUID_LILEI"]}}])
async def get_record(ctx: ActionContext, inp: GetRecordInput) -> dict[str, Any]:
    """One lead, customer or opportunity by id (fails with NotFound when there is none)."""
    return await api.get(ctx, inp.object, inp.id)


class UpsertInput(BaseModel):
    model_config = {"extra": "forbid"}

    object: ObjectName = Field(title="Object")
    match_field: str = Field(title="Match on field", description="A field whose value identifies the record, e.g. "
                             "name or a custom external-id field (erp_order_no__c).")
    fields: dict[str, Any] = Field(title="Fields", description="Fields by API name; must include `match_field`.")
    owner_id: str | None = owner_field(required=False)


@connector.action("upsert_record", input=UpsertInput, output_schema=Upserted, title={"en": "Create or update record",
                                                                                     "zh": "新建或更新数据"},
                  examples=[{"title": "An ERP order as an opportunity", "connection": SANDBOX,
                             "input": {"object": "NewOpportunityObj", "match_field": "name", "owner_id": "FSUID_LILEI",
                                       "fields": {"name": "SO-2024-001", "account_id": SEED_ACCOUNT, "amount": "12800.00",
                                                  "close_date": 1735660800000}},
                             "expect": {"created": True}}])
async def upsert_record(ctx: ActionContext, inp: UpsertInput) -> dict[str, Any]:
    """Update the record whose `match_field` equals the given value, else create it (owned by
    `owner_id`); an existing record's owner is changed when `owner_id` differs."""
    if inp.match_field not in inp.fields:
        raise InvalidInput(f"args.fields: must include the match field '{inp.match_field}'")
    match = [{"field_name": inp.match_field, "operator": "EQ", "field_values": [inp.fields[inp.match_field]]}]
    found, total = await api.query(ctx, inp.object, match, [{"fieldName": "create_time", "isAsc": True}], 10_000,
                                   ["_id", "owner"])
    if total > 1:
        raise InvalidInput(f"{total} {inp.object} records have {inp.match_field} = {inp.fields[inp.match_field]!r}: "
                           "match on a unique field")
    if not found:
        if inp.owner_id is None:
                raise InvalidInput("args.owner_id: required to create a record")
        return {"id": await api.create(ctx, inp.object, {**inp.fields, "owner": [inp.owner_id]}), "created": True}
    record = found[0]
    await api.update(ctx, inp.object, record["_id"], {k: v for k, v in inp.fields.items() if k != "owner"})
    if inp.owner_id is not None and record.get("owner") != [inp.owner_id]:
        await api.change_owner(ctx, inp.object, [record["_id"]], inp.owner_id)
    return {"id": record["_id"], "created": False}


class ChangeOwnerInput(BaseModel):
    model_config = {"extra": "forbid"}

    object: ObjectName = Field(title="Object")
    ids: list[str] = Field(min_length=1, max_length=100, title="Record IDs")
    owner_id: str = owner_field()


class ChangeOwnerOutput(BaseModel):
    ids: list[str]
    owner_id: str


@connector.action("change_owner", input=ChangeOwnerInput, output_schema=ChangeOwnerOutput,
                  title={"en": "Assign owner", "zh": "更换负责人"},
                  examples=[{"title": "Give the seeded lead to Wang Wu", "connection": SANDBOX,
                             "input": {"object": "LeadsObj", "ids": [SEED_LEAD], "owner_id": "FSUID_WANGWU"},
                             "expect": {"ids": [SEED_LEAD], "owner_id": "FSUID_WANGWU"}}])
async def change_owner(ctx: ActionContext, inp: ChangeOwnerInput) -> dict[str, Any]:
    """Assign records to a new owner (round-robin assignment in a flow picks `owner_id`)."""
    await api.change_owner(ctx, inp.object, inp.ids, inp.owner_id)
    return {"ids": inp.ids, "owner_id": inp.owner_id}


class FollowUpInput(BaseModel):
    model_config = {"extra": "forbid"}

    object: Literal["LeadsObj", "AccountObj", "NewOpportunityObj"] = Field(title="Related object")
    id: str = Field(title="Related record ID")
    content: str = Field(min_length=1, max_length=4000, title="Content", json_schema_extra=ui(multiline=True, title_zh="内容"))
    record_type: str | None = Field(default=None, title="Type (option value)", json_schema_extra=ui(title_zh="跟进类型"))
    owner_id: str | None = owner_field(required=False)


@connector.action("add_follow_up", input=FollowUpInput, output_schema=RecordId,
                  title={"en": "Add follow-up record", "zh": "新建跟进记录"},
                  examples=[{"title": "A call note on the seeded customer", "connection": SANDBOX,
                             "input": {"object": "AccountObj", "id": SEED_ACCOUNT, "content": "电话沟通, 客户有采购意向"},
                             "expect": {"id": "5f0000000000000000000003"}}])
async def add_follow_up(ctx: ActionContext, inp: FollowUpInput) -> dict[str, Any]:
    """Add a follow-up (sales activity) record (ActiveRecordObj) to a lead, customer or opportunity."""
    fields: dict[str, Any] = {"active_record_content": inp.content,
                              "related_object_data": [{"describe_api_name": inp.object, "id": inp.id}]}
    if inp.record_type is not None:
        fields["active_record_type"] = inp.record_type
    if inp.owner_id is not None:
        fields["owner"] = [inp.owner_id]
    return {"id": await api.create(ctx, "ActiveRecordObj", fields)}


connector.actions["custom_api_call"].examples.append(
    {"title": "Read a customer through the raw API", "connection": SANDBOX,
     "input": {"method": "POST", "path": "/cgi/crm/v2/data/get",
               "json": {"currentOpenUserId": SANDBOX_USER, "data": {"dataObjectApiName": "AccountObj", "objectDataId": SEED_ACCOUNT}}},
     "expect": {"status": 200, "body": {"errorCode": 0, "data": {"_id": SEED_ACCOUNT}}}})
