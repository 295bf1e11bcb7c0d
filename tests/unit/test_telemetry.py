"""The /metrics cross-check on recorded scrapes of the demo (tests/fixtures/metrics, see its README)."""

import math
from pathlib import Path

import pytest

from releasegate.domain.errors import StageError
from releasegate.domain.models import Severity
from releasegate.policy import Telemetry
from releasegate.stages.telemetry import (
    Sample,
    counter_increase,
    cross_check,
    missing_metrics,
    parse_prometheus_text,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "metrics"
BEFORE = (FIXTURES / "demo-1.0.0-before.prom").read_text()
AFTER = (FIXTURES / "demo-1.0.0-after.prom").read_text()
SENT, FAILED = 62, 5  # what the recording sent between the scrapes (5 were 404s)
SPEC = Telemetry(required_metrics=["http_requests_total", "http_request_duration_seconds_bucket"],
                 errors_selector={"status": "[45].."}, exclude={"endpoint": ["/metrics"]}, tolerance=0.05)


def test_the_demo_scrape_parses_into_samples_with_labels():
    samples = parse_prometheus_text(AFTER)

    assert Sample("http_requests_total", {"method": "GET", "endpoint": "/items/<int:item_id>", "status": "404"}, 5) \
        in samples
    inf = [s for s in samples if s.labels.get("le") == "+Inf" and s.labels["endpoint"] == "/items"]
    assert inf[0].value == 30 and len(samples) == 76


def test_escapes_special_values_timestamps_and_comments():
    text = ('# HELP x A "help" line\n# TYPE x gauge\n'
            'x{path="a\\"b\\\\c\\nd",empty=""} +Inf 1700000000000\n'
            'y NaN\nz{le="0.5",} -1.5e3\n# EOF\n')

    x, y, z = parse_prometheus_text(text)

    assert x.labels == {"path": 'a"b\\c\nd', "empty": ""} and x.value == math.inf
    assert math.isnan(y.value) and z == Sample("z", {"le": "0.5"}, -1500.0)


@pytest.mark.parametrize("line", ["x{a=b} 1", "x 1 2 3", "x{a=\"1\"}", "x{a=\"1\" b=\"2\"} 1", "x one"])
def test_a_broken_line_is_a_stage_error(line):
    with pytest.raises(StageError, match="line 1"):
        parse_prometheus_text(line + "\n")


def test_the_request_counter_increase_leaves_out_excluded_series():
    before, after = parse_prometheus_text(BEFORE), parse_prometheus_text(AFTER)

    assert counter_increase(before, after, "http_requests_total", {}) == SENT + 1  # + the first scrape itself
    assert counter_increase(before, after, "http_requests_total", {"endpoint": ["/metrics"]}) == SENT
    assert counter_increase(before, after, "http_requests_total", {}, {"status": "[45].."}) == FAILED


def test_a_counter_that_went_down_was_reset_and_counts_from_zero():
    before = [Sample("c_total", {"a": "1"}, 100)]
    after = [Sample("c_total", {"a": "1"}, 7)]

    assert counter_increase(before, after, "c_total", {}) == 7


def test_required_metrics_match_a_sample_or_its_family():
    samples = parse_prometheus_text(AFTER)

    assert missing_metrics(["http_request_duration_seconds", "http_requests_total", "db_pool_in_use"], samples) \
        == ["db_pool_in_use"]


def test_counters_that_agree_with_locust_pass():
    metrics, findings = cross_check(SPEC, BEFORE, AFTER, requests=SENT, failures=FAILED)

    assert findings == []
    assert {m.name: m.value for m in metrics}["telemetry.requests"] == SENT
    assert all(m.passed for m in metrics if m.operator)


def test_a_request_counter_that_disagrees_with_locust_is_a_finding_with_both_numbers():
    metrics, (found,) = cross_check(SPEC, BEFORE, AFTER, requests=80, failures=FAILED)

    assert found.rule == "telemetry-requests-mismatch" and found.blocking and found.severity is Severity.high
    assert "counted 62 requests" in found.title and "Locust counted 80" in found.title
    assert (found.data["service"], found.data["locust"]) == (62, 80)
    assert not next(m for m in metrics if m.name == "telemetry.requests_difference").passed


def test_errors_the_service_did_not_count_are_a_finding():
    _, findings = cross_check(SPEC, BEFORE, AFTER, requests=SENT, failures=12)

    assert [f.rule for f in findings] == ["telemetry-errors-mismatch"]
    assert "counted 5 errors" in findings[0].title and "Locust counted 12" in findings[0].title


def test_a_difference_within_tolerance_passes():
    _, findings = cross_check(SPEC, BEFORE, AFTER, requests=64, failures=FAILED)

    assert findings == []


def test_a_missing_required_metric_is_a_finding():
    after = "\n".join(ln for ln in AFTER.splitlines() if "_bucket" not in ln)

    _, findings = cross_check(SPEC, BEFORE, after, requests=SENT, failures=FAILED)

    assert [f.title for f in findings] == ["telemetry: required metric http_request_duration_seconds_bucket is missing"]


def test_without_the_request_counter_there_is_nothing_to_compare():
    after = "\n".join(ln for ln in AFTER.splitlines() if not ln.startswith("http_requests_total"))

    metrics, findings = cross_check(SPEC, BEFORE, after, requests=SENT, failures=FAILED)

    assert metrics == [] and [f.title for f in findings] == ["telemetry: required metric http_requests_total is missing"]
