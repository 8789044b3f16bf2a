"""The `demo` connector: a complete third-party Flowlink connector.

Flowlink finds it through the entry point in this package's pyproject.toml::

    [project.entry-points."flowlink.connectors"]
    demo = "flowlink_connector_demo:connector"

Flows call its actions as ``demo.greet`` or, pinned to major version 1, ``demo@^1.greet``.
"""
from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from connectors.sdk import ActionContext, Connector
from connectors.sdk.action import ui
from connectors.sdk.http import parse_retry_after, shared_client
from engine.errors import InvalidInput, NotFound, PermissionDenied, RateLimited, StepError, Transient
from flowlink_connector_demo.platform import FakeDemoCrm

__version__ = "1.2.0"

_ICON = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
    "<circle cx='8' cy='8' r='7' fill='%232b7de9'/></svg>"
)


class DemoConnection(BaseModel):
    """What a `demo` connection stores (`flowlink connections set NAME --connector demo --field api_key=-`)."""

    api_key: str = Field(title="API key", description="From the Demo CRM's settings page.", json_schema_extra=ui(secret=True, title_zh="API 密钥"))


#: The API key the sandbox accepts (``flowlink sandbox demo``, the action examples).
SANDBOX_KEY = "demo-key"


def sandbox() -> Any:
    """A fresh fake Demo CRM (an ASGI app) that accepts the API key ``demo-key``."""
    return FakeDemoCrm(api_keys=(SANDBOX_KEY,)).app


connector = Connector(
    name="demo",
    version=__version__,
    title={"en": "Demo CRM", "zh": "演示 CRM"},
    description="Greet people and look up or create contacts in the Demo CRM (an example connector).",
    icon=_ICON,
    categories=("crm", "example"),
    connection_kinds=("api_key",),
    connection_schema=DemoConnection,
    homepage="https://flowlink.dev/connectors/demo",
    sandbox=sandbox,
)

#: Reads are safe to repeat: retry rate limits and platform hiccups unless the step says otherwise.
READ_RETRY = ({"errors": ["RateLimited", "Transient"], "max_attempts": 3, "interval": 0.5, "backoff_rate": 2, "max_delay": 10},)

BaseUrl = Field(
    title="Base URL",
    description="The Demo CRM's API address, e.g. https://crm.example.com.",
    pattern=r"^https?://",
    json_schema_extra=ui(placeholder="https://crm.example.com", title_zh="接口地址"),
)

#: The examples' connection and base URL: `flowlink connector test demo` runs them against the
#: sandbox, whose address is the flow variable ``sandbox_url``.
SANDBOX_CONNECTION = {"api_key": SANDBOX_KEY}
SANDBOX_URL = "{{ vars.sandbox_url }}"


# ---------------------------------------------------------------------------- models


class GreetInput(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=100, title="Name", description="Who to greet.", json_schema_extra=ui(title_zh="姓名"))
    language: Literal["en", "zh"] = Field(default="en", title="Language", json_schema_extra=ui(title_zh="语言"))
    excited: bool = Field(default=False, title="Excited", description="End with an exclamation mark.")


class GreetOutput(BaseModel):
    message: str


class Owner(BaseModel):
    id: str
    name: str


class Contact(BaseModel):
    id: str
    name: str
    email: str
    owner_id: str
    tags: list[str]
    note: str
    created_at: int


class ListOwnersInput(BaseModel):
    model_config = {"extra": "forbid"}

    base_url: str = BaseUrl


class ListOwnersOutput(BaseModel):
    owners: list[Owner]


class LookupInput(BaseModel):
    model_config = {"extra": "forbid"}

    base_url: str = BaseUrl
    email: str = Field(title="Email", description="The contact's email address (case-insensitive).", pattern=r"^[^@\s]+@[^@\s]+$")


class LookupOutput(BaseModel):
    found: bool
    contact: Contact | None


class CreateContactInput(BaseModel):
    model_config = {"extra": "forbid"}

    base_url: str = BaseUrl
    name: str = Field(min_length=1, max_length=100, title="Name", json_schema_extra=ui(title_zh="姓名"))
    email: str = Field(title="Email", pattern=r"^[^@\s]+@[^@\s]+$")
    owner_id: str = Field(
        title="Owner",
        description="The sales person who owns the contact.",
        json_schema_extra=ui(
            options={"action": "list_owners", "args": {"base_url": "{{ base_url }}"}, "items": "owners", "value": "id", "label": "name"},
            depends_on=["base_url"],
            title_zh="负责人",
        ),
    )
    tags: list[str] = Field(default_factory=list, title="Tags")
    note: str | None = Field(default=None, title="Note", max_length=2000, json_schema_extra=ui(multiline=True, title_zh="备注"))


