"""Group commit in the webhook inbox: the Batcher, batched intake with dedupe, and claiming a
batch of events with one statement (on SQLite and PostgreSQL)."""
from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from sqlalchemy import select

from api.batching import Batcher
from api.inbox import Hook, Inbox
from engine.runtime import FlowEngine
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
