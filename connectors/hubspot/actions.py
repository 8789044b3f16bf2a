"""The `hubspot` actions: small typed functions over :mod:`connectors.hubspot.api`."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from connectors.hubspot import api
from connectors.hubspot.api import OBJECTS, ObjectType
from connectors.hubspot.connector import connector
from connectors.hubspot.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PRIVATE_APP_TOKEN,
    SANDBOX_REFRESH_TOKEN,
)
from connectors.sdk import ActionContext, Budget, CursorPaginator, PageRequest
from connectors.sdk.action import ui

#: The examples' connections: `flowlink connector test hubspot` runs them against the sandbox.
PRIVATE_APP = {"auth": "bearer", "token": SANDBOX_PRIVATE_APP_TOKEN}
OAUTH = {"auth": "oauth2_authorization_code", "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
         "refresh_token": SANDBOX_REFRESH_TOKEN}
#: Seeded in the sandbox: a contact and a company.
SEED_CONTACT, SEED_COMPANY = "1001", "1002"

READ_RETRY = ({"errors": ["RateLimited", "Transient"], "max_attempts": 3, "interval": 1, "backoff_rate": 2, "max_delay": 30},)
OWNER_OPTIONS = {"action": "list_owners", "items": "owners", "value": "id", "label": "name"}

ObjectField = Field(title="Object", json_schema_extra=ui(title_zh="对象"))
OwnerField = Field(default=None, title="Owner", pattern=r"^\d+$",
                   description="Sets the record's hubspot_owner_id.", json_schema_extra=ui(options=OWNER_OPTIONS, title_zh="负责人"))
PropertiesField = Field(default_factory=dict, title="Properties",
                        description="Property values by internal name (e.g. email, dealname, amount); values are "
                                    "strings or numbers, dates epoch milliseconds or ISO 8601.")


class Record(BaseModel):
    id: str
    properties: dict[str, Any]
    createdAt: str
    updatedAt: str
    archived: bool


class UpsertedRecord(Record):
    created: bool


# ---------------------------------------------------------------------------- owners


class ListOwnersInput(BaseModel):
    model_config = {"extra": "forbid"}

    email: str | None = Field(default=None, title="Only the owner with this email")


class Owner(BaseModel):
    id: str
    name: str
    email: str | None = None
    user_id: int | None = None


class OwnersOutput(BaseModel):
    owners: list[Owner]


@connector.action("list_owners", input=ListOwnersInput, output_schema=OwnersOutput, default_retry=READ_RETRY,
                  title={"en": "List owners", "zh": "列出负责人"},
                  examples=[{"title": "Owners, with an OAuth connection", "input": {}, "connection": OAUTH,
                             "expect": {"owners": [{"id": "101", "name": "Lei Li"}, {"id": "102"}, {"id": "103"}]}}])
async def list_owners(ctx: ActionContext, inp: ListOwnersInput) -> dict[str, Any]:
    """The account's owners (the choices of every owner field), all pages."""
    query = {"limit": 100, **({"email": inp.email} if inp.email else {})}

    async def fetch(page: PageRequest) -> Any:
        return await ctx.client.get("/crm/v3/owners", params={**query, **page.params})

    owners = await CursorPaginator(cursor_param="after", next_cursor="paging.next.after", items="results").collect(fetch)
    return {"owners": [{"id": o["id"], "name": " ".join(p for p in (o.get("firstName"), o.get("lastName")) if p) or o.get("email", o["id"]),
                        "email": o.get("email"), "user_id": o.get("userId")} for o in owners]}


# ---------------------------------------------------------------------------- records


class CreateInput(BaseModel):
    model_config = {"extra": "forbid"}

    object: ObjectType = ObjectField
    properties: dict[str, Any] = PropertiesField
    owner_id: str | None = OwnerField


@connector.action("create_record", input=CreateInput, output_schema=Record,
                  title={"en": "Create contact, company or deal", "zh": "新建联系人/公司/交易"},
                  examples=[{"title": "A contact owned by Han Meimei", "connection": PRIVATE_APP,
                             "input": {"object": "contacts", "owner_id": "102",
                                       "properties": {"email": "wang@example.com", "firstname": "Xiaoming", "lastname": "Wang"}},
                             "expect": {"id": "1003", "properties": {"email": "wang@example.com", "hubspot_owner_id": "102"}}}])
async def create_record(ctx: ActionContext, inp: CreateInput) -> dict[str, Any]:
    """Create a record; a taken unique value (a contact's email) fails with hubspot.CONFLICT."""
    answer = await ctx.client.post(f"{OBJECTS}/{inp.object}",
                                   json={"properties": api.properties_with_owner(inp.properties, inp.owner_id)})
    return api.record(answer)


