"""The decision: a pure function of the stage results, the expected stages and the waived fingerprints.

GO only when every required stage produced evidence and nothing unwaived blocks; INCONCLUSIVE when the
gate could not decide (a required stage errored, is missing, or produced empty evidence); NO_GO otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import (
    AppliedWaiver,
    Approval,
    Decision,
    Finding,
    Reason,
    Severity,
    StageResult,
    Status,
    Verdict,
)


@dataclass(frozen=True)
class ExpectedStage:
    name: str
    required: bool = True


NOTHING_CHECKED = fingerprint("nothing-checked", "policy")
ALL_ACCEPTED = fingerprint("approval-accepts-everything", "approval")
NEVER_ACCEPTED = frozenset({NOTHING_CHECKED, ALL_ACCEPTED})  # no person can approve a run that checked nothing


def gap_key(stage: str, message: str) -> str:
    """What an approval names of a gap: the stage and the problem as the approver read it. The same stage failing
    another way later is another gap, which the approval does not cover."""
    return fingerprint("approved-gap", stage, message)


def decide(results: Iterable[StageResult], expected: Iterable[ExpectedStage], now: datetime,
           policy_digest: str = "", waivers: Mapping[str, AppliedWaiver] | None = None,
           approval: Approval | None = None) -> Verdict:
    """`waivers`: the waivers active at `now`, by fingerprint; the verdict lists those that applied. `approval`: a
    person accepted the missing evidence it names (each gap as they read it); those reasons stay listed, as not
    deciding, and the verdict carries the approval when it accepted any of them. Missing evidence it does not name
    still decides, and so does every blocking finding, those of an accepted stage included. An approval never
    makes a run that checked nothing pass."""
    by_name = {r.stage: r for r in results}
    waivers = waivers or {}
    expected = list(expected)
    missing = _missing_evidence(expected, by_name) + _nothing_checked(expected)
    missing, approval = _accepted(missing, approval)
    accepted_stages = {r.stage for r in missing if approval and gap_key(r.stage, _unnoted(r.message)) in
                       approval.accepted}
    if (approval is not None and all(r.severity is Severity.low for r in missing)
            and not _anything_checked(expected, by_name)):
        missing.append(Reason(stage="approval", severity=Severity.high, fingerprint=ALL_ACCEPTED,
                              message="missing_evidence: an approval cannot stand in for all the evidence: the "
                                      "gaps it accepted are every check of this run, so nothing was checked"))
    blocking = [reason for r in by_name.values() if r.status is not Status.error or r.stage in accepted_stages
                for reason in _blocking_reasons(r, frozenset(waivers))]
    applied = _applied_waivers(by_name.values(), waivers)
    if any(reason.severity is not Severity.low for reason in missing):
        decision = Decision.INCONCLUSIVE
    elif blocking:
        decision = Decision.NO_GO
    else:
        decision = Decision.GO
    reasons = sorted(missing + blocking, key=lambda x: (-x.severity.rank, x.stage, x.message))
    advisory_data = next((r.advisory_data for r in by_name.values() if r.advisory_data is not None), None)
    return Verdict(decision=decision, reasons=reasons, decided_at=now, policy_digest=policy_digest, waivers=applied,
                   advisory_data=advisory_data, approval=approval)


_NOTE = " (accepted by "


def _unnoted(message: str) -> str:
    return message.split(_NOTE, 1)[0]


def _anything_checked(expected: list[ExpectedStage], by_name: dict[str, StageResult]) -> bool:
    """Whether a stage that checks the release (not provisioning, not the gate's own steps) produced evidence."""
    return any(_evidence_problem(by_name.get(stage.name)) is None for stage in expected
               if not stage.name.startswith(("provision", "gate:")))


def _accepted(missing: list[Reason], approval: Approval | None) -> tuple[list[Reason], Approval | None]:
    """The missing-evidence reasons with those the approval accepted no longer deciding (low, and saying who
    accepted them); the approval as far as it applied (None when it accepted nothing this verdict holds)."""
    if approval is None:
        return missing, None
    accepted = set(approval.accepted)
    applied = [gap_key(r.stage, r.message) for r in missing if r.fingerprint not in NEVER_ACCEPTED
               and r.severity is not Severity.low and gap_key(r.stage, r.message) in accepted]
    if not applied:
        return missing, None
    note = f"{_NOTE}{approval.approver} at {approval.approved_at:%Y-%m-%d %H:%M} UTC: not deciding)"
    return ([r.model_copy(update={"severity": Severity.low, "message": r.message + note})
             if gap_key(r.stage, r.message) in applied else r for r in missing],
            approval.model_copy(update={"accepted": applied}))


def _applied_waivers(results: Iterable[StageResult], waivers: Mapping[str, AppliedWaiver]) -> list[AppliedWaiver]:
    hits = {f.fingerprint: f for r in results for f in r.findings if f.blocking and f.fingerprint in waivers}
    return [waivers[fp].model_copy(update={"title": f.title}) for fp, f in sorted(hits.items())]


def _nothing_checked(expected: list[ExpectedStage]) -> list[Reason]:
    """A policy that plans no stage that checks the release: no evidence at all is never a pass. (A fault of the
    gate's own, alone, already says why nothing was checked.)"""
    if any(not stage.name.startswith("provision") for stage in expected):
        return []
    return [Reason(stage="policy", severity=Severity.high, fingerprint=NOTHING_CHECKED,
                   message="missing_evidence: the policy plans no stage that checks the release (suites, load, "
                           "chaos, scans or alerts), so nothing was checked — add at least one")]


def _missing_evidence(expected: Iterable[ExpectedStage], by_name: dict[str, StageResult]) -> list[Reason]:
    reasons = []
    for stage in expected:
        result = by_name.get(stage.name)
        problem = _evidence_problem(result)
        if problem is None:
            continue
        severity = Severity.high if stage.required else Severity.low
        note = "" if stage.required else " (optional stage: not deciding)"
        reasons.append(Reason(stage=stage.name, severity=severity, message=f"missing_evidence: {problem}{note}",
                              fingerprint=fingerprint("missing-evidence", stage.name)))
    return reasons


def _evidence_problem(result: StageResult | None) -> str | None:
    if result is None:
        return "the stage produced no result (it did not run, or its task failed before writing one)"
    if result.status is Status.error:
        return f"the stage could not run: {result.error or result.summary}"
    if result.evidence_empty:
        return f"the stage produced no evidence: {result.summary}"
    return None


def _blocking_reasons(result: StageResult, waived: frozenset[str]) -> list[Reason]:
    reasons = [_reason(result.stage, f) for f in result.findings if f.blocking and f.fingerprint not in waived]
    if result.status is Status.failed and not any(f.blocking for f in result.findings):
        reasons.append(Reason(stage=result.stage, severity=Severity.high,
                              message=f"stage failed without a blocking finding: {result.summary}",
                              fingerprint=fingerprint("stage-failed", result.stage)))
    return reasons


def _reason(stage: str, finding: Finding) -> Reason:
    data = finding.data
    return Reason(stage=stage, message=finding.title, severity=finding.severity, fingerprint=finding.fingerprint,
                  value=data.get("value"), threshold=data.get("threshold"), evidence=finding.location)
