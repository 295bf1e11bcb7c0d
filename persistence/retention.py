"""Retention: delete old runs and everything recorded under them, except runs that still matter.

Kept whatever their age: a run whose verdict was GO (it decided a shipped version), a run an open
defect points at (first or last run of a defect that is not fixed), and a run of a defect that a
live waiver covers. Audit events are never deleted: they name runs by id, as text, and the purge
itself is appended to the chain. Evidence folders are files, not rows: the caller removes them
(``releasegate db purge`` does, for the runs in ``PurgeReport.runs_deleted``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from persistence.audit import AuditRepository
from persistence.tables import (
    DefectRow,
    FindingRow,
    LoadSampleRow,
    NotificationRow,
    Run,
    StageResultRow,
    TestCaseRow,
    VerdictRow,
    WaiverRow,
)
from persistence.waivers import live
from releasegate.domain.defect_lifecycle import DefectState

_CHUNK = 500
_CHILDREN = (FindingRow, TestCaseRow, StageResultRow, VerdictRow, NotificationRow, LoadSampleRow)
KEEP_REASONS = ("go_verdict", "open_defect", "live_waiver")


@dataclass
class PurgeReport:
    runs_deleted: list[dict[str, str]] = field(default_factory=list)  # [{run_id, evidence_dir}]
    kept: dict[str, int] = field(default_factory=dict)                # reason -> runs kept for it


def purge(session_or_uow: Any, older_than: datetime, at: datetime | None = None) -> PurgeReport:
    """Delete the runs started before ``older_than`` that nothing still needs (see module doc).

    ``at`` (default now) is when waivers are judged live. Nothing is committed here.
    """
    session: Session = getattr(session_or_uow, "session", session_or_uow)
    at = at or datetime.now(UTC)
    candidates = _old_runs(session, older_than)
    kept = _kept(session, set(candidates), at)
    doomed = sorted(set(candidates) - set().union(*kept.values()))
    _delete_runs(session, doomed)
    report = PurgeReport([{"run_id": r, "evidence_dir": candidates[r]} for r in doomed],
                         {reason: len(ids) for reason, ids in kept.items() if ids})
    AuditRepository(session).append("data.purged", "runs", {"older_than": older_than, "run_ids": doomed,
                                                            "kept": report.kept}, at)
    return report


def _old_runs(session: Session, older_than: datetime) -> dict[str, str]:
    query = select(Run.run_id, Run.evidence_dir).where(Run.started_at < older_than)
    return {row.run_id: row.evidence_dir for row in session.execute(query)}


def _kept(session: Session, candidates: set[str], at: datetime) -> dict[str, set[str]]:
    """Each protected candidate under the first reason that protects it, in KEEP_REASONS order."""
    kept: dict[str, set[str]] = {}
    remaining = set(candidates)
    for reason, finder in zip(KEEP_REASONS, (_go_runs, _open_defect_runs, _waived_defect_runs)):
        kept[reason] = finder(session, at) & remaining
        remaining -= kept[reason]
    return kept


def _go_runs(session: Session, _at: datetime) -> set[str]:
    by_verdict = select(VerdictRow.run_id).where(VerdictRow.decision == "GO")
    by_run = select(Run.run_id).where(Run.decision == "GO")
    return set(session.scalars(by_verdict)) | set(session.scalars(by_run))


def _open_defect_runs(session: Session, _at: datetime) -> set[str]:
    rows = session.execute(select(DefectRow.first_run_id, DefectRow.last_run_id).where(
        DefectRow.state != DefectState.fixed.value))
    return {run_id for row in rows for run_id in row}


def _waived_defect_runs(session: Session, at: datetime) -> set[str]:
    waived = select(WaiverRow.service, WaiverRow.fingerprint).where(live(at))
    query = select(DefectRow.first_run_id, DefectRow.last_run_id).where(
        tuple_(DefectRow.service, DefectRow.fingerprint).in_(waived))
    return {run_id for row in session.execute(query) for run_id in row}


def _delete_runs(session: Session, run_ids: list[str]) -> None:
    """Children first, so the purge does not depend on ON DELETE CASCADE being enforced (SQLite pragma)."""
    for start in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[start:start + _CHUNK]
        for model in _CHILDREN:
            session.execute(delete(model).where(model.run_id.in_(chunk)))
        session.execute(delete(Run).where(Run.run_id.in_(chunk)))

