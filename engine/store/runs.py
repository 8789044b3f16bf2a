"""Reading run history back: one run with its steps, or a filtered page of runs."""
from __future__ import annotations

from typing import Any, Collection

import orjson
from sqlalchemy import Engine, select

from engine.records import RunRecord, StepRecord
from engine.store.tables import blobs, runs, step_runs


class RunStore:
    """Queries over `runs` and `step_runs`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, run_id: str) -> RunRecord | None:
        """A run with every step record, payloads resolved; None if unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                return None
            step_rows = conn.execute(select(step_runs).where(step_runs.c.run_id == run_id).order_by(step_runs.c.seq)).mappings().all()
            wanted = {row["trigger_blob"], row["output_blob"]}
            for s in step_rows:
                wanted.update((s["input_blob"], s["output_blob"]))
            wanted.discard(None)
            data = {}
            if wanted:
                data = dict(conn.execute(select(blobs.c.sha256, blobs.c.data).where(blobs.c.sha256.in_(wanted))).all())
        run = self._run(row, data)
        run.steps = [self._step(s, data) for s in step_rows]
        return run

    def list(
        self,
        flow_id: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
        flow_ids: Collection[str] | None = None,
    ) -> list[RunRecord]:
        """Runs newest first, without steps or payloads; `flow_ids` limits them to those flows."""
        query = select(
            runs.c.id, runs.c.flow_id, runs.c.flow_version, runs.c.lane, runs.c.status, runs.c.error,
            runs.c.started_at, runs.c.ended_at, runs.c.prefect_flow_run_id, runs.c.resumed_from,
        ).order_by(runs.c.started_at.desc()).limit(limit).offset(offset)
        if flow_id:
            query = query.where(runs.c.flow_id == flow_id)
        if flow_ids is not None:
            query = query.where(runs.c.flow_id.in_(list(flow_ids)))
        if status:
            query = query.where(runs.c.status == status)
        if since is not None:
            query = query.where(runs.c.started_at >= since)
        if until is not None:
            query = query.where(runs.c.started_at < until)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [self._run({**row, "trigger_json": None, "output_json": None, "trigger_blob": None, "output_blob": None}, {}) for row in rows]

    @staticmethod
    def _payload(inline: str | None, blob: str | None, data: dict[str, bytes]) -> bytes | None:
        if inline is not None:
            return inline.encode()
        if blob is not None:
            return data.get(blob)
        return None

    def _run(self, row: Any, data: dict[str, bytes]) -> RunRecord:
        return RunRecord(
            id=row["id"],
            flow_id=row["flow_id"],
            flow_version=row["flow_version"],
            lane=row["lane"],
            status=row["status"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            trigger_json=self._payload(row["trigger_json"], row["trigger_blob"], data) or b"null",
            output_json=self._payload(row["output_json"], row["output_blob"], data),
            error=orjson.loads(row["error"]) if row["error"] else None,
            prefect_flow_run_id=row["prefect_flow_run_id"],
            resumed_from=row["resumed_from"],
        )

    def _step(self, row: Any, data: dict[str, bytes]) -> StepRecord:
        return StepRecord(
            run_id=row["run_id"],
            seq=row["seq"],
            step_id=row["step_id"],
            path=row["path"],
            type=row["type"],
            status=row["status"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            input_json=self._payload(row["input_json"], row["input_blob"], data),
            output_json=self._payload(row["output_json"], row["output_blob"], data),
            error=orjson.loads(row["error"]) if row["error"] else None,
            attempts=orjson.loads(row["attempts"]) if row["attempts"] else [],
        )
