"""Parsers on recorded tool output: pytest's JUnit XML and Locust's stats CSV."""

from pathlib import Path

import pytest

from releasegate.domain.errors import StageError
from releasegate.stages.junit import parse_junit
from releasegate.stages.locust_load import AGGREGATED, parse_stats_csv

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_junit_outcomes_and_node_ids():
    cases = parse_junit((FIXTURES / "junit" / "pytest-xunit1.xml").read_text())
    by_id = {c.node_id: c for c in cases}
    assert by_id["tests/unit/test_pricing.py::test_total"].outcome == "passed"
    assert by_id["tests/unit/test_pricing.py::test_discount[10-5]"].outcome == "failed"
    assert "assert" in by_id["tests/unit/test_pricing.py::test_discount[10-5]"].message
    assert by_id["tests/unit/test_pricing.py::test_skipped"].outcome == "skipped"


@pytest.mark.parametrize("text", ["", "<testsuites><testsuite>", "<html><body/></html>"])
def test_unreadable_junit_is_a_stage_error(text):
    with pytest.raises(StageError):
        parse_junit(text)


def test_locust_stats_csv_is_read_per_endpoint():
    stats = parse_stats_csv((FIXTURES / "locust" / "run_stats.csv").read_text())
    total = stats[AGGREGATED]
    assert total.requests > 0
    assert total.p95_ms >= total.p50_ms
    assert sum(s.requests for name, s in stats.items() if name != AGGREGATED) == total.requests


@pytest.mark.parametrize("text", ["", "Type,Name\nGET,/x\n", "garbage without header"])
def test_unreadable_locust_csv_is_a_stage_error(text):
    with pytest.raises(StageError):
        parse_stats_csv(text)


def test_locust_json_totals_include_every_request_name():
    from releasegate.stages.locust_load import locust_json_totals

    requests, failures = locust_json_totals(FIXTURES / "locust" / "soak.json")
    csv_total = parse_stats_csv((FIXTURES / "locust" / "soak_stats.csv").read_text())[AGGREGATED]
    # The same run: the JSON also counts requests that completed during Locust's stop timeout.
    assert requests >= csv_total.requests and failures >= csv_total.failures
    assert requests - csv_total.requests < 0.1 * csv_total.requests
    assert locust_json_totals(FIXTURES / "locust" / "missing.json") is None
