"""Process-level settings of the long-running service processes (`flowlink serve`, `flowlink worker`)."""
from __future__ import annotations

import gc
import logging
import os

log = logging.getLogger("flowlink.process")


def freeze_startup_heap() -> int:
    """Collect once, then move every object alive after start-up into the collector's permanent
    generation; returns how many objects were frozen.

    Why: after importing FastAPI, Prefect, pydantic models and the connectors a process holds
    ~200,000 container objects, and each full (generation 2) collection walks all of them:
    ~90 ms on a 2-core machine, during which no request is answered and no step runs. That
    stall was the p99 of webhook acknowledgements. Frozen objects are never scanned again, so
    full collections walk only what was created since (runs in flight, caches)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def lower_priority(nice: int) -> int:
    """Lower this process's CPU priority by `nice` steps (0: unchanged); returns the new niceness.

    Used by `flowlink worker` beside an API process on the same machine: the kernel then serves
    webhook acknowledgements first and gives runs the remaining CPU, so acks stay fast while a
    backlog is being worked off (the backlog waits durably in the inbox)."""
    if nice <= 0:
        return os.nice(0)
    try:
        return os.nice(nice)
    except OSError as exc:  # not permitted (a container without CAP_SYS_NICE cannot raise, only lower: this lowers)
        log.warning("cannot lower the CPU priority by %d: %s", nice, exc)
        return os.nice(0)