class UpdateInput(BaseModel):
    model_config = {"extra": "forbid"}

    object: ObjectType = ObjectField
    id: str = Field(title="Record ID (or the id property's value)")
    id_property: str | None = Field(default=None, title="ID property", description="Find the record by this unique "
                                    "property (e.g. email) instead of its record ID.")
    properties: dict[str, Any] = PropertiesField
    owner_id: str | None = OwnerField


@connector.action("update_record", input=UpdateInput, output_schema=Record,
                  title={"en": "Update contact, company or deal", "zh": "更新联系人/公司/交易"},
                  examples=[{"title": "Tag a customer by spend tier, found by email", "connection": PRIVATE_APP,
                             "input": {"object": "contacts", "id": "zhang.san@example.com", "id_property": "email",
                                       "properties": {"customer_tier": "gold", "total_spend": 52000}},
                             "expect": {"id": SEED_CONTACT, "properties": {"customer_tier": "gold", "total_spend": "52000"}}}])
async def update_record(ctx: ActionContext, inp: UpdateInput) -> dict[str, Any]:
    """Update a record's properties (and owner); NotFound when there is no such record."""
    params = {"idProperty": inp.id_property} if inp.id_property else None
    answer = await ctx.client.request("PATCH", f"{OBJECTS}/{inp.object}/{inp.id}", params=params,
                                      json={"properties": api.properties_with_owner(inp.properties, inp.owner_id)})
    return api.record(answer)


class UpsertInput(BaseModel):
    model_config = {"extra": "forbid"}

    object: ObjectType = ObjectField
    id_property: str = Field(title="Unique property", description="A property with unique values: email for "
                             "contacts, or a custom unique one such as erp_order_id.")
    id_value: str = Field(min_length=1, title="Its value")
    properties: dict[str, Any] = PropertiesField
    owner_id: str | None = OwnerField


@connector.action("upsert_record", input=UpsertInput, output_schema=UpsertedRecord,
                  title={"en": "Create or update by unique property", "zh": "按唯一属性新建或更新"},
                  examples=[{"title": "An ERP order as a deal", "connection": PRIVATE_APP,
                             "input": {"object": "deals", "id_property": "erp_order_id", "id_value": "SO-2024-001",
                                       "owner_id": "101", "properties": {"dealname": "SO-2024-001", "amount": "12800",
                                                                         "dealstage": "closedwon"}},
                             "expect": {"created": True, "properties": {"erp_order_id": "SO-2024-001", "amount": "12800"}}}])
async def upsert_record(ctx: ActionContext, inp: UpsertInput) -> dict[str, Any]:
    """Update the record whose `id_property` is `id_value`, else create it; `created` tells which."""
    item = {"idProperty": inp.id_property, "id": inp.id_value,
            "properties": api.properties_with_owner(inp.properties, inp.owner_id)}
    answer = await ctx.client.post(f"{OBJECTS}/{inp.object}/batch/upsert", json={"inputs": [item]})
    result = answer["results"][0]
    return {**api.record(result), "created": bool(result.get("new"))}


class GetInput(BaseModel):
    model_config = {"extra": "forbid"}

    object: ObjectType = ObjectField
    id: str = Field(title="Record ID (or the id property's value)")
    id_property: str | None = Field(default=None, title="ID property")
    properties: list[str] = Field(default_factory=list, title="Properties to return", description="Default: HubSpot's defaults.")


@connector.action("get_record", input=GetInput, output_schema=Record, default_retry=READ_RETRY,
                  title={"en": "Get record", "zh": "获取记录"},
                  examples=[{"title": "A company by ERP id", "connection": PRIVATE_APP,
                             "input": {"object": "companies", "id": "C-001", "id_property": "erp_customer_id",
                                       "properties": ["name", "hubspot_owner_id"]},
                             "expect": {"id": SEED_COMPANY, "properties": {"name": "Example Tech", "hubspot_owner_id": "101"}}}])
async def get_record(ctx: ActionContext, inp: GetInput) -> dict[str, Any]:
    """One record by id or unique property; NotFound when there is none."""
    params: dict[str, str] = {}
    if inp.id_property:
        params["idProperty"] = inp.id_property
    if inp.properties:
        params["properties"] = ",".join(inp.properties)
    return api.record(await ctx.client.get(f"{OBJECTS}/{inp.object}/{inp.id}", params=params or None))


# ---------------------------------------------------------------------------- search


class Filter(BaseModel):
    model_config = {"extra": "forbid"}

    property: str = Field(title="Property")
    operator: Literal["EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
                      "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"] = "EQ"
    value: str | int | float | None = Field(default=None, title="Value")
    high_value: str | int | float | None = Field(default=None, title="High value (BETWEEN)")
    values: list[str | int | float] | None = Field(default=None, title="Values (IN, NOT_IN)")

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"propertyName": self.property, "operator": self.operator}
        for key, name in (("value", "value"), ("high_value", "highValue"), ("values", "values")):
            if getattr(self, key) is not None:
                data[name] = getattr(self, key)
        return data


