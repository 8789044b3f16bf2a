"""Group commit in the webhook inbox: the Batcher, batched intake with dedupe, and claiming a
batch of events with one statement (on SQLite and PostgreSQL)."""
from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import sqlalchemy
from sqlalchemy import select

from api.batching import Batcher
from api.inbox import Hook, Inbox
from engine.runtime import FlowEngine
from engine.store.recorder import SqlRecorder
from engine.store.tables import webhook_events as events


async def test_batcher_groups_items_that_arrive_during_a_write() -> None:
    gate = threading.Event()
    seen: list[list[int]] = []

    def write(items: list[int]) -> list[Any]:
        if not seen:
            gate.wait(10)  # hold the first write until the others have queued up
        seen.append(list(items))
        return [ValueError(f"bad {n}") if n == 13 else n * 10 for n in items]

    batcher: Batcher[int, int] = Batcher(write)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(batcher.submit(n)) for n in range(1, 20)]
    await asyncio.sleep(0.05)
    gate.set()
    assert await first == 0
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert seen == [[0], list(range(1, 20))]  # one write for everything that queued meanwhile
    assert [r for r in results if not isinstance(r, Exception)] == [n * 10 for n in range(1, 20) if n != 13]
    assert [str(r) for r in results if isinstance(r, Exception)] == ["bad 13"]
    assert batcher.batches == 2


async def test_batcher_failure_reaches_every_caller_of_that_batch_only() -> None:
    calls = 0

    def write(items: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database is down")
        return [item.upper() for item in items]

    batcher: Batcher[str, str] = Batcher(write)
    failed = await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)
    assert [str(e) for e in failed] == ["database is down", "database is down"]
    assert await batcher.submit("c") == "C"


async def test_batcher_serves_a_caller_that_submits_again_as_soon_as_its_result_arrives() -> None:
    """The woken caller runs before the finished writer's clean-up would: its next item must
    still get a writer (it used to wait for somebody else's submit: at the end of a burst, forever)."""
    for writers in (1, 4):
        batcher: Batcher[int, int] = Batcher(lambda items: [n + 1 for n in items], writers=writers)

        async def chain() -> list[int]:
            return [await batcher.submit(n) for n in range(5)]

        assert await asyncio.wait_for(asyncio.create_task(chain()), 5) == [1, 2, 3, 4, 5]


def _hook(flow_id: str) -> Hook:
    return Hook(flow_id=flow_id, version=1, trigger={"type": "webhook", "path": flow_id}, flow=None)  # type: ignore[arg-type]


