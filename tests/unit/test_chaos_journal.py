"""The chaos stage's journal parser, findings, metrics and timeline on recorded Chaos Toolkit journals."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from releasegate.domain.errors import StageError
from releasegate.policy import ChaosExperiment
from releasegate.stages.chaos import (
    fault_window,
    findings_for,
    metrics_for,
    parse_journal,
    timeline,
    var_args,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chaos"
SPEC = ChaosExperiment(name="warehouse-down", file="chaos/warehouse-down.yaml")


def journal(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.journal.json").read_text(encoding="utf-8"))


def test_held_journal_has_steady_state_rollbacks_and_measurements():
    outcome = parse_journal(journal("held-warehouse-down"))

    assert (outcome.status, outcome.deviated, outcome.steady_before, outcome.steady_after) == \
        ("completed", False, True, True)
    assert [(a.name, a.status) for a in outcome.rollbacks] == \
        [("resume-warehouse", "succeeded"), ("wait-for-recovery", "succeeded")]
    assert outcome.measurements[0]["error_rate"] == 0.0 and outcome.recovery_s is not None
    assert findings_for("warehouse-down", SPEC, outcome) == []


def test_deviated_journal_is_a_blocking_high_finding_with_the_probe_error():
    outcome = parse_journal(journal("deviated-warehouse-down"))

    [finding] = findings_for("warehouse-down", SPEC, outcome)
    assert (outcome.status, outcome.steady_before, outcome.steady_after) == ("failed", True, False)
    assert finding.rule == "warehouse-down:steady-state-deviated"
    assert finding.severity.value == "high" and finding.blocking
    assert "took too long" in finding.evidence
    assert all(a.status == "succeeded" for a in outcome.rollbacks)


def test_deviation_on_a_completed_journal_is_still_a_finding():
    outcome = parse_journal(journal("deviated-warehouse-slow"))

    [finding] = findings_for("warehouse-slow", SPEC, outcome)
    assert outcome.status == "completed" and outcome.deviated
    assert "HTTP 500" in finding.evidence


def test_failed_rollback_is_a_finding():
    doc = journal("held-warehouse-down")
    doc["rollbacks"][1]["status"] = "failed"

    rules = [f.rule for f in findings_for("warehouse-down", SPEC, parse_journal(doc))]

    assert rules == ["warehouse-down:rollback:wait-for-recovery"]


def test_fingerprint_is_stable_across_runs():
    one = findings_for("warehouse-down", SPEC, parse_journal(journal("deviated-warehouse-down")))
    other_doc = copy.deepcopy(journal("deviated-warehouse-down"))
    other_doc["start"] = "2030-01-01T00:00:00+00:00"
    other = findings_for("warehouse-down", SPEC, parse_journal(other_doc))
    assert one[0].fingerprint == other[0].fingerprint


def test_metrics_measure_the_fault_and_the_recovery():
    metrics = {m.name: m.value for m in metrics_for("w", parse_journal(journal("deviated-warehouse-down")))}

    assert metrics["chaos.w.fault_error_rate"] == 1.0
    assert metrics["chaos.w.fault_requests"] >= 1
    assert metrics["chaos.w.fault_p50_ms"] >= 900  # every request hit the 1 s probe timeout
    assert "chaos.w.recovery_s" in metrics


def test_timeline_is_relative_and_has_fault_probe_and_rollback_windows():
    outcome = parse_journal(journal("held-warehouse-slow"))
    entries = timeline("warehouse-slow", outcome, outcome.start)

    kinds = {e["kind"] for e in entries}
    fault = next(e for e in entries if e["kind"] == "fault")
    assert {"experiment", "probe", "action", "rollback", "fault"} <= kinds
    assert all(set(e) >= {"start_s", "end_s", "label", "kind"} and e["end_s"] >= e["start_s"] >= 0 for e in entries)
    assert fault["end_s"] - fault["start_s"] >= 3.5  # latency then resets, about 2 s each
    start, end = fault_window(outcome)
    assert start >= outcome.start and end <= outcome.end


@pytest.mark.parametrize("doc", [{}, [], {"status": "weird"}, {"status": "completed"}])
def test_not_a_journal_is_a_stage_error(doc):
    with pytest.raises(StageError):
        parse_journal(doc)


def test_vars_are_typed_and_limited_to_declared_configuration():
    args = var_args({"base_url": "http://x", "dep_w_pid": 12, "dep_w_pid_created": 1.5, "other": "y"},
                    {"base_url", "dep_w_pid", "dep_w_pid_created"})
    assert args == ["--var", "base_url=http://x", "--var", "dep_w_pid:int=12", "--var", "dep_w_pid_created:float=1.5"]
