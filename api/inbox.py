"""The webhook inbox: intake (route, authenticate, parse, dedupe, commit) and the dispatcher.

Every accepted delivery is committed to `webhook_events` (status `accepted`) before the HTTP
answer. A dispatcher in each service process claims accepted events with an atomic
conditional UPDATE (status -> `running`, `claimed_by`, `claimed_until` lease, renewed while
the run goes on), runs them with bounded concurrency and marks them `done` or `dead` (a failed
run; replayable). Events whose lease expired (the process died) are claimed again. Runs started
from the inbox checkpoint: after each action step the history is committed (a group commit shared
by concurrent runs) before the next step starts. A run interrupted by a crash is resumed under the
same run id: it replays from the start, reusing the recorded outputs of the steps the interrupted
attempt completed instead of running them again (the interrupted attempt is kept as a `cancelled`
run). Only the step that was under way at the crash can run twice.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import and_, any_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from api import notify
from api.batching import Batcher
from api.errors import error_body
from connectors.sdk.triggers import RequestInfo, WebhookRejected, WebhookResponse, WebhookTrigger
from engine.errors import StepError
from engine.expressions import ExpressionError, compile_expression
from engine.model import Flow
from engine.pii import MASK
from engine.records import RunRecord
from engine.runtime import FlowEngine
from engine.store import audit
from engine.store.tables import runs, step_runs, webhook_events as events

log = logging.getLogger("flowlink.inbox")

DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_TOKEN_HEADER = "X-Webhook-Token"
DEFAULT_SIGNATURE_HEADER = "X-Signature"
FINISHED = ("done", "dead")
FLOW_RECHECK = 30.0  # s between looks at whether a cached flow version still exists
SECRET_TTL = 10.0  # s a webhook's decrypted auth connection is reused (rotation shows within this)


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _fail(status: int, kind: str, message: str, **extra: Any) -> HTTPException:
    return HTTPException(status, error_body(kind, message, **extra))


@dataclass
class Hook:
    """An active webhook flow, compiled once per version."""

    flow_id: str
    version: int
    trigger: dict[str, Any]
    flow: Flow
    callback: WebhookTrigger | None = None  # a connector's callback trigger (`<connector>.<name>`)


# ------------------------------------------------------------------------------ parsing


def parse_body(raw: bytes, content_type: str) -> Any:
    """The body as the flow sees it: JSON, form fields, XML text or raw text."""
    media = content_type.split(";", 1)[0].strip().lower()
    if not raw:
        return None
    if media == "application/json" or media.endswith("+json"):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise _fail(400, "MalformedJson", "the body is not UTF-8") from None
            except json.JSONDecodeError as exc:
                raise _fail(400, "MalformedJson", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                            line=exc.lineno, column=exc.colno) from None
            raise _fail(400, "MalformedJson", "malformed JSON") from None
    text = raw.decode("utf-8", errors="replace")
    if media == "application/x-www-form-urlencoded":
        fields = parse_qs(text, keep_blank_values=True)
        return {k: v[0] if len(v) == 1 else v for k, v in fields.items()}
    if media in ("application/xml", "text/xml") or media.endswith("+xml"):
        return {"content_type": media, "text": text}
    return text


def _query(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in out:
            out[key] = out[key] if isinstance(out[key], list) else [out[key]]
            out[key].append(value)
        else:
            out[key] = value
    return out


def _bounded_key(key: str | None) -> str | None:
    """A dedupe key that fits the column (long ones are hashed)."""
    if key is None or key == "":
        return None
    return key if len(key) <= 200 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def to_response(answer: WebhookResponse) -> Response:
    """A connector's WebhookResponse as an HTTP response: text/bytes as is, anything else JSON."""
    headers = dict(answer.headers)
    if isinstance(answer.body, (str, bytes)):
        media = headers.pop("content-type", None) or headers.pop("Content-Type", None) or "text/plain; charset=utf-8"
        return Response(answer.body, status_code=answer.status, headers=headers, media_type=media)
    if answer.body is None:
        return Response(b"", status_code=answer.status, headers=headers)
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


# ------------------------------------------------------------------------------ the inbox


