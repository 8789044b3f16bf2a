"""The engine facade: database, recorder, connections and lanes behind one object."""
from __future__ import annotations

import uuid
from typing import Any, Callable

from sqlalchemy import Engine as SqlEngine

from connectors.sdk import ConnectorRegistry, RateLimiter, TokenCache, default_registry
from engine.credentials import ConnectionStore, StoreConnections
from engine.interpreter import ConnectionResolver, Interpreter
from engine.model import Flow
from engine.records import FanOutRecorder, Recorder, RunRecord
from engine.store.db import make_engine, migrate
from engine.store.flows import FlowStore
from engine.store.recorder import SqlRecorder
from engine.store.runs import RunStore
from engine.validation import Issue, load_flow


class FlowInvalid(ValueError):
    """A definition failed validation; `issues` say where and why."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(str(i) for i in issues))
        self.issues = issues


class FlowEngine:
    """Validates and runs flows, persisting history to the configured database."""

    def __init__(
        self,
        database_url: str | None = None,
        registry: ConnectorRegistry | None = None,
        connections: ConnectionResolver | None = None,
        sql_engine: SqlEngine | None = None,
    ) -> None:
        self.db = sql_engine or make_engine(database_url)
        migrate(self.db)
        self.registry = registry or default_registry()
        self.recorder = SqlRecorder(self.db)
        self.runs = RunStore(self.db)
        self.flows = FlowStore(self.db)
        self.connection_store = ConnectionStore(self.db)
        self.connections = connections or StoreConnections(self.connection_store)
        # one token cache and one rate limiter for every run: tokens and budgets are shared
        # by all runs of this process and, through the database, by every worker process
        self.token_cache = TokenCache(self.db, keyring=self.connection_store.keyring)
        self.rate_limiter = RateLimiter(self.db)
        #: an extra recorder every run also reports to (the service's metrics); needs `watch(run_id, flow)`
        self.metrics_recorder: Any = None

    def compile(self, definition: dict[str, Any], check_connections: bool = True) -> Flow:
        """Validate and compile a definition; raise FlowInvalid with every issue."""
        kinds = self.connection_store.kinds() if check_connections else None
        result = load_flow(definition, self.registry, kinds)
        if not result.ok:
            raise FlowInvalid(result.issues)
        return result.flow

    async def run(
        self,
        flow: Flow,
        trigger: Any = None,
        *,
        lane: str | None = None,
        run_id: str | None = None,
        observer: Recorder | None = None,
        log: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> RunRecord:
        """Run a compiled flow in its lane (or `lane`); history goes to the database in batches."""
        lane = lane or flow.lane
        run_id = run_id or str(uuid.uuid4())
        recorder: Recorder = FanOutRecorder(self.recorder, observer) if observer else self.recorder
        if self.metrics_recorder is not None:
            self.metrics_recorder.watch(run_id, flow)
            recorder = FanOutRecorder(recorder, self.metrics_recorder)
        if lane == "tracked":
            from engine.tracked import run_tracked  # imports Prefect's flow machinery only when used

            return await run_tracked(flow, trigger, run_id=run_id, recorder=recorder, connections=self.connections, log=log,
                                     token_cache=self.token_cache, rate_limiter=self.rate_limiter, **kwargs)
        interpreter = Interpreter(recorder, self.connections, log=log, token_cache=self.token_cache,
                                  rate_limiter=self.rate_limiter)
        return await interpreter.execute(flow, trigger, run_id=run_id, lane="event", **kwargs)

    def flush(self) -> None:
        """Wait until every record so far is committed."""
        self.recorder.flush()

    def close(self) -> None:
        """Flush history and release the database."""
        self.recorder.close()
        self.db.dispose()
