"""The FastAPI application: includes the routers, nothing else."""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI

from api import errors
from api.routers import flows, health, runs
from api.state import ServiceState
from engine.runtime import FlowEngine

EXAMPLES = Path(__file__).resolve().parent.parent / "flows"


def create_app(database_url: str | None = None, load_examples: bool = False) -> FastAPI:
    """Build the service; the engine starts with the app's lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServiceState(FlowEngine(database_url))
        if load_examples:
            state.load_examples(EXAMPLES)
        app.state.flowlink = state
        yield
        await state.close()

    app = FastAPI(title="Flowlink", version="0.1.0", openapi_url="/api/openapi.json", docs_url="/api/docs", lifespan=lifespan)
    errors.install(app)
    for module in (health, flows, runs):
        app.include_router(module.router)
    return app
