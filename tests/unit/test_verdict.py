"""decide(): a table of cases; missing data is never a pass."""

from datetime import UTC, datetime

import pytest

from releasegate.domain.models import AppliedWaiver, Decision, Severity, StageResult, Status
from releasegate.domain.verdict import ExpectedStage, decide
from tests.support.builders import finding, stage_result

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def result(stage: str, status: Status = Status.passed, findings=(), empty=False, error=None) -> StageResult:
    return stage_result(stage, "x", status, started=NOW, findings=findings, evidence_empty=empty, error=error)


EXPECTED = [ExpectedStage("a"), ExpectedStage("b"), ExpectedStage("opt", required=False)]
CASES = [
    ("all passed", [result("a"), result("b"), result("opt")], Decision.GO),
    ("optional stage missing", [result("a"), result("b")], Decision.GO),
    ("optional stage errored", [result("a"), result("b"), result("opt", Status.error, error="x")], Decision.GO),
    ("blocking finding", [result("a", Status.failed, [finding("f1")]), result("b")], Decision.NO_GO),
    ("non-blocking finding only", [result("a", Status.passed, [finding("f1", False)]), result("b")], Decision.GO),
    ("required stage errored", [result("a", Status.error, error="semgrep not found"), result("b")],
     Decision.INCONCLUSIVE),
    ("required stage missing", [result("a")], Decision.INCONCLUSIVE),
    ("required stage empty", [result("a", empty=True), result("b")], Decision.INCONCLUSIVE),
    ("error beats blocking", [result("a", Status.failed, [finding("f1")]), result("b", Status.error, error="x")],
     Decision.INCONCLUSIVE),
    ("failed without finding", [result("a", Status.failed), result("b")], Decision.NO_GO),
]


@pytest.mark.parametrize(("name", "results", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decision_table(name, results, expected):
    assert decide(results, EXPECTED, NOW).decision is expected


def test_waived_blocking_finding_no_longer_blocks():
    waiver = AppliedWaiver(id=7, fingerprint="f1", reason="accepted until the fix ships", approver="cto", expires_on="2026-12-31")
    verdict = decide([result("a", Status.failed, [finding("f1")]), result("b")], EXPECTED, NOW, waivers={"f1": waiver})
    assert verdict.decision is Decision.GO
    assert [(w.id, w.title) for w in verdict.waivers] == [(7, "finding f1")]


def test_a_waiver_for_a_finding_not_seen_is_not_listed_as_applied():
    waiver = AppliedWaiver(id=8, fingerprint="gone", reason="r", approver="a", expires_on="2026-12-31")
    verdict = decide([result("a"), result("b")], EXPECTED, NOW, waivers={"gone": waiver})
    assert (verdict.decision, verdict.waivers) == (Decision.GO, [])


def test_reasons_name_the_stage_and_come_most_severe_first():
    results = [result("a", Status.failed, [finding("low", severity=Severity.low), finding("crit", severity=Severity.critical)]),
               result("b", Status.error, error="pip-audit output unreadable")]
    reasons = decide(results, EXPECTED, NOW).reasons
    assert [r.severity for r in reasons] == sorted([r.severity for r in reasons], key=lambda s: -s.rank)
    missing = [r for r in reasons if r.stage == "b"]
    assert missing and "pip-audit output unreadable" in missing[0].message
    assert missing[0].message.startswith("missing_evidence:")


def test_same_inputs_give_the_same_verdict():
    results = [result("a", Status.failed, [finding("f1")]), result("b")]
    assert decide(results, EXPECTED, NOW, "sha256:x") == decide(results, EXPECTED, NOW, "sha256:x")


def test_a_policy_that_checks_nothing_is_never_go():
    provision_only = decide([result("provision")], [ExpectedStage("provision")], NOW)
    nothing = decide([], [], NOW)
    assert (provision_only.decision, nothing.decision) == (Decision.INCONCLUSIVE, Decision.INCONCLUSIVE)
    assert "plans no stage that checks the release" in nothing.reasons[0].message


def approval_of(*stages: str, by: str = "bob"):
    from releasegate.domain.fingerprint import fingerprint
    from releasegate.domain.models import Approval

    return Approval(approver=by, requested_by="alice", approved_at=NOW,
                    accepted=[fingerprint("missing-evidence", s) for s in stages])


def test_an_approval_of_the_missing_evidence_decides_on_the_rest():
    errored = [result("a", Status.error, error="schema unreachable"), result("b")]
    approved = decide(errored, EXPECTED, NOW, approval=approval_of("a"))

    assert approved.decision is Decision.GO
    assert approved.approval.approver == "bob" and len(approved.approval.accepted) == 1
    [reason] = [r for r in approved.reasons if r.stage == "a"]
    assert reason.severity is Severity.low and "accepted by bob" in reason.message and "schema unreachable" in reason.message
    # what still blocks still blocks: the approval covers missing evidence, never a finding
    blocked = decide([result("a", Status.error, error="x"), result("b", Status.failed, [finding("f1")])], EXPECTED,
                     NOW, approval=approval_of("a"))
    assert blocked.decision is Decision.NO_GO and blocked.approval is not None


def test_an_approval_that_does_not_cover_every_gap_leaves_the_run_inconclusive():
    two_gaps = [result("a", Status.error, error="x")]  # b produced nothing either
    partly = decide(two_gaps, EXPECTED, NOW, approval=approval_of("a"))
    unrelated = decide(two_gaps, EXPECTED, NOW, approval=approval_of("zzz"))

    assert partly.decision is Decision.INCONCLUSIVE
    assert [r.stage for r in partly.reasons if r.severity is not Severity.low] == ["b"]
    assert (unrelated.decision, unrelated.approval) == (Decision.INCONCLUSIVE, None)
