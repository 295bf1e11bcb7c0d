"""Judging a load test's percentiles against its baseline: the allowed change, the U test's say, few samples."""

from releasegate.policy import Load
from releasegate.stages.locust_baseline import BaselineRun, judge

LOAD = Load.model_validate({"locustfile": "locustfile.py", "budgets": {"p95_ms": 1000},
                            "baseline": {"max_change": {"p95_ms": 0.2}, "min_samples": 5}})
SPEC = LOAD.baseline
BASE = BaselineRun("rg-1", "1.0.0", {"p95_ms": (100.0, [95.0, 100, 102, 98, 101, 99, 100, 103])})


def test_a_rise_within_the_allowed_change_passes():
    judged = judge(LOAD, SPEC, {"p95_ms": (115.0, [110.0, 115, 118, 112, 116, 114, 117, 113])}, BASE)
    assert judged.findings == []
    [metric] = judged.metrics
    assert (metric.name, metric.value, metric.threshold, metric.passed) == ("baseline.p95_ms_change", 0.15, 0.2, True)
    assert "p95 115 ms vs 100 ms (+15.0%" in judged.summary


def test_a_significant_rise_beyond_it_blocks_with_value_baseline_and_change():
    judged = judge(LOAD, SPEC, {"p95_ms": (200.0, [190.0, 200, 210, 195, 205, 198, 202, 199])}, BASE)
    [finding] = judged.findings
    assert finding.blocking and finding.rule == "baseline.p95_ms"
    assert finding.title.startswith("p95 200 ms is +100.0% over the baseline 100 ms (1.0.0's GO, run rg-1), more "
                                    "than the allowed +20%")
    assert finding.data["p_value"] < 0.01


def test_a_rise_the_u_test_does_not_support_does_not_block():
    """The overall p95 rose by 30 %, but the intervals overlap completely: one slow moment, not a shift."""
    judged = judge(LOAD, SPEC, {"p95_ms": (130.0, [96.0, 99, 101, 103, 98, 100, 102, 97])}, BASE)
    assert judged.findings == []
    assert judged.metrics[0].passed is True and "Mann-Whitney U p=" in judged.summary


def test_with_too_few_intervals_the_rise_alone_decides():
    judged = judge(LOAD, SPEC, {"p95_ms": (130.0, [96.0, 99])}, BASE)
    [finding] = judged.findings
    assert "fewer than 5 intervals a side: the rise alone decides" in finding.title


def test_without_a_baseline_nothing_is_compared_and_the_summary_says_so():
    judged = judge(LOAD, SPEC, {"p95_ms": (130.0, [96.0, 99])}, None)
    assert (judged.metrics, judged.findings) == ([], [])
    assert "no baseline yet" in judged.summary