class Inbox:
    """Webhook intake and the dispatcher of one service process."""

    def __init__(self, engine: FlowEngine) -> None:
        self.engine = engine
        self.db = engine.db
        self.max_bytes = int(_env_number("FLOWLINK_WEBHOOK_MAX_BYTES", DEFAULT_MAX_BYTES))
        self.max_concurrent = max(1, int(_env_number("FLOWLINK_MAX_CONCURRENT_RUNS", 32)))
        self.lease = max(1.0, _env_number("FLOWLINK_INBOX_LEASE", 30))
        self.poll_interval = max(0.05, _env_number("FLOWLINK_INBOX_POLL", 0.5))
        self.cache_ttl = _env_number("FLOWLINK_WEBHOOK_CACHE_TTL", 2.0)
        self.worker_id = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._hooks: dict[str, Hook] = {}
        self._hooks_at = 0.0  # 0: stale
        self._generation = 0
        self._compiled: dict[tuple[str, int], Flow] = {}
        self._secrets: dict[str, tuple[float, dict[str, Any]]] = {}
        self._refresh_lock = asyncio.Lock()
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.waiters: dict[str, list[asyncio.Future[RunRecord]]] = {}
        self.wake = asyncio.Event()
        self._stopping = False
        self._lease_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-lease")
        self._tasks: list[asyncio.Task[None]] = []
        self.metrics: Any = None  # api.metrics.Metrics, set by the service: counts deliveries
        # group commit: concurrent deliveries share one INSERT transaction, finished events one UPDATE
        self._notify = notify.supported(self.db)  # PostgreSQL: wake other processes (api/notify.py)
        self._intake: Batcher[tuple[Hook, str, str | None, dict[str, Any]], tuple[str, str, bool]] = Batcher(
            self._store_many, writers=int(_env_number("FLOWLINK_INTAKE_WRITERS", 4 if self._notify else 1)))
        self._finishing: Batcher[tuple[str, str, str | None], None] = Batcher(self._finish_many)
        self._flows: dict[tuple[str, int | None], tuple[int, float, Flow | None]] = {}
        self._flow_lookups: dict[tuple[str, int | None], asyncio.Future[Flow | None]] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._expired_checked_at = 0.0  # last look for events whose lease expired
        self._listener: notify.Listener | None = None
        self._remote_done: dict[str, list[asyncio.Event]] = {}
        engine.flows.listeners.append(self._flow_changed)

    # -------------------------------------------------------------------- flow look-up

    def _flow_changed(self, _flow_id: str) -> None:
        self._generation += 1
        self._hooks_at = 0.0

    def _compile(self, flow_id: str, version: int, definition: dict[str, Any]) -> Flow:
        key = (flow_id, version)
        flow = self._compiled.get(key)
        if flow is None:
            flow = self._compiled[key] = self.engine.compile(definition, check_connections=False)
        return flow

    def _load_hooks(self) -> dict[str, Hook]:
        hooks: dict[str, Hook] = {}
        for path, definition in self.engine.flows.webhook_flows().items():
            try:
                flow = self._compile(definition["id"], definition.get("version", 0), definition)
            except Exception:  # an invalid stored flow must not take every webhook down
                log.exception("active webhook flow %s does not compile", definition.get("id"))
                continue
            callback = self._callback_trigger(definition["trigger"]["type"])
            if callback is False:
                log.error("active flow %s: '%s' is not an installed webhook trigger", definition["id"], definition["trigger"]["type"])
                continue
            hooks[path] = Hook(definition["id"], definition.get("version", 0), definition["trigger"], flow, callback or None)
        return hooks

    def _callback_trigger(self, kind: str) -> WebhookTrigger | None | bool:
        """The connector trigger a `<connector>.<name>` type names (None for plain webhooks,
        False when it is not an installed webhook trigger)."""
        if kind == "webhook":
            return None
        name, _, trigger_name = kind.partition(".")
        connector = self.engine.registry.connectors.get(name)
        found = (getattr(connector, "triggers", None) or {}).get(trigger_name)
        return found if isinstance(found, WebhookTrigger) else False

    async def hook(self, path: str) -> Hook | None:
        """The active flow serving `path` (cached). After a change made through this process the
        table is reloaded before the answer; when it is merely older than `cache_ttl` (changes
        made by other processes) it is reloaded in the background while requests go on with the
        current one, so a reload never stalls the deliveries arriving meanwhile."""
        if not self._hooks_at:
            await self._refresh_hooks()
        elif time.monotonic() - self._hooks_at > self.cache_ttl and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self._refresh_hooks(), name="webhook-table-refresh")
        return self._hooks.get(path)

    async def _refresh_hooks(self) -> None:
        async with self._refresh_lock:
            if self._hooks_at and time.monotonic() - self._hooks_at <= self.cache_ttl:
                return  # another caller just reloaded it
            started, generation = time.monotonic(), self._generation
            try:
                hooks = await asyncio.to_thread(self._load_hooks)
            except Exception:
                if not self._hooks_at:
                    raise
                log.exception("reloading the webhook table failed; serving the previous one")
                return
            self._hooks = hooks
            # a change during the load leaves the cache stale, so it reloads next time
            self._hooks_at = started if generation == self._generation else 0.0

    def _cached_connection(self, connection: str) -> dict[str, Any] | None:
        """A connection's decrypted fields if read less than SECRET_TTL s ago, else None."""
        cached = self._secrets.get(connection)
        return cached[1] if cached is not None and time.monotonic() - cached[0] <= SECRET_TTL else None

    def _connection(self, connection: str) -> dict[str, Any]:
        """A connection's decrypted fields, cached for a few seconds (rotation shows within SECRET_TTL s)."""
        fields = self._cached_connection(connection)
        if fields is None:
            fields = self.engine.connection_store.fields(connection)
            self._secrets[connection] = (time.monotonic(), fields)
        return fields

    def _secret(self, connection: str, field: str) -> str:
        value = self._connection(connection).get(field)
        if not isinstance(value, str) or not value:
            raise ValueError(f"connection '{connection}' has no '{field}' field")
        return value

    # -------------------------------------------------------------------- intake

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise _fail(413, "PayloadTooLarge", f"the body is larger than {self.max_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise _fail(413, "PayloadTooLarge", f"the body is larger than {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _authenticate(self, hook: Hook, request: Request, raw: bytes) -> set[str]:
        """Check the webhook's auth; returns the header/query names that carried a secret."""
        auth = hook.trigger.get("auth") or {"type": "none"}
        kind = auth.get("type", "none")
        if kind == "none":
            return set()
        field = "token" if kind == "token" else "secret"
        try:
            if self._cached_connection(auth["connection"]) is not None:  # no thread hop for a cached secret
                secret = self._secret(auth["connection"], field)
            else:
                secret = await asyncio.to_thread(self._secret, auth["connection"], field)
        except Exception as exc:  # never echo the secret; the message names only the connection
            log.error("webhook %s: cannot read its %s: %s", hook.flow_id, field, exc)
            raise _fail(500, "WebhookMisconfigured", f"the webhook's {field} is not available") from None
        denied = _fail(401, "Unauthorized", "authentication failed")
        prefix = auth.get("prefix", "")
        if kind == "token":
            if auth.get("query"):
                given, carrier = request.query_params.get(auth["query"]), "query:" + auth["query"]
            else:
                header = auth.get("header", DEFAULT_TOKEN_HEADER)
                given, carrier = request.headers.get(header), "header:" + header.lower()
            if given is None or not given.startswith(prefix):
                raise denied
            if not hmac.compare_digest(given[len(prefix):].encode(), secret.encode()):
                raise denied
            return {carrier}
        header = auth.get("header", DEFAULT_SIGNATURE_HEADER)
        given = request.headers.get(header)
        if given is None or not given.startswith(prefix):
            raise denied
        message = raw
        if auth.get("timestamp_header"):
            stamp = request.headers.get(auth["timestamp_header"], "")
            try:
                age = abs(time.time() - float(stamp))
            except ValueError:
                raise denied from None
            if age > float(auth.get("tolerance", 300)):
                raise _fail(401, "Unauthorized", "the signed timestamp is outside the allowed window")
            message = stamp.encode() + b"." + raw
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given[len(prefix):].strip().lower().encode(), expected.encode()):
            raise denied
        return set()

    async def deliver(self, request: Request, path: str) -> Response:
        """`intake`, counting a rejected delivery (not found, wrong method, unauthenticated, too
        large, malformed) in the metrics before its HTTPException goes on to the caller."""
        try:
            return await self.intake(request, path)
        except HTTPException:
            if self.metrics is not None:
                hook = self._hooks.get(path)
                self.metrics.webhook(hook.flow_id if hook is not None else "", "rejected")
            raise

    async def intake(self, request: Request, path: str) -> Response:
        """Handle one delivery to /hooks/{path}."""
        hook = await self.hook(path)
        if hook is None:
            raise _fail(404, "NotFound", f"no active webhook at '/hooks/{path}'")
        if hook.callback is not None:
            return await self._intake_callback(hook, request, path)
        method = hook.trigger.get("method", "POST")
        if request.method != method:
            raise HTTPException(405, error_body("MethodNotAllowed", f"this webhook accepts {method}"), headers={"Allow": method})
        raw = await self._read_body(request)
        carriers = await self._authenticate(hook, request, raw)
        body = parse_body(raw, request.headers.get("content-type", ""))
        headers = {k: v for k, v in request.headers.items() if "header:" + k not in carriers}
        query = {k: v for k, v in _query(request).items() if "query:" + k not in carriers}
        dedupe = self._dedupe_key(hook, headers, query, body)
        payload = {"body": body, "headers": headers, "query": query, "method": request.method, "path": path}
        event_id, run_id, duplicate = await self._intake.submit((hook, path, dedupe, payload))
        if self.metrics is not None:
            self.metrics.webhook(hook.flow_id, "duplicate" if duplicate else "accepted")
        if not duplicate:
            self.wake.set()
        ids = {"event_id": event_id, "run_id": run_id}
        if hook.trigger.get("respond", "immediately") == "last":
            record = await self.wait_result(event_id, run_id, float(hook.trigger.get("response_timeout", 10)), check_first=duplicate)
            if record is not None:
                id_headers = {"X-Flowlink-Event-Id": event_id, "X-Flowlink-Run-Id": run_id}
                if record.status == "succeeded":
                    return JSONResponse(record.output, status_code=200, headers=id_headers)
                error = record.error or {}
                return JSONResponse(error_body("RunFailed", f"the run failed: {error.get('type')}: {error.get('message')}", **ids),
                                    status_code=500, headers=id_headers)
        return JSONResponse({**ids, "status": "accepted", **({"duplicate": True} if duplicate else {})}, status_code=202)

    async def _intake_callback(self, hook: Hook, request: Request, path: str) -> Response:
        """A connector's callback: the trigger verifies, answers handshakes and parses events;
        each event is committed (deduplicated by the trigger's key) before the acknowledgement."""
        assert hook.callback is not None
        raw = await self._read_body(request)
        connection = None
        if hook.trigger.get("connection"):
            try:
                connection = dict(await asyncio.to_thread(self._connection, hook.trigger["connection"]))
            except Exception as exc:
                log.error("callback flow %s: cannot read connection '%s': %s", hook.flow_id, hook.trigger["connection"], exc)
                raise _fail(500, "WebhookMisconfigured", f"the callback's connection '{hook.trigger['connection']}' is not available") from None
        info = RequestInfo(method=request.method, path=path, headers=dict(request.headers), query=dict(request.query_params),
                           body=raw, connection=connection, config=dict(hook.trigger.get("config") or {}))
        try:
            result = await hook.callback.handle(info)
        except WebhookRejected as exc:
            await asyncio.to_thread(self._audit_rejection, hook, path, str(exc), request.client.host if request.client else None)
            raise _fail(401, "WebhookRejected", str(exc)) from None
        except StepError as exc:  # InvalidInput from parse: a malformed delivery
            raise _fail(400, "InvalidPayload", str(exc)) from None
        if result.handshake:
            return to_response(result.response)
        stored = await asyncio.gather(*(self._intake.submit((hook, path, _bounded_key(hook.callback.event_key(event)), event))
                                        for event in result.events))
        fresh = [ids for ids in stored if not ids[2]]
        if self.metrics is not None:
            for ids in stored:
                self.metrics.webhook(hook.flow_id, "duplicate" if ids[2] else "accepted")
        if fresh:
            self.wake.set()
        if hook.trigger.get("respond", "immediately") == "last" and len(stored) == 1:
            event_id, run_id, duplicate = stored[0]
            record = await self.wait_result(event_id, run_id, float(hook.trigger.get("response_timeout", 4)), check_first=duplicate)
            if record is not None and record.status == "succeeded":
                reply = await hook.callback.reply_response(info, record.output)
                if reply is not None:
                    return to_response(reply)
        return to_response(result.response)

    def _audit_rejection(self, hook: Hook, path: str, reason: str, remote: str | None) -> None:
        with self.db.begin() as conn:
            audit.record(conn, f"webhook:{path.partition('/')[0]}", "webhook.rejected", "flow", hook.flow_id,
                         details={"path": f"/hooks/{path}", "reason": reason[:500], "remote": remote})

    @staticmethod
    def _dedupe_key(hook: Hook, headers: dict[str, Any], query: dict[str, Any], body: Any) -> str | None:
        text = hook.trigger.get("dedupe_key")
        if not text:
            return None
        try:
            value = compile_expression(text).search({"headers": headers, "query": query, "body": body})
        except ExpressionError as exc:
            raise _fail(400, "InvalidPayload", f"the dedupe key cannot be computed: {exc}") from None
        if value is None or value == "":
            return None
        return _bounded_key(value if isinstance(value, str) else orjson.dumps(value).decode())

    def _store(self, hook: Hook, path: str, dedupe: str | None, payload: dict[str, Any]) -> tuple[str, str, bool]:
        """Commit the event; for a duplicate return the original's ids instead."""
        if dedupe is not None:
            found = self._existing(hook.flow_id, dedupe)
            if found:
                return found[0], found[1], True
        event_id, run_id, now = str(uuid.uuid4()), str(uuid.uuid4()), time.time()
        try:
            with self.db.begin() as conn:
                conn.execute(events.insert().values(
                    id=event_id, flow_id=hook.flow_id, flow_version=hook.version, path=path[:200], dedupe_key=dedupe,
                    payload=orjson.dumps(payload).decode(), status="accepted", run_id=run_id, attempts=0,
                    received_at=now, updated_at=now))
                notify.notify_inbox(conn)
        except IntegrityError:  # a concurrent delivery with the same dedupe key won the race
            found = self._existing(hook.flow_id, dedupe) if dedupe is not None else None
            if not found:
                raise
            return found[0], found[1], True
        return event_id, run_id, False

    def _store_many(self, items: list[tuple[Hook, str, str | None, dict[str, Any]]]) -> list[tuple[str, str, bool]]:
        """Commit a batch of events in one transaction (each result as `_store` gives it).

        Duplicates are found with one look-up for the whole batch, and within the batch (the
        later delivery refers to the first). A unique-key race with another process rolls the
        batch back and stores its events one by one, which settles each race as `_store` does.
        """
        keys = {(hook.flow_id, dedupe) for hook, _, dedupe, _ in items if dedupe is not None}
        now = time.time()
        try:
            with self.db.begin() as conn:
                known: dict[tuple[str, str], tuple[str, str]] = {}
                if keys:
                    # `flow_id = ? AND dedupe_key IN (...)` per flow walks the unique index; a row-value
                    # `(flow_id, dedupe_key) IN (...)` made PostgreSQL scan the table (5-25 ms a batch)
                    by_flow: dict[str, list[str]] = {}
                    for flow_id, dedupe in keys:
                        by_flow.setdefault(flow_id, []).append(dedupe)
                    found = conn.execute(select(events.c.flow_id, events.c.dedupe_key, events.c.id, events.c.run_id).where(
                        or_(*(and_(events.c.flow_id == flow_id, events.c.dedupe_key.in_(dedupes))
                              for flow_id, dedupes in by_flow.items()))))
                    known = {(row[0], row[1]): (row[2], row[3]) for row in found}
                rows, results = [], []
                for hook, path, dedupe, payload in items:
                    key = (hook.flow_id, dedupe)
                    if dedupe is not None and key in known:
                        results.append((*known[key], True))
                        continue
                    event_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
                    if dedupe is not None:
                        known[key] = (event_id, run_id)
                    rows.append({"id": event_id, "flow_id": hook.flow_id, "flow_version": hook.version, "path": path[:200],
                                 "dedupe_key": dedupe, "payload": orjson.dumps(payload).decode(), "status": "accepted",
                                 "run_id": run_id, "attempts": 0, "received_at": now, "updated_at": now})
                    results.append((event_id, run_id, False))
                if rows:
                    # with RETURNING, SQLAlchemy sends one multi-row INSERT (insertmanyvalues) instead of
                    # one statement per row: about a third less CPU per event here and in PostgreSQL
                    conn.execute(events.insert().returning(events.c.id), rows).all()
                    notify.notify_inbox(conn)
            return results
        except IntegrityError:
            if len(items) == 1 and items[0][2] is None:
                raise
        out: list[Any] = []
        for hook, path, dedupe, payload in items:
            try:
                out.append(self._store(hook, path, dedupe, payload))
            except Exception as exc:  # this delivery alone fails
                out.append(exc)
        return out

    def _existing(self, flow_id: str, dedupe: str) -> tuple[str, str] | None:
        with self.db.connect() as conn:
            row = conn.execute(select(events.c.id, events.c.run_id).where(
                events.c.flow_id == flow_id, events.c.dedupe_key == dedupe)).first()
        return (row[0], row[1]) if row else None

    async def wait_result(self, event_id: str, run_id: str, timeout: float, check_first: bool = False) -> RunRecord | None:
        """The finished run of an event, or None if it takes longer than `timeout` (or was not run).

        A run of this process resolves the wait directly; a run of another process is seen in the
        database, looked at when that process notifies (PostgreSQL) and at least every 0.5 s
        (every max(2 s, FLOWLINK_INBOX_POLL) while the notification connection is up)."""
        future: asyncio.Future[RunRecord] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(event_id, []).append(future)
        remote = asyncio.Event()
        self._remote_done.setdefault(event_id, []).append(remote)
        self.listen()
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                if not check_first:
                    interval = max(2.0, self.poll_interval) if self._listener is not None and self._listener.connected.is_set() else 0.5
                    signalled = asyncio.ensure_future(remote.wait())
                    try:
                        done, _ = await asyncio.wait({future, signalled}, timeout=min(interval, left),
                                                     return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        signalled.cancel()
                    if future in done:
                        return None if future.exception() else future.result()
                    remote.clear()
                check_first = False
                # run by another process (or earlier, for a duplicate): look in the database
                if await asyncio.to_thread(self._status, event_id) in FINISHED:
                    await asyncio.to_thread(self.engine.flush)
                    return await asyncio.to_thread(self.engine.runs.get, run_id)
            return None
        finally:
            waiting = self.waiters.get(event_id, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self.waiters.pop(event_id, None)
            signals = self._remote_done.get(event_id, [])
            if remote in signals:
                signals.remove(remote)
            if not signals:
                self._remote_done.pop(event_id, None)

    def listen(self) -> None:
        """Start the PostgreSQL LISTEN thread once (no-op on SQLite): new events wake the
        dispatcher, runs finished elsewhere wake `wait_result`."""
        if self._notify and self._listener is None and not self._stopping:
            self._listener = notify.Listener(self.db, self.wake.set, self._done_elsewhere)
            self._listener.start()

    def _done_elsewhere(self, event_ids: list[str]) -> None:
        for event_id in event_ids:
            for signal in self._remote_done.get(event_id, ()):
                signal.set()

    def _status(self, event_id: str) -> str | None:
        with self.db.connect() as conn:
            return conn.execute(select(events.c.status).where(events.c.id == event_id)).scalar()

    # -------------------------------------------------------------------- dispatcher

    async def start(self) -> None:
        """Start claiming events (including those a dead process left behind)."""
        self.listen()
        self._tasks = [asyncio.create_task(self._dispatch(), name="inbox-dispatch"),
                       asyncio.create_task(self._heartbeat(), name="inbox-heartbeat")]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let in-flight runs finish (bounded); hand the rest back to the inbox."""
        self._stopping = True
        if self._listener is not None:
            self._listener.stop()
        if self._refreshing is not None:
            self._refreshing.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()), timeout=grace)
        left = list(self.inflight)
        for task in list(self.inflight.values()):
            task.cancel()
        if self.inflight:
            await asyncio.gather(*self.inflight.values(), return_exceptions=True)
        if left:
            await asyncio.to_thread(self._release, left)

    def _release(self, ids: list[str]) -> None:
        with self.db.begin() as conn:
            conn.execute(update(events).where(events.c.id.in_(ids), events.c.claimed_by == self.worker_id,
                                              events.c.status == "running")
                         .values(status="accepted", claimed_by=None, claimed_until=None, updated_at=time.time()))

    async def _dispatch(self) -> None:
        while not self._stopping:
            self.wake.clear()
            free = self.max_concurrent - len(self.inflight)
            claimed: list[Any] = []
            if free > 0:
                try:
                    claimed = await asyncio.to_thread(self._claim, min(free, 100))
                except Exception:
                    log.exception("claiming webhook events failed")
                for row in claimed:
                    if row.id in self.inflight:  # our own lease lapsed (a stalled loop) and we won it back
                        continue
                    self.inflight[row.id] = asyncio.create_task(self._execute(row), name=f"event-{row.id}")
                if claimed and len(self.inflight) < self.max_concurrent:
                    continue  # there may be more waiting
            try:
                await asyncio.wait_for(self.wake.wait(), self.poll_interval)
            except asyncio.TimeoutError:
                pass

    def _claim(self, limit: int) -> list[Any]:
        """Claim up to `limit` events, oldest first: those whose lease expired (their process died;
        looked for at most every `lease / 3` s), then accepted ones.

        Each kind is one conditional UPDATE ... RETURNING whose inner SELECT walks the
        (status, received_at) index, so a claim costs the same with 10 or 100,000 events waiting
        (one query with `accepted OR expired` could not use the index: PostgreSQL scanned and
        sorted the whole backlog on every claim, ~13 ms for 20,000 events). Only one process wins
        each event: PostgreSQL skips rows another claimer has locked, SQLite has one writer at a
        time, and the outer condition is checked again on the locked row."""
        now = time.time()
        won: list[Any] = []
        if now - self._expired_checked_at >= self.lease / 3:
            self._expired_checked_at = now
            won = self._claim_where(and_(events.c.status == "running", events.c.claimed_until < now), limit, now)
        if len(won) < limit:
            won += self._claim_where(events.c.status == "accepted", limit - len(won), now)
        return won

    def _claim_where(self, claimable: Any, limit: int, now: float) -> list[Any]:
        oldest = select(events.c.id).where(claimable).order_by(events.c.received_at).limit(limit)
        if self.db.dialect.name == "postgresql":
            # `id = ANY(ARRAY(SELECT ... FOR UPDATE SKIP LOCKED))`, not `id IN (SELECT ...)`: the
            # ARRAY sub-select is an InitPlan, run once. With IN, PostgreSQL may pick a nested-loop
            # semi-join that runs the sub-select again for every candidate row; each run skips
            # the rows this very UPDATE has already changed and returns the next `limit`, so one
            # claim took the whole backlog (seen: 16,000 events locked by one query running for
            # minutes, hundreds of runs started at once, far over FLOWLINK_MAX_CONCURRENT_RUNS).
            picked = events.c.id == any_(func.array(oldest.with_for_update(skip_locked=True).scalar_subquery()))
        else:
            picked = events.c.id.in_(oldest.scalar_subquery())  # SQLite: one writer, one evaluation
        claim = (update(events).where(picked, claimable)
                 .values(status="running", claimed_by=self.worker_id, claimed_until=now + self.lease,
                         attempts=events.c.attempts + 1, updated_at=now)
                 .returning(events.c.id, events.c.flow_id, events.c.flow_version, events.c.payload, events.c.run_id,
                            events.c.attempts, events.c.received_at))
        with self.db.begin() as conn:
            won = list(conn.execute(claim).all())
        return sorted(won, key=lambda row: row.received_at)

    async def _heartbeat(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.lease / 3)
            if not self.inflight:
                continue
            try:
                # a thread of its own: the shared pool may be busy with runs' blocking work, and a
                # late renewal lets the lease lapse under a live run
                lost = await asyncio.get_running_loop().run_in_executor(self._lease_thread, self._renew, list(self.inflight))
            except Exception:
                log.exception("renewing webhook event leases failed")
                continue
            for event_id in lost:  # fencing: the other process runs it now (resuming from our checkpoints)
                task = self.inflight.get(event_id)
                if task is not None and not task.done():
                    log.warning("lease of webhook event %s was taken over by another process; stopping our run", event_id)
                    task.cancel()

    def _renew(self, mine: list[str]) -> set[str]:
        """Extend our leases; returns those of `mine` another process has claimed meanwhile
        (our lease lapsed while this process stalled): we must stop running them."""
        with self.db.begin() as conn:
            conn.execute(update(events).where(events.c.claimed_by == self.worker_id, events.c.status == "running")
                         .values(claimed_until=time.time() + self.lease))
            return set(conn.execute(select(events.c.id).where(
                events.c.id.in_(mine), events.c.claimed_by != self.worker_id, events.c.status == "running")).scalars())

    async def _flow_for(self, flow_id: str, version: int | None) -> Flow | None:
        """`_flow_of`, cached: a stored version never changes, so an entry stays valid until this
        process changes a flow (generation) and is looked at again only every
        FLOW_RECHECK s (a flow deleted by another process). Concurrent misses share one look-up.

        Why both: with a short expiry every run in flight missed at once, and when the thread
        pool was starved (a worker at lower priority on a saturated machine) a look-up took
        longer than the expiry itself, so the cache never held again and the runs spent their
        time querying flow definitions (seen: 30 runs/s instead of 120, the database at 64 %)."""
        key = (flow_id, version)
        cached = self._flows.get(key)
        if cached is not None and cached[0] == self._generation and time.monotonic() - cached[1] <= FLOW_RECHECK:
            return cached[2]
        pending = self._flow_lookups.get(key)
        if pending is None:
            pending = self._flow_lookups[key] = asyncio.ensure_future(self._look_up_flow(flow_id, version))
            pending.add_done_callback(lambda _done: self._flow_lookups.pop(key, None))
        return await asyncio.shield(pending)

    async def _look_up_flow(self, flow_id: str, version: int | None) -> Flow | None:
        generation = self._generation
        flow = await asyncio.to_thread(self._flow_of, flow_id, version)
        if flow is not None and version is not None:
            self._flows[(flow_id, version)] = (generation, time.monotonic(), flow)
        return flow

    async def _durable(self) -> None:
        """Wait until the history handed over so far is committed (shared with concurrent runs)."""
        durable = getattr(self.engine.recorder, "durable", None)
        if durable is not None:
            await durable()
        else:
            await asyncio.to_thread(self.engine.flush)

    def _flow_of(self, flow_id: str, version: int | None) -> Flow | None:
        found = self.engine.flows.get(flow_id, version)
        if found is None:
            return None
        return self._compile(flow_id, found.version, found.definition)

    def _previous_attempt(self, run_id: str) -> RunRecord | dict[str, bytes] | None:
        """After an interruption: the finished run if it did finish; else the outputs of the
        steps the interrupted attempt completed (path -> output JSON), which the new attempt
        reuses instead of running them again. The partial record is kept under a new id as
        `cancelled`, so the event runs again under `run_id`. None: the run never started."""
        self.engine.flush()
        with self.db.begin() as conn:
            status = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()
            if status is None:
                return None
            if status in ("succeeded", "failed"):
                return self.engine.runs.get(run_id)
        partial = self.engine.runs.get(run_id)
        # an output with masked personal data cannot stand in for the real one: that step runs again
        completed = {step.path: step.output_json for step in (partial.steps if partial else ())
                     if step.status == "succeeded" and step.type in ("action", "set", "wait") and step.output_json is not None
                     and f'"{MASK}"'.encode() not in step.output_json}
        with self.db.begin() as conn:
            moved = str(uuid.uuid4())
            error = {"type": "Interrupted", "message": f"the service stopped during this run; it was resumed as {run_id}"}
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                id=moved, status="cancelled", error=orjson.dumps(error).decode(), ended_at=time.time()))
            conn.execute(update(step_runs).where(step_runs.c.run_id == run_id).values(run_id=moved))
        return {"completed": completed, "resumed_from": moved}

    async def _execute(self, row: Any) -> None:
        record: RunRecord | None = None
        error: str | None = None
        try:
            resume: dict[str, Any] = {}
            if row.attempts > 1:
                previous = await asyncio.to_thread(self._previous_attempt, row.run_id)
                if isinstance(previous, RunRecord):
                    record = previous
                elif previous:
                    resume = previous
            if record is None:
                flow = await self._flow_for(row.flow_id, row.flow_version)
                if flow is None:
                    error = f"flow '{row.flow_id}' version {row.flow_version} no longer exists"
                else:
                    if row.attempts > 1 and flow.lane == "tracked":  # the interrupted attempt's Prefect flow run
                        from engine.tracked import mark_interrupted

                        await mark_interrupted(row.run_id, f"the Flowlink process stopped during this run; "
                                                           f"it was resumed under the same run id {row.run_id}")
                    record = await self.engine.run(flow, orjson.loads(row.payload), run_id=row.run_id, checkpoint=True, **resume)
                    await self._durable()  # the run is committed before the event is done
            if record is not None and record.status != "succeeded":
                err = record.error or {}
                error = f"{err.get('type')}: {err.get('message')}"
            await self._finishing.submit((row.id, "done" if error is None else "dead", error))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("webhook event %s failed", row.id)
            error = f"{type(exc).__name__}: {exc}"
            try:
                await self._finishing.submit((row.id, "dead", error))
            except Exception:
                log.exception("marking webhook event %s failed", row.id)
        finally:
            self.inflight.pop(row.id, None)
            self.wake.set()
            for future in self.waiters.pop(row.id, []):
                if not future.done():
                    if record is not None:
                        future.set_result(record)
                    else:
                        future.set_exception(RuntimeError(error or "the event was not run"))

    def _finish(self, event_id: str, status: str, error: str | None) -> None:
        self._finish_many([(event_id, status, error)])

    def _finish_many(self, items: list[tuple[str, str, str | None]]) -> list[None]:
        """Mark events done/dead in one transaction (only those this process still holds)."""
        now = time.time()
        with self.db.begin() as conn:
            conn.execute(update(events).where(events.c.id == bindparam("b_id"), events.c.claimed_by == self.worker_id)
                         .values(status=bindparam("b_status"), last_error=bindparam("b_error"), claimed_until=None, updated_at=now),
                         [{"b_id": event_id, "b_status": status, "b_error": error} for event_id, status, error in items])
            notify.notify_done(conn, [event_id for event_id, _, _ in items])
        return [None] * len(items)

    # -------------------------------------------------------------------- queries for the API

    def list_events(self, status: str | None, flow_id: str | None, limit: int, offset: int) -> dict[str, Any]:
        """Events newest first (without payloads) and the queue depth."""
        query = select(*[c for c in events.c if c.name != "payload"]).order_by(events.c.received_at.desc()).limit(limit).offset(offset)
        if status:
            query = query.where(events.c.status == status)
        if flow_id:
            query = query.where(events.c.flow_id == flow_id)
        with self.db.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings().all()]
            counts = dict(conn.execute(select(events.c.status, func.count()).group_by(events.c.status)).all())
        return {"queue": {"depth": counts.get("accepted", 0), "running": counts.get("running", 0),
                          "dead": counts.get("dead", 0), "in_flight_here": len(self.inflight),
                          "max_concurrent": self.max_concurrent},
                "events": rows}

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = conn.execute(select(events).where(events.c.id == event_id)).mappings().first()
        if row is None:
            return None
        return {**row, "payload": orjson.loads(row["payload"])}

    def replay(self, event_id: str, actor: str) -> dict[str, Any] | None:
        """Queue a finished event again under a new run id; None if unknown, {} if still queued/running."""
        run_id, now = str(uuid.uuid4()), time.time()
        with self.db.begin() as conn:
            row = conn.execute(select(events.c.status, events.c.run_id).where(events.c.id == event_id)).first()
            if row is None:
                return None
            changed = conn.execute(update(events).where(events.c.id == event_id, events.c.status.in_(("done", "dead", "failed")))
                                   .values(status="accepted", run_id=run_id, attempts=0, last_error=None, claimed_by=None,
                                           claimed_until=None, updated_at=now)).rowcount
            if not changed:
                return {}
            audit.record(conn, actor, "event.replay", "webhook_event", event_id,
                         before={"status": row.status, "run_id": row.run_id}, after={"status": "accepted", "run_id": run_id})
            notify.notify_inbox(conn)
        self.wake.set()
        return {"event_id": event_id, "run_id": run_id, "status": "accepted"}
