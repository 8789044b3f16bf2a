"""Group commit for blocking database work: many callers, one transaction per batch.

`Batcher.submit(item)` queues an item and waits for its own result. While one batch is
being written (in a worker thread, so the event loop keeps serving), new items gather; when
the write ends they go out together as the next batch. With `writers` > 1 up to that many
batches are written at once, each in its own transaction: a database that commits concurrent
transactions in parallel (PostgreSQL) then overlaps their round trips and WAL flushes. Under load a batch is everything that
arrived during the previous commit; when idle a single item is written at once, so nobody
waits for a timer. This replaces one thread hop and one transaction per item.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Generic, Sequence, TypeVar

log = logging.getLogger("flowlink.batching")

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Runs `write(items)` for batches of submitted items, one batch at a time.

    `write` runs in a worker thread and returns one result per item, in order; a result that is
    an exception is raised to that item's caller only. If `write` itself raises, every caller of
    the batch gets the exception.
    """

    def __init__(self, write: Callable[[list[T]], Sequence[R | BaseException]], max_batch: int = 500,
                 writers: int = 1) -> None:
        self.write = write
        self.max_batch = max_batch
        self.writers = max(1, writers)  # batches written at the same time (PostgreSQL: >1 overlaps commits)
        self.batches = 0  # batches written (for tests and metrics)
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """Queue `item` for the next batch and return its result once that batch is committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._tasks) < self.writers:
            self._tasks.add(asyncio.create_task(self._drain(), name="batcher"))
        return await future

    async def _drain(self) -> None:
        try:
            await self._write_pending()
        finally:
            # Leave the set in the same step that sees the queue empty. A done callback would run
            # one loop iteration later: a caller woken by this batch's results that submits again
            # in between would find the writer slots "taken" by finished tasks, and its item would
            # wait for the next submit (forever, at the end of a burst).
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            try:
                results = await asyncio.to_thread(self.write, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch writer returned {len(results)} results for {len(batch)} items")
            except BaseException as exc:  # noqa: BLE001 - every waiter must hear about it, then we go on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            finally:
                self.batches += 1
            for (_, future), result in zip(batch, results):
                if future.done():  # the caller went away (cancelled request)
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
