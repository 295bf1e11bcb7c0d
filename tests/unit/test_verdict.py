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


def approval_of(before, *stages: str, by: str = "bob"):
    """An approval of the gaps of ``stages`` as the approver read them in the verdict ``before``."""
    from releasegate.domain.models import Approval
    from releasegate.domain.verdict import gap_key

    return Approval(approver=by, requested_by="alice", approved_at=NOW,
                    accepted=[gap_key(r.stage, r.message) for r in before.reasons if r.stage in stages])


def test_an_approval_of_the_missing_evidence_decides_on_the_rest():
    errored = [result("a", Status.error, error="schema unreachable"), result("b")]
    approved = decide(errored, EXPECTED, NOW, approval=approval_of(decide(errored, EXPECTED, NOW), "a"))

    assert approved.decision is Decision.GO
    assert approved.approval.approver == "bob" and len(approved.approval.accepted) == 1
    [reason] = [r for r in approved.reasons if r.stage == "a"]
    assert reason.severity is Severity.low and "accepted by bob" in reason.message and "schema unreachable" in reason.message
    # what still blocks still blocks: the approval covers missing evidence, never a finding
    blocked_results = [result("a", Status.error, error="x"), result("b", Status.failed, [finding("f1")])]
    blocked = decide(blocked_results, EXPECTED, NOW, approval=approval_of(decide(blocked_results, EXPECTED, NOW), "a"))
    assert blocked.decision is Decision.NO_GO and blocked.approval is not None


def test_the_findings_of_a_stage_whose_gap_was_accepted_still_decide():
    """A stage can end `error` and still report findings (a chaos run with one experiment aborted)."""
    chaos = [result("a", Status.error, [finding("lost-steady-state")], error="experiment net-delay aborted"),
             result("b")]
    approved = decide(chaos, EXPECTED, NOW, approval=approval_of(decide(chaos, EXPECTED, NOW), "a"))

    assert approved.decision is Decision.NO_GO
    assert "lost-steady-state" in [r.fingerprint for r in approved.reasons]


def test_an_approval_covers_the_gap_as_read_never_the_same_stage_failing_another_way():
    first = [result("a", Status.error, error="pytest usage error (exit 4)"), result("b")]
    later = [result("a", Status.error, error="database fixture exploded"), result("b")]
    approval = approval_of(decide(first, EXPECTED, NOW), "a")

    again = decide(later, EXPECTED, NOW, approval=approval)

    assert (again.decision, again.approval) == (Decision.INCONCLUSIVE, None)


def test_an_approval_never_passes_a_run_that_checked_nothing():
    from releasegate.domain.models import Approval
    from releasegate.domain.verdict import NOTHING_CHECKED, gap_key

    everything_errored = [result("a", Status.error, error="x"), result("b", Status.error, error="y")]
    before = decide(everything_errored, EXPECTED, NOW)
    all_of_it = decide(everything_errored, EXPECTED, NOW, approval=approval_of(before, "a", "b"))
    nothing = decide([], [ExpectedStage("provision")], NOW)
    forced = Approval(approver="bob", approved_at=NOW,
                      accepted=[gap_key(r.stage, r.message) for r in nothing.reasons])

    assert all_of_it.decision is Decision.INCONCLUSIVE
    assert "an approval cannot stand in for all the evidence" in all_of_it.reasons[0].message
    assert NOTHING_CHECKED in [r.fingerprint for r in nothing.reasons]
    assert decide([], [ExpectedStage("provision")], NOW, approval=forced).decision is Decision.INCONCLUSIVE


def test_an_approval_that_does_not_cover_every_gap_leaves_the_run_inconclusive():
    two_gaps = [result("a", Status.error, error="x")]  # b produced nothing either
    before = decide(two_gaps, EXPECTED, NOW)
    partly = decide(two_gaps, EXPECTED, NOW, approval=approval_of(before, "a"))
    unrelated = decide(two_gaps, EXPECTED, NOW, approval=approval_of(before, "zzz"))

    assert partly.decision is Decision.INCONCLUSIVE
    assert [r.stage for r in partly.reasons if r.severity is not Severity.low] == ["b"]
    assert (unrelated.decision, unrelated.approval) == (Decision.INCONCLUSIVE, None)