# ---------------------------------------------------------------------------- calling the platform


def _error(response: httpx.Response) -> StepError:
    """The typed step error for one of the platform's error answers."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") or f"http_{response.status_code}"
    message = f"Demo CRM: {error.get('message') or response.reason_phrase} ({code})"
    details = {"field": error["field"]} if error.get("field") else None
    status = response.status_code
    common = {"status": status, "code": code, "connector": "demo", "details": details}
    if status == 429:
        return RateLimited(message, retry_after=parse_retry_after(response.headers.get("retry-after")), **common)
    if status >= 500:
        return Transient(message, **common)
    if status in (401, 403):
        return PermissionDenied(message, **common)
    if status == 404:
        return NotFound(message, **common)
    if status in (400, 409, 422):
        return InvalidInput(message, **common)
    return StepError(message, **common)


async def call(ctx: ActionContext, method: str, base_url: str, path: str, **kwargs: Any) -> Any:
    """One request to the Demo CRM with the connection's key; the answer's ``data``, or a typed error."""
    key = (ctx.connection or {}).get("api_key")
    if not key:
        raise InvalidInput("this action needs a 'demo' connection with an api_key field (set the step's 'connection')")
    url = base_url.rstrip("/") + path
    try:
        response = await shared_client().request(method, url, headers={"Authorization": f"Bearer {key}"}, timeout=15, **kwargs)
    except httpx.TimeoutException:
        raise Transient(f"Demo CRM: {method} {url} timed out") from None
    except httpx.TransportError as exc:
        raise Transient(f"Demo CRM: {method} {url} failed: {type(exc).__name__}") from None
    if not response.is_success:
        raise _error(response)
    return response.json()["data"]


# ---------------------------------------------------------------------------- actions


@connector.action("greet", input=GreetInput, output_schema=GreetOutput, title={"en": "Greet", "zh": "打招呼"},
                  examples=[{"title": "Greet in Chinese", "input": {"name": "李雷", "language": "zh", "excited": True},
                             "expect": {"message": "你好，李雷！"}}])
def greet(ctx: ActionContext, inp: GreetInput) -> dict[str, Any]:
    """Build a greeting in English or Chinese."""
    if inp.language == "zh":
        message = f"你好，{inp.name}" + ("！" if inp.excited else "。")
    else:
        message = f"Hello, {inp.name}" + ("!" if inp.excited else ".")
    return {"message": message}


@connector.action(
    "list_owners", input=ListOwnersInput, output_schema=ListOwnersOutput, default_retry=READ_RETRY,
    title={"en": "List owners", "zh": "列出负责人"},
    examples=[{"title": "The CRM's owners", "input": {"base_url": SANDBOX_URL}, "connection": SANDBOX_CONNECTION,
               "expect": {"owners": [{"id": "u1"}, {"id": "u2"}]}}],
)
async def list_owners(ctx: ActionContext, inp: ListOwnersInput) -> dict[str, Any]:
    """The CRM's sales people (the choices of create_contact's owner)."""
    return {"owners": await call(ctx, "GET", inp.base_url, "/v1/owners")}


@connector.action(
    "lookup_contact", input=LookupInput, output_schema=LookupOutput, default_retry=READ_RETRY,
    title={"en": "Look up contact", "zh": "查找联系人"},
    examples=[{"title": "An unknown email", "input": {"base_url": SANDBOX_URL, "email": "nobody@example.com"},
               "connection": SANDBOX_CONNECTION, "expect": {"found": False, "contact": None}}],
)
async def lookup_contact(ctx: ActionContext, inp: LookupInput) -> dict[str, Any]:
    """Find a contact by email; `found` is false when there is none."""
    found = await call(ctx, "GET", inp.base_url, "/v1/contacts", params={"email": inp.email})
    return {"found": bool(found), "contact": found[0] if found else None}


@connector.action(
    "create_contact", input=CreateContactInput, output_schema=Contact,
    title={"en": "Create contact", "zh": "创建联系人"},
    examples=[{"title": "A new contact",
               "input": {"base_url": SANDBOX_URL, "name": "Wu", "email": "wu@example.com", "owner_id": "u1", "tags": ["web"]},
               "connection": SANDBOX_CONNECTION,
               "expect": {"id": "c1", "name": "Wu", "email": "wu@example.com", "owner_id": "u1", "tags": ["web"], "note": ""}}],
)
async def create_contact(ctx: ActionContext, inp: CreateContactInput) -> dict[str, Any]:
    """Create a contact; an existing email fails with demo.duplicate_email."""
    body = inp.model_dump(exclude={"base_url"}, exclude_none=True)
    return await call(ctx, "POST", inp.base_url, "/v1/contacts", json=body)
