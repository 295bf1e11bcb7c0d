"""Budgets have alerts that would fire: rule reading, thresholds, plans and the generated promtool tests."""

from pathlib import Path

import pytest
import yaml

from releasegate.domain.models import Severity
from releasegate.policy import AlertBudgets, Budgets, FeedSeries
from releasegate.stages.alert_budgets import (
    alert_rules,
    boundary_tests,
    case_findings,
    case_id,
    cases,
    input_series,
    parse_duration,
    plan,
    read_threshold,
    render,
    rule_findings,
    unchecked,
)

DEMO = Path(__file__).resolve().parents[2] / "include" / "demo" / "releases"
HISTOGRAM = {"shape": "histogram", "metric": "http_request_duration_seconds_bucket", "labels": {"job": "inventory"}}
RATIO = {"shape": "ratio", "metric": "http_requests_total", "labels": {"job": "inventory"},
         "bad": {"status": "500"}, "good": {"status": "200"}}
MAPPINGS = AlertBudgets.model_validate({
    "p95_ms": {"alert": "InventoryHighLatencyP95", "series": HISTOGRAM},
    "error_rate": {"alert": "InventoryHighErrorRate", "series": RATIO}})
BUDGETS = Budgets(p95_ms=250, error_rate=0.01)


def demo_rules(version: str):
    return alert_rules({"alerts/rules.yml": (DEMO / version / "alerts" / "rules.yml").read_text()})


@pytest.mark.parametrize(("text", "seconds"), [("5m", 300), ("1h30m", 5400), ("0s", 0), ("90s", 90), ("250ms", 0.25)])
def test_prometheus_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_an_error():
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


@pytest.mark.parametrize(("expr", "operator", "value"), [
    ("histogram_quantile(0.95,\n  sum by (le) (rate(x_bucket[5m]))) > 0.25\n", ">", 0.25),
    ("sum(rate(errors[5m])) / sum(rate(all[5m])) >= 1e-2", ">=", 0.01),
    ('rate(x{path="#"}[5m]) > bool 3 # a comment', ">", 3),
    ("sum(rate(http_requests_total[5m])) < 5", "<", 5),
])
def test_the_threshold_is_the_comparison_at_the_end_of_the_expression(expr, operator, value):
    threshold = read_threshold(expr)

    assert (threshold.operator, threshold.value) == (operator, value)


def test_an_expression_without_a_trailing_comparison_has_no_threshold():
    assert read_threshold("absent(up{job='x'})") is None


def test_demo_rules_are_read_with_their_for_durations():
    rules = demo_rules("1.0.0")

    assert {name: r[0].for_s for name, r in rules.items()} == {
        "InventoryHighErrorRate": 120, "InventoryHighLatencyP95": 300, "InventoryDown": 60}


def test_a_mapped_budget_whose_alert_is_missing_is_a_blocking_high_finding():
    checks = plan(BUDGETS, MAPPINGS, demo_rules("1.1.0"))

    (found,) = rule_findings(checks, ["alerts/rules.yml"])

    assert found.title == "budget p95_ms has no alert: InventoryHighLatencyP95 not found in alerts/rules.yml"
    assert found.severity is Severity.high and found.blocking and found.rule == "budget-alert-missing"


def test_thresholds_are_compared_in_the_budgets_unit():
    checks = plan(BUDGETS, MAPPINGS, demo_rules("1.0.0"))

    assert {c.budget: c.threshold_in_budget_unit() for c in checks} == {"p95_ms": 250, "error_rate": 0.01}
    assert rule_findings(checks, ["alerts/rules.yml"]) == []


def test_a_threshold_looser_than_the_budget_is_a_finding():
    rules = alert_rules({"rules.yml": "groups:\n- name: g\n  rules:\n  - alert: InventoryHighLatencyP95\n"
                                      "    expr: histogram_quantile(0.95, x_bucket) > 0.3\n    for: 5m\n"})

    (found,) = rule_findings(plan(Budgets(p95_ms=250), MAPPINGS, rules), ["rules.yml"])

    assert found.rule == "budget-alert-threshold" and "above 300 ms, looser than the 250 ms budget" in found.title


def test_a_minimum_budget_is_breached_below_its_threshold():
    rules = alert_rules({"r.yml": "groups:\n- name: g\n  rules:\n  - alert: LowThroughput\n"
                                  "    expr: sum(rate(http_requests_total[5m])) < 3\n"})
    mappings = AlertBudgets.model_validate(
        {"min_rps": {"alert": "LowThroughput", "series": {"shape": "rate", "metric": "http_requests_total"}}})

    (check,) = plan(Budgets(min_rps=5), mappings, rules)

    assert [f.rule for f in rule_findings([check], ["r.yml"])] == ["budget-alert-threshold"]
    assert [(c.name, round(c.value, 3)) for c in cases(check)] == [("fires", 4.75), ("quiet", 5.25)]


