"""The LISTEN thread wakes the event loop once per burst of notifications, not once per
notification (a flood used to fill the loop's self-pipe and drop a SIGTERM's wake-up)."""
from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

from sqlalchemy import create_engine

from api.notify import DONE, INBOX, Listener


async def test_a_flood_of_notifications_is_one_wake_up_that_loses_no_event_id() -> None:
    inbox_calls: list[float] = []
    done_ids: list[str] = []
    listener = Listener(create_engine("postgresql+psycopg://127.0.0.1/test"),
                        lambda: inbox_calls.append(time.monotonic()), done_ids.extend)
    listener._loop = asyncio.get_running_loop()  # as start() would, without connecting

    def flood() -> None:
        for n in range(5000):
            listener._deliver(SimpleNamespace(channel=INBOX, payload=""))
            listener._deliver(SimpleNamespace(channel=DONE, payload=f"e{n}"))

    sender = threading.Thread(target=flood)
    sender.start()
    sender.join()  # the loop is blocked meanwhile: everything gathers for one wake-up
    await asyncio.sleep(0.05)
    assert len(inbox_calls) == 1  # one wake-up carried all 5000 (uncoalesced: 5000 calls)
    assert done_ids == [f"e{n}" for n in range(5000)]

    listener._deliver(SimpleNamespace(channel=DONE, payload="later"))  # a later one wakes it again
    await asyncio.sleep(0.05)
    assert done_ids[-1] == "later" and len(inbox_calls) == 1
