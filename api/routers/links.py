"""Tracked campaign links: ``GET /r/{code}`` (public) and ``POST /api/links`` (editor).

A link is a row of the ``tracked_links`` data table: an unguessable code for one campaign,
customer and target URL. The redirect records the click and answers 302 to the target, which
must be an http(s) URL registered in the campaign's ``target_urls`` (``campaigns`` table):
the check is made on every click, not only when the link is made, so a code written by a flow
step or by hand can never turn Flowlink into an open redirect, and removing a URL from the
campaign disables its links. Counts live in data tables, visible in the tables browser:
``tracked_links.clicks`` (every visit of a link), ``campaign_clicks`` (one row per customer
and campaign: unique clicks), and on the campaign ``clicks``, ``unique_clicks`` and
``click_rate`` (unique clicks / delivered). Tables are created from flows/tables/*.json.
"""
from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import PlainTextResponse, RedirectResponse
from pydantic import BaseModel, Field

from api.deps import get_state
from api.errors import error_body
from api.state import ServiceState
from engine.errors import NotFound
from engine.store.datatables import Conflict, DataTables

router = APIRouter(prefix="/api/links", tags=["links"])
redirects = APIRouter(tags=["links"])

#: Codes made here are 24 URL-safe characters (144 random bits); flows may write their own
#: (e.g. a uuid without dashes). Anything else is answered 404 without a database read.
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
LINKS, CLICKS, CAMPAIGNS = "tracked_links", "campaign_clicks", "campaigns"


class LinkCreate(BaseModel):
    model_config = {"extra": "forbid"}

    campaign_id: str = Field(min_length=1, max_length=64)
    external_userid: str = Field(min_length=1, max_length=64, description="The customer the link is for.")
    url: str = Field(min_length=1, max_length=2000, description="The target: one of the campaign's target_urls.")


class LinkRead(BaseModel):
    code: str
    campaign_id: str
    external_userid: str
    url: str
    path: str = Field(description="/r/<code>: put it behind the address customers reach Flowlink at.")
    short_url: str = Field(description="The link on the address this request came in on.")


def target_allowed(campaign: dict[str, Any], url: str) -> bool:
    """Whether `url` is an http(s) URL registered (exactly) in the campaign's target_urls."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return url in (campaign.get("target_urls") or [])


def rate(part: Any, whole: Any) -> float | None:
    """part / whole rounded to 4 places, None while nothing was delivered."""
    return round((part or 0) / whole, 4) if whole else None


def record_click(tables: DataTables, link: dict[str, Any]) -> None:
    """Count a visit of `link`: the link's clicks, the customer's clicks in the campaign (the first
    one is a unique click) and the campaign's totals and click-through rate. Each count is an
    atomic increment, so concurrent clicks are all counted."""
    campaign_id, customer = link["campaign_id"], link["external_userid"]
    tables.increment(LINKS, link["code"], "clicks", actor="redirect")
    key = f"{campaign_id}:{customer}"
    try:  # the key is unique: of two first clicks at once, one inserts and the other counts
        tables.insert(CLICKS, {"click_key": key, "campaign_id": campaign_id, "external_userid": customer, "clicks": 1},
                      actor="redirect")
        tables.increment(CAMPAIGNS, campaign_id, "unique_clicks", actor="redirect")
    except Conflict:
        tables.increment(CLICKS, key, "clicks", actor="redirect")
    tables.increment(CAMPAIGNS, campaign_id, "clicks", actor="redirect")
    campaign = tables.get(CAMPAIGNS, key_value=campaign_id)
    tables.update(CAMPAIGNS, id=campaign["_id"],
                  values={"click_rate": rate(campaign.get("unique_clicks"), campaign.get("sent"))}, actor="redirect")


def _not_found() -> PlainTextResponse:
    return PlainTextResponse("This link does not exist or has expired.", status_code=404,
                             headers={"Cache-Control": "no-store"})


@redirects.get("/r/{code}", include_in_schema=False)
def follow(code: str, state: ServiceState = Depends(get_state)) -> Any:
    """Record the click and redirect (302) to the link's registered target; 404 otherwise."""
    if not CODE_PATTERN.match(code):
        return _not_found()
    tables = DataTables(state.engine.db)
    try:
        link = tables.get(LINKS, key_value=code)
        campaign = tables.get(CAMPAIGNS, key_value=link["campaign_id"])
    except NotFound:
        return _not_found()
    if not target_allowed(campaign, link["url"]):
        return _not_found()
    record_click(tables, link)
    return RedirectResponse(link["url"], status_code=302,
                            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@router.post("", status_code=201, response_model=LinkRead)
def create_link(body: LinkCreate, request: Request, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    """The tracked link of a customer, campaign and registered target (made once, then reused)."""
    tables = DataTables(state.engine.db)
    try:
        campaign = tables.get(CAMPAIGNS, key_value=body.campaign_id)
    except NotFound:
        raise HTTPException(404, error_body("NotFound", f"no campaign {body.campaign_id!r}")) from None
    if not target_allowed(campaign, body.url):
        raise HTTPException(422, error_body("InvalidInput", "url: not an http(s) URL registered in the campaign's target_urls"))
    where = {"campaign_id": body.campaign_id, "external_userid": body.external_userid, "url": body.url}
    found = tables.query(LINKS, where, limit=1)["rows"]
    link = found[0] if found else tables.insert(LINKS, {**where, "code": secrets.token_urlsafe(18), "clicks": 0}, actor="api")
    path = f"/r/{link['code']}"
    return {**where, "code": link["code"], "path": path, "short_url": str(request.base_url).rstrip("/") + path}
