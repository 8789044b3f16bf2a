"""A contract-faithful fake of HubSpot's CRM v3 API, as a Starlette ASGI app.

The contract (developers.hubspot.com; `/work/shared/reference/platform-apis.md` §8):

- Auth: ``Authorization: Bearer <token>``: a private-app token, or an OAuth access token from
  ``POST /oauth/v1/token`` (form: ``grant_type=refresh_token``, ``client_id``, ``client_secret``,
  ``refresh_token`` → ``{access_token, refresh_token, expires_in: 1800, token_type}``; the refresh
  token is not rotated). Missing/unknown token → 401 ``INVALID_AUTHENTICATION``; an OAuth token
  past its ``expires_in`` (by the fake's clock) → 401 ``EXPIRED_AUTHENTICATION``.
- Errors: ``{"status": "error", "message", "correlationId", "category", "errors": [{"message",
  "code", "context": {"propertyName": [...]}}]}``: 400 ``VALIDATION_ERROR`` (unknown property,
  bad option, number, email or date, missing required deal properties, bad search), 404
  ``OBJECT_NOT_FOUND``, 409 ``CONFLICT`` (a unique property's value taken).
- Objects ``contacts``, ``companies``, ``deals``: ``POST /crm/v3/objects/{type}`` → 201,
  ``GET``/``PATCH /crm/v3/objects/{type}/{id}[?idProperty=]``, ``POST …/batch/upsert``
  (``idProperty`` must be a unique-value property; ≤100 inputs), ``POST …/search``
  (``filterGroups`` ≤5 OR'ed, ≤6 filters each AND'ed, ``sorts`` ≤1, ``limit`` ≤200,
  ``after``; results stop at 10 000). A record is ``{id, properties, createdAt, updatedAt,
  archived}``; property values are strings.
- ``GET /crm/v3/owners?limit=&after=&email=`` and
  ``PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{id}`` (default association both
  ways); ``GET /crm/v4/objects/{from}/{id}/associations/{to}`` lists them.
- Limits: 429 with ``Retry-After`` and ``X-HubSpot-RateLimit-*`` headers and ``policyName``
  ``TEN_SECONDLY_ROLLING`` (100 calls per 10 s per account), ``SECONDLY`` (search: 5 per s)
  or ``DAILY`` (the daily quota).
"""
from __future__ import annotations

import itertools
import json
import re
import secrets
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SANDBOX_PRIVATE_APP_TOKEN = "pat-na1-sandbox"
SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET = "sandbox-client-id", "sandbox-client-secret"
SANDBOX_REFRESH_TOKEN = "sandbox-refresh-token"

ACCESS_TOKEN_TTL = 1800
BURST_LIMIT, BURST_WINDOW = 100, 10.0
SEARCH_LIMIT, SEARCH_WINDOW = 5, 1.0
DAILY_LIMIT = 250_000
MAX_SEARCH_LIMIT, MAX_SEARCH_RESULTS = 200, 10_000

OWNERS = (
    {"id": "101", "email": "lilei@example.com", "firstName": "Lei", "lastName": "Li", "userId": 9001},
    {"id": "102", "email": "hanmeimei@example.com", "firstName": "Meimei", "lastName": "Han", "userId": 9002},
    {"id": "103", "email": "wangwu@example.com", "firstName": "Wu", "lastName": "Wang", "userId": 9003},
)

LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
             "evangelist", "other")
DEAL_STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
               "contractsent", "closedwon", "closedlost")
TIERS = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class Prop:
    """A property definition: its type, options, and whether its values are unique."""

    type: str  # string, number, enumeration, datetime, date, email
    options: tuple[str, ...] = ()
    unique: bool = False
    required: bool = False


