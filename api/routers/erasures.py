"""Right to erasure (admin only): remove a person's data from run history and data tables.

`POST /api/erasures` runs the same erasure as `flowlink erase` (engine/store/retention.py):
payloads containing the subject in runs, steps, webhook events and blobs, and (with
``tables``) data-table rows with a top-level field equal to it. ``dry_run`` only counts. The
audit log gets `subject.erase` with a hash of the subject, never the subject itself.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from api.deps import get_state, user_of
from api.errors import error_body
from api.state import ServiceState
from engine.store.retention import MIN_SUBJECT_LENGTH, EraseResult, erase_subject, subject_hash
from engine.users import User

router = APIRouter(prefix="/api/erasures", tags=["erasures"])


class ErasureRequest(BaseModel):
    model_config = {"extra": "forbid"}

    subject: str = Field(min_length=MIN_SUBJECT_LENGTH, max_length=1000,
                         description="A phone number, external user id, e-mail address ... (case-sensitive).")
    dry_run: bool = Field(False, description="Only count what would be removed; changes and records nothing.")
    tables: bool = Field(True, description="Also delete data-table rows with a top-level field equal to the subject.")


class ErasureResult(BaseModel):
    subject_hash: str = Field(description="How the audit log names the subject (`target_id` of `subject.erase`).")
    dry_run: bool
    runs: int = Field(description="Runs whose payloads were erased (ids, statuses and times stay).")
    steps: int = Field(description="Step records of those runs whose payloads were erased.")
    events: int = Field(description="Webhook events whose payload was erased.")
    blobs: int = Field(description="Large payloads deleted.")
    table_rows: dict[str, int] = Field(description="Data table -> rows deleted.")
    table_rows_total: int
    table_changes: int = Field(description="Row-change history entries deleted.")


@router.post("", response_model=ErasureResult)
async def erase(body: ErasureRequest, state: ServiceState = Depends(get_state), actor: User = Depends(user_of)) -> ErasureResult:
    """Erase (or with ``dry_run`` count) every trace of the subject; the counts per kind."""
    try:
        result: EraseResult = await asyncio.to_thread(erase_subject, state.engine.db, body.subject, actor.username,
                                                      dry_run=body.dry_run, tables=body.tables)
    except ValueError as exc:  # e.g. a subject of blanks only
        raise HTTPException(422, error_body("InvalidInput", str(exc),
                                            issues=[{"pointer": "/body/subject", "message": str(exc)}])) from None
    return ErasureResult(subject_hash=subject_hash(body.subject), **result.to_dict())
