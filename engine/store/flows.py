"""Flows and their immutable numbered versions."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson
from sqlalchemy import Engine, func, insert, select, update

from engine.store import audit
from engine.store.tables import flow_versions, flows


class VersionConflict(Exception):
    """Someone saved the flow since the version the caller started from."""

    def __init__(self, flow_id: str, expected: int | None, current: int) -> None:
        super().__init__(f"flow '{flow_id}' is at version {current}, not {expected}: reload and apply your change again")
        self.flow_id, self.expected, self.current = flow_id, expected, current


class PathConflict(Exception):
    """Two active flows would serve the same webhook path."""


def _webhook_path(definition: dict[str, Any] | None) -> str | None:
    """The path under /hooks/ a flow listens on: its own for `webhook`, `<connector>/<path>`
    (path defaulting to the flow id) for a connector callback trigger `<connector>.<name>`."""
    trigger = (definition or {}).get("trigger") or {}
    kind = trigger.get("type") or ""
    if kind == "webhook":
        return trigger.get("path")
    if "." in kind:
        return connector_hook_path(kind, trigger.get("path") or (definition or {}).get("id") or "")
    return None


def connector_hook_path(trigger_type: str, path: str) -> str:
    """The /hooks/ path of a connector callback trigger: `<connector>/<path>`."""
    return f"{trigger_type.partition('.')[0]}/{path}"


@dataclass
class FlowVersion:
    """One saved version of a flow definition."""

    flow_id: str
    version: int
    definition: dict[str, Any]
    created_by: str
    message: str
    created_at: float


class FlowStore:
    """Saves definitions as new versions; never rewrites an old one."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: called with the flow id after a save, activation or deactivation (cache invalidation)
        self.listeners: list[Callable[[str], None]] = []

    def _changed(self, flow_id: str) -> None:
        for listener in list(self.listeners):
            listener(flow_id)

    def save(self, definition: dict[str, Any], actor: str, message: str = "", expected_version: int | None = None) -> FlowVersion:
        """Store `definition` as the flow's next version.

        `expected_version` is the version the editor started from; if the flow has moved
        on since, VersionConflict is raised and nothing is written. For a new flow pass None.
        """
        flow_id = definition["id"]
        now = time.time()
        with self.engine.begin() as conn:
            current = conn.execute(select(flows.c.current_version).where(flows.c.id == flow_id).with_for_update()).scalar()
            if current is not None and expected_version != current:
                raise VersionConflict(flow_id, expected_version, current)
            if current is None and expected_version not in (None, 0):
                raise VersionConflict(flow_id, expected_version, 0)
            version = (current or 0) + 1
            stored = {**definition, "version": version}
            previous = None
            if current is None:
                conn.execute(insert(flows).values(id=flow_id, name=definition["name"], description=definition.get("description", ""),
                                                  current_version=version, active=False, created_at=now, updated_at=now))
            else:
                previous = self._definition(conn, flow_id, current)
                conn.execute(update(flows).where(flows.c.id == flow_id).values(
                    name=definition["name"], description=definition.get("description", ""), current_version=version,
                    updated_at=now, deleted_at=None))
            conn.execute(insert(flow_versions).values(flow_id=flow_id, version=version, definition=orjson.dumps(stored).decode(),
                                                      created_by=actor, message=message, created_at=now))
            audit.record(conn, actor, "flow.create" if current is None else "flow.update", "flow", flow_id,
                         before=previous, after=stored, details={"version": version, "message": message})
        self._changed(flow_id)
        return FlowVersion(flow_id, version, stored, actor, message, now)

    def set_active(self, flow_id: str, active: bool, actor: str) -> bool | None:
        """Activate or deactivate a flow (audited); None if there is no such flow, else the new state.

        Activating a webhook flow whose path is already served by another active flow raises
        PathConflict.
        """
        with self.engine.begin() as conn:
            head = conn.execute(select(flows.c.active, flows.c.current_version).where(
                flows.c.id == flow_id, flows.c.deleted_at.is_(None)).with_for_update()).first()
            if head is None:
                return None
            if active:
                path = _webhook_path(self._definition(conn, flow_id, head.current_version))
                if path is not None:
                    for other_id, definition in self._active_definitions(conn):
                        if other_id != flow_id and _webhook_path(definition) == path:
                            raise PathConflict(f"webhook path '{path}' is already served by active flow '{other_id}'")
            if bool(head.active) != active:
                conn.execute(update(flows).where(flows.c.id == flow_id).values(active=active, updated_at=time.time()))
                audit.record(conn, actor, "flow.activate" if active else "flow.deactivate", "flow", flow_id,
                             before={"active": bool(head.active)}, after={"active": active})
        self._changed(flow_id)
        return active

    def _active_definitions(self, conn: Any) -> list[tuple[str, dict[str, Any]]]:
        rows = conn.execute(select(flows.c.id, flow_versions.c.definition).join(
            flow_versions, (flow_versions.c.flow_id == flows.c.id) & (flow_versions.c.version == flows.c.current_version))
            .where(flows.c.active.is_(True), flows.c.deleted_at.is_(None))).all()
        return [(r[0], orjson.loads(r[1])) for r in rows]

    def active_definitions(self) -> list[tuple[str, dict[str, Any]]]:
        """(flow id, current definition) of every active flow that is not deleted."""
        with self.engine.connect() as conn:
            return self._active_definitions(conn)

    def webhook_flows(self) -> dict[str, dict[str, Any]]:
        """Webhook path -> current definition, for every active webhook flow (one query)."""
        found: dict[str, dict[str, Any]] = {}
        for _flow_id, definition in self.active_definitions():
            path = _webhook_path(definition)
            if path is not None:
                found.setdefault(path, definition)
        return found

    @staticmethod
    def _definition(conn: Any, flow_id: str, version: int) -> dict[str, Any] | None:
        text = conn.execute(select(flow_versions.c.definition).where(
            flow_versions.c.flow_id == flow_id, flow_versions.c.version == version)).scalar()
        return orjson.loads(text) if text else None

    def get(self, flow_id: str, version: int | None = None) -> FlowVersion | None:
        """The current (or a given) version of a flow that is not deleted."""
        with self.engine.connect() as conn:
            head = conn.execute(select(flows).where(flows.c.id == flow_id, flows.c.deleted_at.is_(None))).mappings().first()
            if head is None:
                return None
            row = conn.execute(select(flow_versions).where(
                flow_versions.c.flow_id == flow_id,
                flow_versions.c.version == (version or head["current_version"]))).mappings().first()
        if row is None:
            return None
        return FlowVersion(row["flow_id"], row["version"], orjson.loads(row["definition"]), row["created_by"], row["message"], row["created_at"])

    def versions(self, flow_id: str) -> list[dict[str, Any]]:
        """Every version's number, author, message and time, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(flow_versions.c.version, flow_versions.c.created_by, flow_versions.c.message,
                                       flow_versions.c.created_at).where(flow_versions.c.flow_id == flow_id)
                                .order_by(flow_versions.c.version.desc())).mappings().all()
        return [dict(r) for r in rows]

    def list(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every flow's head row."""
        query = select(flows).order_by(flows.c.id)
        if not include_deleted:
            query = query.where(flows.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def count(self) -> int:
        """How many flows exist (deleted ones excluded)."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(flows).where(flows.c.deleted_at.is_(None))).scalar_one()

    def current_definitions(self) -> dict[str, dict[str, Any]]:
        """Flow id -> current definition of every flow that is not deleted (one query)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(flows.c.id, flow_versions.c.definition).join(
                flow_versions, (flow_versions.c.flow_id == flows.c.id) & (flow_versions.c.version == flows.c.current_version))
                .where(flows.c.deleted_at.is_(None))).all()
        return {r[0]: orjson.loads(r[1]) for r in rows}

    def delete(self, flow_id: str, actor: str) -> float | None:
        """Soft-delete a flow (audited as flow.delete): deactivated, hidden from get/list, versions and runs kept.

        Returns the deletion time, or None if there is no such (undeleted) flow.
        """
        now = time.time()
        with self.engine.begin() as conn:
            head = conn.execute(select(flows.c.active, flows.c.current_version).where(
                flows.c.id == flow_id, flows.c.deleted_at.is_(None)).with_for_update()).first()
            if head is None:
                return None
            conn.execute(update(flows).where(flows.c.id == flow_id).values(deleted_at=now, active=False, updated_at=now))
            audit.record(conn, actor, "flow.delete", "flow", flow_id, before={"active": bool(head.active), "deleted_at": None},
                         after={"active": False, "deleted_at": now}, details={"version": head.current_version})
        self._changed(flow_id)
        return now
