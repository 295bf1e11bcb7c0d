"""Builders for the gate's domain objects in tests: a run context, stage results, findings, verdicts.

Each fills what a test does not look at with fixed values on one clock (``T0``), so a test names only what
it checks; any field can be given by keyword.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.models import Decision, Finding, Reason, Severity, StageResult, Status, Verdict

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RUN_ID = "rg-20250301T120000Z-abc123"


def run_context(tmp_path: Path, **fields: Any) -> RunContext:
    """A run of shop 1.4.2 started at ``T0``: its policy, evidence folder and workspace under ``tmp_path``."""
    return RunContext(**{"run_id": RUN_ID, "service": "shop", "version": "1.4.2",
                         "policy_path": str(tmp_path / "gate.yaml"), "evidence_dir": str(tmp_path / "evidence"),
                         "workspace": str(tmp_path / "work"), "started": T0, **fields})


def stage_result(name: str, kind: str = "x", status: Status = Status.passed, *, started: datetime = T0,
                 seconds: float = 0.0, findings: Iterable[Finding] = (), **fields: Any) -> StageResult:
    """The result of stage ``name``, which ran for ``seconds`` from ``started``."""
    return StageResult(stage=name, kind=kind, status=status, started=started,
                       finished=started + timedelta(seconds=seconds), findings=list(findings), **fields)


def finding(fingerprint: str, blocking: bool = True, severity: Severity = Severity.high, **fields: Any) -> Finding:
    """A SAST finding titled after its fingerprint."""
    return Finding(**{"kind": "sast", "rule": "r", "severity": severity, "title": f"finding {fingerprint}",
                      "fingerprint": fingerprint, "blocking": blocking, **fields})


def finding_record(fingerprint: str, **fields: Any) -> dict[str, Any]:
    """A finding as the repositories store it (plain values), its rule and title named after its fingerprint."""
    return {"fingerprint": fingerprint, "kind": "sast", "rule": fingerprint, "severity": "high", "title": fingerprint,
            "location": "app.py", "evidence": "", "blocking": True, "data": {}, **fields}


def verdict(decision: Decision = Decision.GO, reasons: Iterable[Reason] = (), *, decided_at: datetime = T0,
            **fields: Any) -> Verdict:
    """A verdict decided at ``T0`` with these reasons."""
    return Verdict(decision=decision, decided_at=decided_at, reasons=list(reasons), **fields)