OWNER = Prop("owner")
SCHEMAS: dict[str, dict[str, Prop]] = {
    "contacts": {
        "email": Prop("email", unique=True), "firstname": Prop("string"), "lastname": Prop("string"),
        "phone": Prop("string"), "company": Prop("string"), "jobtitle": Prop("string"),
        "lifecyclestage": Prop("enumeration", LIFECYCLE), "hubspot_owner_id": OWNER,
        "customer_tier": Prop("enumeration", TIERS), "total_spend": Prop("number"), "erp_customer_id": Prop("string", unique=True),
    },
    "companies": {
        "name": Prop("string"), "domain": Prop("string"), "phone": Prop("string"), "city": Prop("string"),
        "industry": Prop("string"), "hubspot_owner_id": OWNER, "lifecyclestage": Prop("enumeration", LIFECYCLE),
        "customer_tier": Prop("enumeration", TIERS), "total_spend": Prop("number"),
        "erp_customer_id": Prop("string", unique=True),
    },
    "deals": {
        "dealname": Prop("string", required=True), "dealstage": Prop("enumeration", DEAL_STAGES, required=True),
        "pipeline": Prop("enumeration", ("default",)), "amount": Prop("number"), "closedate": Prop("datetime"),
        "hubspot_owner_id": OWNER, "erp_order_id": Prop("string", unique=True), "description": Prop("string"),
    },
}
DEFAULT_PROPERTIES = {"contacts": ("email", "firstname", "lastname"), "companies": ("name", "domain"),
                      "deals": ("dealname", "amount", "dealstage", "pipeline", "closedate")}
READ_ONLY = {"hs_object_id", "createdate", "lastmodifieddate", "hs_createdate"}
#: Default (unlabelled) association type ids, per direction.
ASSOCIATION_TYPES = {("contacts", "companies"): 279, ("companies", "contacts"): 280, ("deals", "contacts"): 3,
                     ("contacts", "deals"): 4, ("deals", "companies"): 341, ("companies", "deals"): 342}
OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY",
             "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class HubSpotError(Exception):
    """An error answer in HubSpot's envelope."""

    def __init__(self, status: int, category: str, message: str, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.category, self.message = status, category, message
        self.errors, self.headers, self.extra = errors, headers or {}, extra or {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"status": "error", "message": self.message, "correlationId": str(uuid.uuid4()),
                                "category": self.category, **self.extra}
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def property_errors(problems: list[tuple[str, str, str]]) -> HubSpotError:
    """A 400 VALIDATION_ERROR for (property, code, message) problems, in both of HubSpot's forms:
    the JSON list inside `message` and the structured `errors` with ``context.propertyName``."""
    legacy = [{"isValid": False, "message": msg, "error": code, "name": name, "localizedErrorMessage": msg}
              for name, code, msg in problems]
    errors = [{"message": msg, "code": code, "context": {"propertyName": [name]}} for name, code, msg in problems]
    return HubSpotError(400, "VALIDATION_ERROR", f"Property values were not valid: {json.dumps(legacy)}", errors)


def validation_error(message: str, code: str = "INVALID_REQUEST", name: str | None = None) -> HubSpotError:
    """A 400 VALIDATION_ERROR about the request itself (not a property value)."""
    error: dict[str, Any] = {"message": message, "code": code}
    if name is not None:
        error["context"] = {"propertyName": [name]}
    return HubSpotError(400, "VALIDATION_ERROR", message, [error])


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeHubSpot:
    """The fake's state and its ASGI `app`.

    Test hooks: :meth:`advance` moves the fake's clock (OAuth tokens expire after 1800 s of it,
    rate windows pass), :meth:`revoke_tokens` drops every OAuth access token, :meth:`add_record`
    stores a record, `burst_limit`, `search_limit` and `daily_remaining` can be lowered,
    `on_call(endpoint)` (when set) runs after each answered API request, `calls` counts
    requests by endpoint (``create``, ``search``, ``oauth_token`` ...) and `records` /
    `associations` hold the data.
    """

    def __init__(self, *, seed: bool = True) -> None:
        self.private_tokens = {SANDBOX_PRIVATE_APP_TOKEN}
        self.clients = {SANDBOX_CLIENT_ID: SANDBOX_CLIENT_SECRET}
        self.refresh_tokens = {SANDBOX_REFRESH_TOKEN: SANDBOX_CLIENT_ID}
        self.access_tokens: dict[str, float] = {}  # token -> expires at (fake clock)
        self.owners = [{**o, "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-01T00:00:00.000Z",
                        "archived": False} for o in OWNERS]
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SCHEMAS}
        self.associations: set[tuple[str, str, str, str]] = set()  # (from type, from id, to type, to id)
        self.calls: dict[str, int] = defaultdict(int)
        self.burst_limit, self.search_limit, self.daily_remaining = BURST_LIMIT, SEARCH_LIMIT, DAILY_LIMIT
        self.on_call: Callable[[str], None] | None = None
        self._offset = 0.0
        self._burst: deque[float] = deque()
        self._search: deque[float] = deque()
        self._ids = itertools.count(1001)
        if seed:
            self.add_record("contacts", {"email": "zhang.san@example.com", "firstname": "San", "lastname": "Zhang",
                                         "hubspot_owner_id": "101"})
            self.add_record("companies", {"name": "Example Tech", "domain": "example.com", "erp_customer_id": "C-001",
                                          "hubspot_owner_id": "101"})
        objects = "/crm/v3/objects/{object_type}"
        self.app = Starlette(routes=[
            Route("/oauth/v1/token", self.oauth_token, methods=["POST"]),
            Route("/crm/v3/owners", self._api(self.list_owners), methods=["GET"]),
            Route(objects, self._api(self.create), methods=["POST"]),
            Route(objects + "/batch/upsert", self._api(self.upsert), methods=["POST"]),
            Route(objects + "/search", self._api(self.search, search=True), methods=["POST"]),
            Route(objects + "/{record_id}", self._api(self.get), methods=["GET"]),
            Route(objects + "/{record_id}", self._api(self.update), methods=["PATCH"]),
            Route("/crm/v4/objects/{object_type}/{record_id}/associations/default/{to_type}/{to_id}",
                  self._api(self.associate), methods=["PUT"]),
            Route("/crm/v4/objects/{object_type}/{record_id}/associations/{to_type}",
                  self._api(self.list_associations), methods=["GET"]),
        ])

    # ------------------------------------------------------------------ test hooks

    def now(self) -> float:
        """The fake's clock in seconds (real time plus what :meth:`advance` added)."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward."""
        self._offset += seconds

    def revoke_tokens(self) -> None:
        """Invalidate every OAuth access token issued so far."""
        self.access_tokens.clear()

    def add_record(self, object_type: str, properties: dict[str, Any]) -> dict[str, Any]:
        """Store a record as if created through the API (validated); the record."""
        return self._insert(object_type, self._check(object_type, properties, creating=True))

    # ------------------------------------------------------------------ plumbing

    def _api(self, fn: Callable[..., Any], *, search: bool = False) -> Callable[[Request], Any]:
        async def handle(request: Request) -> JSONResponse:
            self.calls[fn.__name__] += 1
            try:
                self._authenticate(request)
                headers = self._limit(search)
                body = await self._json(request) if request.method in ("POST", "PATCH") else None
                status, answer = fn(request, body)
                response = JSONResponse(answer, status_code=status, headers=headers)
            except HubSpotError as exc:
                response = exc.response()
            if self.on_call is not None:
                self.on_call(fn.__name__)
            return response

        return handle

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise validation_error("Invalid input JSON on line 1: the body is not JSON", "INVALID_JSON") from None
        if not isinstance(body, dict):
            raise validation_error("Invalid input JSON: expected an object", "INVALID_JSON")
        return body

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if token in self.private_tokens:
            return
        expires = self.access_tokens.get(token)
        if expires is None:
            raise HubSpotError(401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports "
                               "OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")
        if self.now() >= expires:
            hours = int((self.now() - expires) // 3600)
            raise HubSpotError(401, "EXPIRED_AUTHENTICATION", f"The OAuth token used to make this call expired {hours} hour(s) ago.")

    def _limit(self, search: bool) -> dict[str, str]:
        now = self.now()
        for window, size in ((self._burst, BURST_WINDOW), (self._search, SEARCH_WINDOW)):
            while window and now - window[0] >= size:
                window.popleft()
        headers = {"X-HubSpot-RateLimit-Daily": str(DAILY_LIMIT), "X-HubSpot-RateLimit-Daily-Remaining": str(self.daily_remaining),
                   "X-HubSpot-RateLimit-Max": str(self.burst_limit),
                   "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(BURST_WINDOW * 1000))}
        if self.daily_remaining <= 0:
            midnight = (int(now) // 86400 + 1) * 86400
            raise HubSpotError(429, "RATE_LIMITS", "You have reached your daily limit.",
                               headers={**headers, "Retry-After": str(int(midnight - now) + 1)},
                               extra={"errorType": "RATE_LIMIT", "policyName": "DAILY"})
        if len(self._burst) >= self.burst_limit:
            wait = BURST_WINDOW - (now - self._burst[0])
            raise HubSpotError(429, "RATE_LIMITS", "You have reached your ten_secondly_rolling limit.",
                               headers={**headers, "X-HubSpot-RateLimit-Remaining": "0", "Retry-After": str(max(1, round(wait)))},
                               extra={"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})
        if search:
            if len(self._search) >= self.search_limit:
                raise HubSpotError(429, "RATE_LIMITS", "You have reached your secondly limit.",
                                   headers={**headers, "X-HubSpot-RateLimit-Secondly": str(self.search_limit),
                                            "X-HubSpot-RateLimit-Secondly-Remaining": "0", "Retry-After": "1"},
                                   extra={"errorType": "RATE_LIMIT", "policyName": "SECONDLY"})
            self._search.append(now)
        self._burst.append(now)
        self.daily_remaining -= 1
        headers["X-HubSpot-RateLimit-Remaining"] = str(self.burst_limit - len(self._burst))
        headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(self.daily_remaining)
        return headers

    @staticmethod
    def _type(request: Request) -> str:
        object_type = request.path_params["object_type"]
        if object_type not in SCHEMAS:
            raise HubSpotError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
        return object_type

    # ------------------------------------------------------------------ validation and storage

    def _check(self, object_type: str, properties: Any, *, creating: bool, record_id: str | None = None) -> dict[str, str]:
        if not isinstance(properties, dict):
            raise validation_error("Invalid input JSON: `properties` must be an object", "INVALID_JSON")
        schema = SCHEMAS[object_type]
        problems: list[tuple[str, str, str]] = []
        clean: dict[str, str] = {}
        for name, value in properties.items():
            prop = schema.get(name)
            if prop is None:
                code = "READ_ONLY_VALUE" if name in READ_ONLY else "PROPERTY_DOESNT_EXIST"
                problems.append((name, code, f'Property "{name}" does not exist' if code == "PROPERTY_DOESNT_EXIST"
                                 else f'"{name}" is a read only property; its value cannot be set.'))
                continue
            if value is None or value == "":
                clean[name] = ""
                continue
            if isinstance(value, (dict, list)) or isinstance(value, bool):
                problems.append((name, "INVALID_PROPERTY_VALUE", f"{value!r} is not a valid value for {name}"))
                continue
            text = str(value)
            problem = self._invalid(prop, name, text)
            if problem:
                problems.append((name, problem[0], problem[1]))
                continue
            if prop.type == "datetime" and text.lstrip("-").isdigit():
                text = _iso(int(text))
            clean[name] = text
        if creating:
            if object_type == "deals":
                clean.setdefault("pipeline", "default")
            for name, prop in schema.items():
                if prop.required and not clean.get(name) and name not in {p[0] for p in problems}:
                    problems.append((name, "REQUIRED_FIELD", f"{name} is required"))
        if problems:
            raise property_errors(problems)
        for name, value in clean.items():
            if schema[name].unique and value:
                taken = next((r for r in self.records[object_type].values()
                              if r["properties"].get(name) == value and r["id"] != record_id), None)
                if taken is not None:
                    noun = object_type[:-1].capitalize() if object_type != "companies" else "Company"
                    raise HubSpotError(409, "CONFLICT", f"{noun} already exists. Existing ID: {taken['id']}",
                                       [{"message": f"{name} {value} is already used by {taken['id']}", "code": "CONFLICT",
                                         "context": {"propertyName": [name]}}])
        return clean

    def _invalid(self, prop: Prop, name: str, text: str) -> tuple[str, str] | None:
        if prop.type == "email" and not _EMAIL.match(text):
            return "INVALID_EMAIL", f"Email address {text} is invalid"
        if prop.type == "enumeration" and text not in prop.options:
            return "INVALID_OPTION", f"{text} was not one of the allowed options: {', '.join(prop.options)}"
        if prop.type == "owner" and text not in {o["id"] for o in self.owners}:
            return "INVALID_OWNER_ID", f"{text} is not a valid owner id"
        if prop.type == "number":
            try:
                float(text)
            except ValueError:
                return "INVALID_FLOAT", f"{text} is not a valid number"
        if prop.type == "datetime" and not text.lstrip("-").isdigit():
            try:
                datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return "INVALID_DATETIME", f"{text} is not a valid datetime (epoch milliseconds or ISO 8601)"
        return None

    def _insert(self, object_type: str, properties: dict[str, str]) -> dict[str, Any]:
        record_id, stamp = str(next(self._ids)), _iso(self.now() * 1000)
        record = {"id": record_id, "properties": {**properties, "hs_object_id": record_id, "createdate": stamp,
                                                  "lastmodifieddate": stamp},
                  "createdAt": stamp, "updatedAt": stamp, "archived": False}
        self.records[object_type][record_id] = record
        return record

    def _update(self, object_type: str, record: dict[str, Any], properties: dict[str, str]) -> None:
        stamp = _iso(self.now() * 1000)
        record["properties"].update(properties, lastmodifieddate=stamp)
        record["updatedAt"] = stamp

    def _find(self, object_type: str, record_id: str, id_property: str | None) -> dict[str, Any]:
        if id_property:
            prop = SCHEMAS[object_type].get(id_property)
            if prop is None or not prop.unique:
                raise validation_error(f"{id_property} is not a unique identifier property of {object_type}",
                                       "INVALID_ID_PROPERTY", id_property)
            found = next((r for r in self.records[object_type].values() if r["properties"].get(id_property) == record_id), None)
        else:
            found = self.records[object_type].get(record_id)
        if found is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.",
                               extra={"context": {"id": [record_id]}})
        return found

    def _view(self, object_type: str, record: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
        names = set(DEFAULT_PROPERTIES[object_type]) | {"hs_object_id", "createdate", "lastmodifieddate"} | set(wanted or ())
        return {**record, "properties": {k: record["properties"].get(k) for k in sorted(names)
                                         if k in record["properties"] or k in (wanted or ())}}

    # ------------------------------------------------------------------ endpoints

    async def oauth_token(self, request: Request) -> JSONResponse:
        self.calls["oauth_token"] += 1
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        client = form.get("client_id")
        if self.clients.get(client or "") != form.get("client_secret"):
            return JSONResponse({"status": "BAD_CLIENT_ID", "message": "missing or unknown client id or secret",
                                 "correlationId": str(uuid.uuid4())}, status_code=400)
        if form.get("grant_type") != "refresh_token":
            return JSONResponse({"status": "BAD_GRANT_TYPE", "message": "grant_type must be refresh_token",
                                 "correlationId": str(uuid.uuid4())}, status_code=400)
        refresh = form.get("refresh_token", "")
        if self.refresh_tokens.get(refresh) != client:
            return JSONResponse({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token",
                                 "correlationId": str(uuid.uuid4())}, status_code=400)
        token = "CO" + secrets.token_urlsafe(24)
        self.access_tokens[token] = self.now() + ACCESS_TOKEN_TTL
        return JSONResponse({"token_type": "bearer", "refresh_token": refresh, "access_token": token,
                             "expires_in": ACCESS_TOKEN_TTL})

    def list_owners(self, request: Request, _: Any) -> tuple[int, Any]:
        limit, after = self._page_args(request.query_params.get("limit", "100"), request.query_params.get("after"), 500)
        email = request.query_params.get("email")
        owners = [o for o in self.owners if email is None or o["email"] == email]
        page = owners[after:after + limit]
        body: dict[str, Any] = {"results": page}
        if after + limit < len(owners):
            body["paging"] = {"next": {"after": str(after + limit), "link": f"?after={after + limit}"}}
        return 200, body

    @staticmethod
    def _page_args(limit_text: Any, after_text: Any, maximum: int) -> tuple[int, int]:
        try:
            limit = int(limit_text)
            after = int(after_text) if after_text not in (None, "") else 0
        except (TypeError, ValueError):
            raise validation_error("limit and after must be integers", "INVALID_PAGING") from None
        if not 1 <= limit <= maximum or after < 0:
            raise validation_error(f"limit must be between 1 and {maximum}", "INVALID_LIMIT")
        return limit, after

    def create(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        object_type = self._type(request)
        record = self._insert(object_type, self._check(object_type, body.get("properties"), creating=True))
        return 201, self._view(object_type, record, list(record["properties"]))

    def get(self, request: Request, _: Any) -> tuple[int, Any]:
        object_type = self._type(request)
        record = self._find(object_type, request.path_params["record_id"], request.query_params.get("idProperty"))
        wanted = [p for p in request.query_params.get("properties", "").split(",") if p]
        return 200, self._view(object_type, record, wanted)

    def update(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        object_type = self._type(request)
        record = self._find(object_type, request.path_params["record_id"], request.query_params.get("idProperty"))
        properties = self._check(object_type, body.get("properties"), creating=False, record_id=record["id"])
        self._update(object_type, record, properties)
        return 200, self._view(object_type, record, list(properties))

    def upsert(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        object_type = self._type(request)
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= 100:
            raise validation_error("inputs must be a list of 1 to 100 objects", "INVALID_INPUTS")
        started, results = _iso(self.now() * 1000), []
        for item in inputs:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item.get("id"):
                raise validation_error("each input needs an `id` (the idProperty's value)", "INVALID_INPUTS")
            id_property = item.get("idProperty")
            prop = SCHEMAS[object_type].get(id_property or "")
            if prop is None or not prop.unique:
                raise validation_error(f"{id_property} is not a unique identifier property of {object_type}",
                                       "INVALID_ID_PROPERTY", id_property)
            properties = dict(item.get("properties") or {})
            existing = next((r for r in self.records[object_type].values()
                             if r["properties"].get(id_property) == item["id"]), None)
            if existing is None:
                clean = self._check(object_type, {**properties, id_property: item["id"]}, creating=True)
                record, new = self._insert(object_type, clean), True
            else:
                clean = self._check(object_type, properties, creating=False, record_id=existing["id"])
                self._update(object_type, existing, clean)
                record, new = existing, False
            results.append({**self._view(object_type, record, list(clean)), "new": new})
        return 200, {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _iso(self.now() * 1000)}

    def search(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        object_type = self._type(request)
        schema = SCHEMAS[object_type]
        limit, after = self._page_args(body.get("limit", 10), body.get("after"), MAX_SEARCH_LIMIT)
        if after + limit > MAX_SEARCH_RESULTS:
            raise validation_error(f"The search API returns at most {MAX_SEARCH_RESULTS} results: narrow the search",
                                   "TOO_MANY_RESULTS")
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > 5:
            raise validation_error("filterGroups: at most 5 groups", "TOO_MANY_FILTER_GROUPS")
        rows = list(self.records[object_type].values())
        if groups:
            checked = [self._filters(group, schema) for group in groups]
            rows = [r for r in rows if any(all(self._match(r, f) for f in group) for group in checked)]
        query = body.get("query")
        if query:
            rows = [r for r in rows if any(str(query).lower() in str(v).lower() for v in r["properties"].values())]
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            raise validation_error("sorts: at most one sort", "TOO_MANY_SORTS")
        key_name, descending = "hs_object_id", False
        if sorts:
            sort = sorts[0] if isinstance(sorts[0], dict) else {}
            key_name = sort.get("propertyName")
            if key_name not in schema and key_name not in READ_ONLY:
                raise validation_error(f"sorts: unknown property {key_name}", "PROPERTY_DOESNT_EXIST", key_name)
            descending = sort.get("direction") == "DESCENDING"
        rows.sort(key=lambda r: _sortable(r["properties"].get(key_name), schema.get(key_name)), reverse=descending)
        wanted = body.get("properties") or None
        page = [self._view(object_type, r, wanted) for r in rows[after:after + limit]]
        answer: dict[str, Any] = {"total": len(rows), "results": page}
        if after + limit < min(len(rows), MAX_SEARCH_RESULTS):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return 200, answer

    @staticmethod
    def _filters(group: Any, schema: dict[str, Prop]) -> list[dict[str, Any]]:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or not 1 <= len(filters) <= 6:
            raise validation_error("each filter group needs 1 to 6 filters", "INVALID_FILTER_GROUP")
        for f in filters:
            name, op = f.get("propertyName") if isinstance(f, dict) else None, f.get("operator") if isinstance(f, dict) else None
            if name not in schema and name not in READ_ONLY:
                raise validation_error(f"There was a problem with the request: unknown property {name}",
                                       "PROPERTY_DOESNT_EXIST", str(name))
            if op not in OPERATORS:
                raise validation_error(f"Unknown operator {op}", "INVALID_OPERATOR", name)
            if op in ("IN", "NOT_IN") and not isinstance(f.get("values"), list):
                raise validation_error(f"{op} needs `values`", "INVALID_FILTER", name)
            if op == "BETWEEN" and ("value" not in f or "highValue" not in f):
                raise validation_error("BETWEEN needs `value` and `highValue`", "INVALID_FILTER", name)
            if op not in ("IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY") and "value" not in f:
                raise validation_error(f"{op} needs `value`", "INVALID_FILTER", name)
        return filters

    @staticmethod
    def _match(record: dict[str, Any], f: dict[str, Any]) -> bool:
        value = record["properties"].get(f["propertyName"])
        op = f["operator"]
        if op == "HAS_PROPERTY":
            return value not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return value in (None, "")
        if op in ("IN", "NOT_IN"):
            inside = str(value).lower() in {str(v).lower() for v in f["values"]} if value is not None else False
            return inside if op == "IN" else not inside
        if value in (None, ""):
            return op in ("NEQ", "NOT_CONTAINS_TOKEN")
        if op == "CONTAINS_TOKEN":
            return str(f["value"]).lower().strip("*") in str(value).lower()
        if op == "NOT_CONTAINS_TOKEN":
            return str(f["value"]).lower().strip("*") not in str(value).lower()
        if op in ("EQ", "NEQ"):
            same = str(value).lower() == str(f["value"]).lower()
            return same if op == "EQ" else not same

        def comparable(v: Any) -> Any:
            try:
                return (0, float(v))
            except (TypeError, ValueError):
                return (1, str(v))

        a = comparable(value)
        if op == "BETWEEN":
            return comparable(f["value"]) <= a <= comparable(f["highValue"])
        b = comparable(f["value"])
        return {"LT": a < b, "LTE": a <= b, "GT": a > b, "GTE": a >= b}[op]

    def associate(self, request: Request, _: Any) -> tuple[int, Any]:
        from_type, to_type = self._type(request), request.path_params["to_type"]
        if to_type not in SCHEMAS or (from_type, to_type) not in ASSOCIATION_TYPES:
            raise validation_error(f"{from_type} cannot be associated with {to_type}", "INVALID_ASSOCIATION")
        from_id, to_id = request.path_params["record_id"], request.path_params["to_id"]
        self._find(from_type, from_id, None)
        self._find(to_type, to_id, None)
        self.associations.add((from_type, from_id, to_type, to_id))
        self.associations.add((to_type, to_id, from_type, from_id))
        stamp = _iso(self.now() * 1000)

        def result(a: str, a_id: str, b: str, b_id: str) -> dict[str, Any]:
            return {"from": {"id": a_id}, "to": {"id": b_id}, "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": ASSOCIATION_TYPES[(a, b)]}}

        return 200, {"status": "COMPLETE", "results": [result(from_type, from_id, to_type, to_id),
                                                       result(to_type, to_id, from_type, from_id)],
                     "startedAt": stamp, "completedAt": stamp}

    def list_associations(self, request: Request, _: Any) -> tuple[int, Any]:
        from_type, to_type = self._type(request), request.path_params["to_type"]
        from_id = request.path_params["record_id"]
        self._find(from_type, from_id, None)
        linked = sorted(b_id for a, a_id, b, b_id in self.associations if (a, a_id, b) == (from_type, from_id, to_type))
        return 200, {"results": [{"toObjectId": int(i), "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": ASSOCIATION_TYPES[(from_type, to_type)], "label": None}]}
            for i in linked]}


def _sortable(value: Any, prop: Prop | None) -> tuple[int, Any]:
    """Empty values first, then numbers numerically (number properties and ids), then text."""
    if value in (None, ""):
        return (0, 0)
    if prop is None or prop.type == "number":
        try:
            return (1, float(value))
        except ValueError:
            pass
    return (2, str(value))


def create_app() -> Starlette:
    """A fresh fake (the connector's ``sandbox`` factory)."""
    return FakeHubSpot().app
