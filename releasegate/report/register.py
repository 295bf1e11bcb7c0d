"""The risk register: one row per open finding, open defect, errored or empty stage, and reason not covered.

Each row has an owner, a status and a due date (the severity's SLA from the verdict's date, or the defect's
own).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Finding, Reason, Severity, StageResult, Status, Verdict
from releasegate.redact import redact
from releasegate.report.formatting import utc

SLA_DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 120}
CLOSED_DEFECT = {"fixed", "closed"}


@dataclass(frozen=True)
class RiskItem:
    id: str
    title: str
    severity: str
    owner: str
    status: str
    due: str
    source: str


def risk_register(results: list[StageResult], verdict: Verdict, defects: list[dict]) -> list[RiskItem]:
    """One row per open finding, open defect, errored or empty stage, and reason not covered by those."""
    by_fp = {str(d.get("fingerprint") or d["id"]): d for d in defects if d.get("fingerprint") or d.get("id")}
    rows: dict[str, RiskItem] = {}
    for result in results:
        for finding in result.findings:
            rows.setdefault(finding.fingerprint, _finding_row(result, finding, by_fp.get(finding.fingerprint),
                                                              verdict))
        if result.status is Status.error or result.evidence_empty:
            row = _stage_row(result, verdict)
            rows.setdefault(row.id, row)
    for fp, defect in by_fp.items():
        if fp not in rows and _defect_status(defect, "open").lower() not in CLOSED_DEFECT:
            rows[fp] = _defect_row(fp, defect, verdict)
    errored = {r.stage for r in results if r.status is Status.error or r.evidence_empty}
    for reason in verdict.reasons:
        if reason.fingerprint and reason.fingerprint in rows:  # a finding's reason: its row is there already
            continue
        row = _reason_row(reason, verdict)
        if row.id not in rows and not (not reason.fingerprint and reason.stage in errored):
            rows[row.id] = row
    return sorted(rows.values(), key=lambda r: (-_rank(r.severity), r.source, r.id))


def due_date(severity: str, verdict: Verdict) -> str:
    return _due(severity, verdict.decided_at)


@functools.lru_cache(maxsize=64)
def _due(severity: str, decided_at: datetime) -> str:
    days = SLA_DAYS.get(severity)
    return (utc(decided_at) + timedelta(days=days)).date().isoformat() if days else ""


def _finding_row(result: StageResult, finding: Finding, defect: dict | None, verdict: Verdict) -> RiskItem:
    status = f"{_defect_status(defect, 'open')} ({'blocking' if finding.blocking else 'non-blocking'})"
    severity = finding.severity.value
    return RiskItem(id=finding.fingerprint, title=finding.title, severity=severity,
                    owner=_owner(defect), status=status,
                    due=_defect_due(defect) or due_date(severity, verdict), source=result.stage)


def _stage_row(result: StageResult, verdict: Verdict) -> RiskItem:
    severity = "high" if result.required else "medium"
    what = result.error or (f"no evidence: {result.summary}" if result.summary else "no evidence")
    return RiskItem(id=fingerprint("stage", result.stage), title=f"{result.stage} could not decide: {what}",
                    severity=severity, owner="unassigned", status="inconclusive",
                    due=due_date(severity, verdict), source=result.stage)


def _defect_row(fp: str, defect: dict, verdict: Verdict) -> RiskItem:
    severity = str(defect.get("severity", "medium"))
    return RiskItem(id=fp, title=redact(str(defect.get("title", fp))), severity=severity,
                    owner=_owner(defect), status=_defect_status(defect, "open"),
                    due=_defect_due(defect) or due_date(severity, verdict),
                    source=str(defect.get("stage", defect.get("source", "defects"))))


def _reason_row(reason: Reason, verdict: Verdict) -> RiskItem:
    fp = reason.fingerprint or fingerprint("reason", reason.stage, reason.message)
    status = "inconclusive" if verdict.decision.value == "INCONCLUSIVE" else "open"
    return RiskItem(id=fp, title=reason.message, severity=reason.severity.value, owner="unassigned",
                    status=status, due=due_date(reason.severity.value, verdict), source=reason.stage)


def _defect_status(defect: dict | None, default: str) -> str:
    """A defect's lifecycle state (new, recurring, reopened, waived, fixed) when known."""
    return str((defect or {}).get("status") or (defect or {}).get("state") or default)


def _owner(defect: dict | None) -> str:
    return str((defect or {}).get("owner") or "unassigned")


def _defect_due(defect: dict | None) -> str:
    due = (defect or {}).get("due")
    return str(due.isoformat() if hasattr(due, "isoformat") else due) if due else ""


def _rank(severity: str) -> int:
    return _SEVERITY_RANKS.get(severity, -1)


_SEVERITY_RANKS = {s.value: s.rank for s in Severity}