def test_of_two_rules_with_one_name_the_first_to_fire_is_checked():
    rules = alert_rules({"r.yml": "groups:\n- name: g\n  rules:\n"
                                  "  - {alert: InventoryHighLatencyP95, expr: 'q > 0.5', for: 1m}\n"
                                  "  - {alert: InventoryHighLatencyP95, expr: 'q > 0.2', for: 10m}\n"})

    (check,) = plan(Budgets(p95_ms=250), MAPPINGS, rules)

    assert check.threshold.value == 0.2 and check.rule.for_s == 600


def test_budgets_mapped_but_not_set_are_not_checked():
    assert unchecked(Budgets(p95_ms=250), MAPPINGS) == ["error_rate"]
    assert [c.budget for c in plan(Budgets(p95_ms=250), MAPPINGS, demo_rules("1.0.0"))] == ["p95_ms"]


def test_cases_past_the_budget_after_for_not_before_it_and_quiet_under_it():
    check = plan(BUDGETS, MAPPINGS, demo_rules("1.0.0"))[0]

    assert [(c.name, round(c.value, 6), c.eval_s, c.expect_firing) for c in cases(check)] == [
        ("fires", 262.5, 420, True), ("early", 262.5, 240, False), ("quiet", 237.5, 420, False)]


def test_the_quiet_case_sits_under_a_threshold_stricter_than_the_budget():
    rules = alert_rules({"r.yml": "groups:\n- name: g\n  rules:\n"
                                  "  - {alert: InventoryHighLatencyP95, expr: 'q > 0.2', for: 0s}\n"})

    (check,) = plan(Budgets(p95_ms=250), MAPPINGS, rules)

    assert [(c.name, round(c.value, 6)) for c in cases(check)] == [("fires", 262.5), ("quiet", 190)]


def test_histogram_series_put_every_quantile_on_the_value():
    series = input_series(FeedSeries.model_validate(HISTOGRAM), 0.2625, 10)

    assert series == [
        {"series": 'http_request_duration_seconds_bucket{job="inventory",le="0.2625"}', "values": "0x10"},
        {"series": 'http_request_duration_seconds_bucket{job="inventory",le="+Inf"}', "values": "0+100x10"}]


def test_ratio_series_split_a_thousand_requests_per_interval():
    series = input_series(FeedSeries.model_validate(RATIO), 0.0105, 7)

    assert [s["values"] for s in series] == ["0+10.5x7", "0+989.5x7"]
    assert series[0]["series"] == 'http_requests_total{job="inventory",status="500"}'


def test_rate_and_gauge_series():
    rate = FeedSeries(shape="rate", metric="x_total")
    gauge = FeedSeries(shape="gauge", metric="x", labels={"a": 'q"uote'})

    assert input_series(rate, 4.75, 5) == [{"series": "x_total{}", "values": "0+285x5"}]
    assert input_series(gauge, 0.5, 5) == [{"series": 'x{a="q\\"uote"}', "values": "0.5x5"}]


def test_the_generated_file_is_a_promtool_test_document_with_traceable_expectations():
    checks = plan(BUDGETS, MAPPINGS, demo_rules("1.0.0"))

    doc = yaml.safe_load(render(boundary_tests(checks, ["rules.yml"])))

    assert doc["rule_files"] == ["rules.yml"] and doc["evaluation_interval"] == "60s"
    assert len(doc["tests"]) == 4
    exprs = [e["expr"] for t in doc["tests"] for e in t["promql_expr_test"]]
    assert [case_id(e) for e in exprs] == ["p95_ms/fires", "p95_ms/early", "p95_ms/quiet",
                                           "error_rate/fires", "error_rate/early", "error_rate/quiet"]
    assert exprs[0].startswith('max(ALERTS{alertname="InventoryHighLatencyP95",alertstate="firing"}) or vector(0)')


def test_missing_alerts_get_no_generated_tests():
    checks = plan(BUDGETS, MAPPINGS, demo_rules("1.1.0"))

    doc = boundary_tests(checks, ["rules.yml"])

    assert [t["name"].split(":")[0] for t in doc["tests"]] == ["budget error_rate", "budget error_rate"]


def test_failed_cases_become_findings_named_by_budget_and_case():
    checks = plan(BUDGETS, MAPPINGS, demo_rules("1.0.0"))
    detail = 'expr: "max(ALERTS{…}) or vector(0) # releasegate: p95_ms/fires", time: 7m,\n  exp: {} 1E+00\n  got: {} 0E+00'

    (found,) = case_findings({"p95_ms/fires": detail, "p50_ms/fires": "unknown"}, checks, "alerts/budget-tests.yml")

    assert found.rule == "budget-alert-fires" and found.blocking and found.severity is Severity.high
    assert found.title == ("budget p95_ms: InventoryHighLatencyP95 did not fire at 262.5 ms, past the 250 ms budget, "
                           "held for 7m (for: 5m)")
    assert found.evidence == detail