def test_batched_intake_dedupes_and_batched_claims_win_each_event_once(database_url: str) -> None:
    engine = FlowEngine(database_url)
    try:
        one, two = Inbox(engine), Inbox(engine)
        hook = _hook("orders")
        batch = [(hook, "orders", f"k{n % 7}", {"n": n}) for n in range(20)] + [(hook, "orders", None, {"n": "plain"})]
        stored = one._store_many(batch)
        # the first delivery of each key is new, later ones in the same batch refer to it
        firsts = {}
        for (_, _, key, _), (event_id, run_id, duplicate) in zip(batch, stored):
            if key is None:
                assert not duplicate
                continue
            assert duplicate == (key in firsts)
            assert firsts.setdefault(key, (event_id, run_id)) == (event_id, run_id)
        # a second batch (another process) sees the committed keys as duplicates
        again = two._store_many([(hook, "orders", "k3", {"n": "retry"}), (hook, "orders", "k99", {"n": "new"})])
        assert again[0] == (*firsts["k3"], True) and not again[1][2]
        with engine.db.connect() as conn:
            assert len(conn.execute(select(events.c.id)).scalars().all()) == 9  # 7 keys + k99 + no key

        claimed: list[str] = []
        lock = threading.Lock()

        def claim(inbox: Inbox) -> None:
            while True:
                rows = inbox._claim(2)
                if not rows:
                    return
                assert [r.received_at for r in rows] == sorted(r.received_at for r in rows)
                with lock:
                    claimed.extend(r.id for r in rows)

        threads = [threading.Thread(target=claim, args=(inbox,)) for inbox in (one, two, one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(Counter(claimed).values()) == [1] * 9  # every event claimed exactly once
        with engine.db.connect() as conn:
            rows = conn.execute(select(events.c.status, events.c.attempts, events.c.claimed_by)).all()
        assert {(r.status, r.attempts) for r in rows} == {("running", 1)}
        assert {r.claimed_by for r in rows} <= {one.worker_id, two.worker_id}
        assert one._claim(10) == []  # leases still valid: nothing to take
        one._finish_many([(eid, "done", None) for eid in claimed])
        with engine.db.connect() as conn:
            finished = Counter(conn.execute(select(events.c.status)).scalars())
        # only the events `one` holds are finished by it
        assert finished["done"] == sum(1 for r in rows if r.claimed_by == one.worker_id)
    finally:
        engine.close()


def test_a_claim_takes_at_most_its_limit_whatever_plan_postgresql_picks(postgres_url: str) -> None:
    """With `id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` a nested-loop plan re-ran the
    sub-select per row, each time skipping the rows already claimed: one claim took the whole
    backlog. The planner is pushed to that plan here; the claim must still take `n`, quickly."""
    engine = FlowEngine(postgres_url)

    @sqlalchemy.event.listens_for(engine.db, "connect")
    def _nested_loops_only(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            for setting in ("enable_hashjoin", "enable_mergejoin", "enable_hashagg", "enable_material", "enable_sort"):
                cursor.execute(f"SET {setting} = off")
        dbapi_connection.commit()

    try:
        engine.db.dispose()  # connections opened from here on get the settings
        inbox = Inbox(engine)
        inbox._store_many([(_hook("backlog"), "backlog", None, {"n": n}) for n in range(600)])
        started = time.monotonic()
        claimed = inbox._claim(5)
        assert time.monotonic() - started < 5
        assert len(claimed) == 5
        with engine.db.connect() as conn:
            assert Counter(conn.execute(select(events.c.status)).scalars()) == {"running": 5, "accepted": 595}
    finally:
        engine.close()


def test_a_flush_with_nothing_queued_returns_at_once_in_thread_mode(sqlite_url: str) -> None:
    """The writer thread answers a flush that finds nothing before it without lingering (an API
    process flushes before it reads a run another process finished, on every `respond: last`)."""
    engine = FlowEngine(sqlite_url)
    recorder = SqlRecorder(engine.db, mode="thread", linger=5.0)
    try:
        started = time.monotonic()
        for _ in range(3):
            recorder.flush()
        assert time.monotonic() - started < 1.0
    finally:
        recorder.close()
        engine.close()


async def test_checkpoint_commits_promptly_when_idle(sqlite_url: str) -> None:
    """A durable() wait alone does not sit out the whole group-commit linger."""
    engine = FlowEngine(sqlite_url)
    try:
        recorder = engine.recorder
        recorder.linger = 5.0  # a history batch would wait this long; a checkpoint must not
        flow = engine.compile({"id": "ck", "name": "ck", "trigger": {"type": "manual"},
                               "steps": [{"id": "a", "type": "action", "action": "core.set", "args": {"value": 1}}]})
        record = await asyncio.wait_for(engine.run(flow, {}, checkpoint=True), timeout=4.0)
        assert record.status == "succeeded"
        assert recorder.batches_written >= 1  # committed by the checkpoint, not the 5 s timer
    finally:
        engine.close()


async def test_batcher_with_several_writers_overlaps_batches_and_answers_each_item() -> None:
    active, most = 0, 0
    lock = threading.Lock()
    release = threading.Event()

    def write(items: list[int]) -> list[int]:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        release.wait(10)
        with lock:
            active -= 1
        return [n + 1 for n in items]

    batcher: Batcher[int, int] = Batcher(write, writers=3)
    tasks = []
    for n in range(30):  # items arriving while earlier batches are still being written
        tasks.append(asyncio.create_task(batcher.submit(n)))
        await asyncio.sleep(0.01)
    assert most == 3 and active == 3  # three batches in flight at once, never more
    release.set()
    assert await asyncio.gather(*tasks) == [n + 1 for n in range(30)]
    assert 4 <= batcher.batches < 30  # the items that queued meanwhile went out together


async def test_expired_leases_are_claimed_before_new_events(sqlite_url: str) -> None:
    engine = FlowEngine(sqlite_url)
    inbox = Inbox(engine)
    try:
        hook = Hook("f", 1, {"type": "webhook", "path": "p"}, None)  # type: ignore[arg-type]
        stored = await asyncio.gather(*(inbox._intake.submit((hook, "p", None, {"body": n})) for n in range(3)))
        dead = stored[2][0]
        with engine.db.begin() as conn:  # the newest event was running in a process that died
            conn.execute(events.update().where(events.c.id == dead).values(status="running", claimed_by="gone:1",
                                                                          claimed_until=0.0, attempts=1))
        first = inbox._claim(1)
        assert [row.id for row in first] == [dead] and first[0].attempts == 2
        rest = inbox._claim(10)  # the expired-lease look-up is rate limited; accepted events come next, oldest first
        assert [row.id for row in rest] == [stored[0][0], stored[1][0]]
        assert inbox._claim(10) == []
    finally:
        engine.close()


async def test_a_lone_run_checkpoints_back_to_back_but_concurrent_runs_share_commits(sqlite_url: str) -> None:
    """Loop mode (SQLite): commits are spaced by `durable_interval` only when several runs have
    records waiting (then they share one); a single run's consecutive checkpoints commit at once."""
    from engine.records import StepRecord

    engine = FlowEngine(sqlite_url)
    recorder = engine.recorder
    recorder.durable_interval = 0.5
    recorder.linger = 5.0

    def step(run_id: str, seq: int) -> StepRecord:
        return StepRecord(run_id=run_id, seq=seq, step_id=f"s{seq}", path=f"s{seq}", type="set", status="succeeded",
                          started_at=time.time(), ended_at=time.time())

    try:
        started = time.monotonic()
        for seq in range(3):  # one run, three checkpoints in a row
            recorder.step_finished(step("run-a", seq))
            await recorder.durable()
        assert time.monotonic() - started < 0.3
        written = recorder.batches_written
        started = time.monotonic()
        recorder.step_finished(step("run-b", 0))
        recorder.step_finished(step("run-c", 0))
        await asyncio.gather(recorder.durable(), recorder.durable())
        assert time.monotonic() - started > 0.2  # grouped: waited for the interval after the last commit
        assert recorder.batches_written == written + 1
    finally:
        engine.close()


async def test_concurrent_runs_share_one_flow_look_up_and_keep_it(sqlite_url: str) -> None:
    """The compiled flow of a stored version is looked up once for every run in flight, also
    when the look-up is slower than any expiry would be, and then served from memory."""
    engine = FlowEngine(sqlite_url)
    inbox = Inbox(engine)
    calls = 0
    real = inbox._flow_of

    def slow_flow_of(flow_id: str, version: int | None) -> Any:
        nonlocal calls
        calls += 1
        threading.Event().wait(0.3)  # a starved thread pool
        return real(flow_id, version)

    try:
        engine.flows.save({"id": "f", "name": "f", "trigger": {"type": "manual"},
                           "steps": [{"id": "a", "type": "set", "value": 1}]}, "t", "")
        inbox._flow_of = slow_flow_of  # type: ignore[method-assign]
        flows = await asyncio.gather(*(inbox._flow_for("f", 1) for _ in range(32)))
        assert calls == 1 and all(flow is flows[0] and flow is not None for flow in flows)
        await asyncio.sleep(0.1)
        assert await inbox._flow_for("f", 1) is flows[0] and calls == 1
        assert await inbox._flow_for("f", 99) is None and calls == 2  # an unknown version is not cached
    finally:
        engine.close()
