"""The FastAPI application: includes the routers, nothing else."""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from fastapi import Depends, FastAPI

from api import errors
from api.deps import authorize
from api.fastpath import WebhookFastPath
from api.routers import api_keys, audit, auth, events, flows, health, hooks, runs, steps, users
from api.routers import connections, connectors, metrics
from api.routers import tables
from api.routers import ui
from api.routers import links, templates
from api.routers import erasures
from api.state import ServiceState
from engine.process import freeze_startup_heap
from engine.runtime import FlowEngine
from engine.store.datatables import DataTables, load_definitions
from engine.users import first_start

EXAMPLES = Path(__file__).resolve().parent.parent / "flows"


def dispatch_enabled() -> bool:
    """Whether this API process also executes runs (FLOWLINK_DISPATCH, default on). Off in the
    scaled-out topology, where `flowlink worker` processes execute and the API only accepts."""
    return os.environ.get("FLOWLINK_DISPATCH", "1").strip().lower() not in ("0", "false", "no", "off")


def create_app(database_url: str | None = None, load_examples: bool = False) -> FastAPI:
    """Build the service; the engine starts with the app's lifespan."""
    dispatch = dispatch_enabled()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(FlowEngine(database_url))
        if load_examples:
            state.load_examples(EXAMPLES)
            load_definitions(DataTables(state.engine.db), EXAMPLES / "tables")  # flows/tables/*.json
        first_start(state.users)  # no user yet: create `admin` (FLOWLINK_ADMIN_PASSWORD or a printed one-time password)
        app.state.flowlink = state
        state.inbox.listen()  # PostgreSQL: hear about new events and runs finished by other processes
        if dispatch:
            await state.inbox.start()
            await state.scheduler.start()
            await state.maintenance.start()
        freeze_startup_heap()  # full GC passes would otherwise walk ~200k start-up objects (engine/process.py)
        yield
        await state.close()

    app = FastAPI(title="Flowlink", version="0.1.0", openapi_url="/api/openapi.json", docs_url="/api/docs", lifespan=lifespan)
    errors.install(app)
    app.add_middleware(WebhookFastPath)  # /hooks deliveries skip FastAPI's routing (api/fastpath.py)
    # /hooks: each webhook authenticates its caller itself (token/HMAC from the flow's trigger), not as a user;
    # the routes document it in OpenAPI (the fast path answers first, with the same handler)
    app.include_router(hooks.router)
    # every /api router is checked by `authorize` against api/permissions.py (public routes included there)
    for module in (health, auth, flows, runs, events, users, api_keys, audit, steps, connections, connectors, templates):
        app.include_router(module.router, dependencies=[Depends(authorize)])
    app.include_router(tables.router, dependencies=[Depends(authorize)])  # data tables (docs/tables.md)
    app.include_router(erasures.router, dependencies=[Depends(authorize)])  # right to erasure (admin)
    # /metrics: Prometheus text format, public like /api/health (put it behind your network policy)
    app.include_router(metrics.router)
    # tracked campaign links: POST /api/links (editor) makes one; GET /r/{code} is public (records the click, 302)
    app.include_router(links.router, dependencies=[Depends(authorize)])
    app.include_router(links.redirects)
    # the web editor's /api helpers, then its pages: the catch-all `/{path}` comes last so every route above wins
    app.include_router(ui.router, dependencies=[Depends(authorize)])
    app.include_router(ui.static)
    return app