class SearchInput(BaseModel):
    model_config = {"extra": "forbid"}

    object: ObjectType = ObjectField
    filters: list[Filter] = Field(default_factory=list, max_length=6, title="Filters (all must hold)")
    any_of: list[list[Filter]] = Field(default_factory=list, max_length=5, title="Or: filter groups",
                                       description="Records matching any group (each group's filters all hold); "
                                                   "instead of `filters`.")
    query: str | None = Field(default=None, title="Text search")
    sort_by: str | None = Field(default=None, title="Sort by property")
    descending: bool = Field(default=False, title="Descending")
    properties: list[str] = Field(default_factory=list, title="Properties to return")
    max_records: int = Field(default=1000, ge=1, le=10_000, title="Max records",
                             description="Fail rather than return a partial list when more match.")

    @model_validator(mode="after")
    def _one_kind_of_filter(self) -> "SearchInput":
        if self.filters and self.any_of:
            raise ValueError("give `filters` or `any_of`, not both")
        return self


class SearchOutput(BaseModel):
    total: int
    results: list[dict[str, Any]]


@connector.action("search_records", input=SearchInput, output_schema=SearchOutput, default_retry=READ_RETRY,
                  budget=Budget(4, 1, "hubspot-search"),
                  title={"en": "Search records", "zh": "搜索记录"},
                  examples=[{"title": "Contacts of owner 101", "connection": PRIVATE_APP,
                             "input": {"object": "contacts", "filters": [{"property": "hubspot_owner_id", "value": "101"}],
                                       "properties": ["email"]},
                             "expect": {"total": 1, "results": [{"id": SEED_CONTACT,
                                                                 "properties": {"email": "zhang.san@example.com"}}]}}])
async def search_records(ctx: ActionContext, inp: SearchInput) -> dict[str, Any]:
    """Every record matching the filters, read page by page to the end (search has its own
    per-second limit, 4-5 by HubSpot's docs: a shared budget keeps to 4)."""
    groups = [inp.filters] if inp.filters else inp.any_of
    body: dict[str, Any] = {"filterGroups": [{"filters": [f.to_api() for f in group]} for group in groups]}
    if inp.query:
        body["query"] = inp.query
    if inp.sort_by:
        body["sorts"] = [{"propertyName": inp.sort_by, "direction": "DESCENDING" if inp.descending else "ASCENDING"}]
    if inp.properties:
        body["properties"] = inp.properties
    results, total = await api.search(ctx, inp.object, body, inp.max_records)
    return {"total": total, "results": [api.record(r) for r in results]}


# ---------------------------------------------------------------------------- associations


class AssociateInput(BaseModel):
    model_config = {"extra": "forbid"}

    from_object: ObjectType = Field(title="From object")
    from_id: str = Field(title="From record ID")
    to_object: ObjectType = Field(title="To object")
    to_id: str = Field(title="To record ID")


class AssociateOutput(BaseModel):
    from_id: str
    to_id: str
    association_type_ids: list[int]


@connector.action("associate", input=AssociateInput, output_schema=AssociateOutput,
                  title={"en": "Associate records", "zh": "关联记录"},
                  examples=[{"title": "The seeded contact works at the seeded company", "connection": PRIVATE_APP,
                             "input": {"from_object": "contacts", "from_id": SEED_CONTACT, "to_object": "companies",
                                       "to_id": SEED_COMPANY},
                             "expect": {"from_id": SEED_CONTACT, "to_id": SEED_COMPANY, "association_type_ids": [279]}}])
async def associate(ctx: ActionContext, inp: AssociateInput) -> dict[str, Any]:
    """Link two records with HubSpot's default association (a deal to its company, a contact to its company ...)."""
    answer = await ctx.client.request(
        "PUT", f"/crm/v4/objects/{inp.from_object}/{inp.from_id}/associations/default/{inp.to_object}/{inp.to_id}")
    types = [r["associationSpec"]["associationTypeId"] for r in answer.get("results", [])
             if str(r["from"]["id"]) == inp.from_id]
    return {"from_id": inp.from_id, "to_id": inp.to_id, "association_type_ids": types}


connector.actions["custom_api_call"].examples.append(
    {"title": "Read a contact through the raw API", "connection": PRIVATE_APP,
     "input": {"path": f"/crm/v3/objects/contacts/{SEED_CONTACT}", "query": {"properties": "email"}},
     "expect": {"status": 200, "body": {"id": SEED_CONTACT, "properties": {"email": "zhang.san@example.com"}}}})
