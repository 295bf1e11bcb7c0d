"""The readiness checklist reflects the evidence, item by item: each item is ticked only by its stage's evidence and
quotes it (counts, measured values, the advisory data); a stage the verdict expected without a result is 'no
evidence'; a check the policy does not plan says so."""

from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from releasegate.domain.models import (
    AdvisoryData,
    Decision,
    Finding,
    Metric,
    Reason,
    Severity,
    Status,
)
from releasegate.report import NOT_PLANNED, readiness_checklist
from tests.support import builders

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
stage = partial(builders.stage_result, started=T0, seconds=3)  # stage(name, kind, status, **fields)
verdict = partial(builders.verdict, decided_at=T0 + timedelta(minutes=1))  # verdict(decision=GO, reasons=())


def suite(name, passed, failed=0, errors=0, skipped=0, **kw):
    counts = {"passed": passed, "failed": failed, "error": errors, "skipped": skipped, "flaky": 0}
    return stage(f"pytest[{name}]", "unit", kw.pop("status", Status.failed if failed else Status.passed),
                 metrics=[Metric(name=f"tests_{k}", value=v) for k, v in counts.items()] + kw.pop("metrics", []),
                 summary=f"pytest[{name}]: {passed} passed; junit: /e/pytest/{name}", **kw)


def blocking(kind, title):
    return Finding(kind=kind, rule=title, severity=Severity.high, title=title, fingerprint=title)


def missing(stage_name, severity=Severity.high):
    return Reason(stage=stage_name, severity=severity,
                  message="missing_evidence: the stage produced no result (it did not run, or its task failed)")


DATA = AdvisoryData(source="osv_data", location="/p/advisories.osv.jsonl", sha256="3f2a" * 16, advisories=2661,
                    newest_modified=datetime(2026, 11, 29, 17, 22, tzinfo=UTC), age_days=0.7, max_age_days=30)


def items(results, v=None):
    return {c.item: c for c in readiness_checklist(results, v or verdict())}


def test_a_go_runs_suites_are_each_ticked_with_their_counts():
    checklist = items([suite("unit", 24, skipped=2), suite("api", 40)])

    assert checklist["suite pytest[unit] passed"].checked is True
    assert checklist["suite pytest[unit] passed"].evidence == (
        "pytest[unit]: 24 passed, 0 failed, 0 errors, 0 flaky, 2 skipped")
    assert checklist["suite pytest[api] passed"].checked is True
    assert "40 passed" in checklist["suite pytest[api] passed"].evidence
    assert "unit/integration/contract suites passed" not in checklist


def test_a_failing_suite_is_unticked_and_names_what_blocks():
    checklist = items([suite("unit", 23, failed=1, findings=[blocking("test", "tests/test_a.py::test_b failed")])],
                      verdict(Decision.NO_GO))

    item = checklist["suite pytest[unit] passed"]
    assert item.checked is False
    assert item.evidence.endswith("1 blocking: tests/test_a.py::test_b failed")


def test_a_coverage_shortfall_unticks_the_suite_and_shows_both_numbers():
    coverage = Metric(name="coverage", value=99.84, unit="%", threshold=100, operator=">=", passed=False)
    checklist = items([suite("unit", 24, metrics=[coverage], status=Status.failed,
                             findings=[blocking("coverage", "coverage 99.84% is below the required 100%")])])

    item = checklist["suite pytest[unit] passed"]
    assert item.checked is False
    assert "coverage 99.84% (required 100%)" in item.evidence


def test_a_suite_that_did_not_run_is_unticked_with_its_cause():
    errored = stage("pytest[unit]", "unit", Status.error, summary="pytest[unit]: could not run",
                    error="the suite did not run: pytest usage error (exit 4): ERROR: file or directory not found: x")
    checklist = items([errored], verdict(Decision.INCONCLUSIVE))

    item = checklist["suite pytest[unit] passed"]
    assert item.checked is False
    assert item.evidence.startswith("pytest[unit]: could not run: the suite did not run") and "not found: x" in item.evidence


def test_a_suite_with_too_few_tests_is_no_evidence():
    empty = suite("unit", 0, evidence_empty=True)

    item = items([empty], verdict(Decision.INCONCLUSIVE))["suite pytest[unit] passed"]
    assert item.checked is False and item.evidence.startswith("pytest[unit]: no evidence:")


def test_a_suite_the_verdict_expected_without_a_result_is_no_evidence():
    checklist = items([suite("unit", 3)], verdict(Decision.INCONCLUSIVE, [missing("pytest[api]")]))

    assert checklist["suite pytest[unit] passed"].checked is True
    assert checklist["suite pytest[api] passed"].checked is False
    assert checklist["suite pytest[api] passed"].evidence == "no evidence: the stage produced no result"


def test_the_service_item_quotes_provisioning():
    checklist = items([stage("provision", "environment", summary="provision: healthy at http://127.0.0.1:5123 (pid 7)")])

    item = checklist["service started and answered its health check"]
    assert item.checked is True and item.evidence == "provision: healthy at http://127.0.0.1:5123 (pid 7)"


def test_no_service_item_without_an_environment():
    assert "service started and answered its health check" not in items([suite("unit", 1)])


@pytest.mark.parametrize(("p95", "held"), [(120, True), (312, False)])
def test_the_load_item_quotes_the_measured_values_against_the_budgets(p95, held):
    locust = stage("locust", "load", Status.passed if held else Status.failed, metrics=[
        Metric(name="p95", value=p95, unit="ms", threshold=250, operator="<=", passed=held),
        Metric(name="error_rate", value=0, threshold=0.01, operator="<=", passed=True),
        Metric(name="requests", value=1200)], summary="locust: 1200 requests; csv: /e/locust")

    item = items([locust])["load budgets held"]
    assert item.checked is held
    assert item.evidence.startswith(f"locust: p95 {p95} ms (budget 250), error_rate 0 (budget 0.01), requests 1200")


def test_the_sast_item_counts_findings_without_the_evidence_path():
    semgrep = stage("semgrep", "sast", summary="semgrep: 2 findings (0 blocking) in 14 files, 3.1 s; json: /e/s.json")

    item = items([semgrep])["no blocking SAST finding"]
    assert item.checked is True and item.evidence == "semgrep: 2 findings (0 blocking) in 14 files, 3.1 s"


def test_the_dependency_item_names_the_advisory_data():
    audit = stage("pip-audit", "dependencies", advisory_data=DATA,
                  summary="pip-audit: 0 vulnerabilities (0 blocking) in 0 of 12 dependencies, 2.0 s; json: /e/p.json")

    item = items([audit])["no blocking dependency advisory"]
    assert item.checked is True
    assert item.evidence == ("pip-audit: 0 vulnerabilities (0 blocking) in 0 of 12 dependencies, 2.0 s; advisory data: "
                             "osv_data advisories.osv.jsonl (sha256 3f2a3f2a3f2a, 2661 advisories, newest 2026-11-29, "
                             "0 days old, limit 30 days)")


def test_stale_advisory_data_unticks_the_dependency_item():
    stale = DATA.model_copy(update={"age_days": 400.0})
    audit = stage("pip-audit", "dependencies", Status.error, advisory_data=stale,
                  error="the advisory data is too old: its newest advisory was modified 2026-11-29, 400 days before")

    item = items([audit], verdict(Decision.INCONCLUSIVE))["no blocking dependency advisory"]
    assert item.checked is False and "too old" in item.evidence


def test_the_alert_and_chaos_items_quote_their_stages():
    alerts = stage("alerts", "alerts", summary="alerts: 1 rule files (4 rules, 0 not loading), 1 test files "
                                                "(3 test groups, 0 failures); logs: /e/alerts")
    chaos = stage("chaos", "chaos", Status.failed, findings=[blocking("chaos", "warehouse-down: steady state deviated")],
                  summary="chaos: 1/2 experiment(s) held their steady state, 1 finding(s); timeline: /e/t.json")

    checklist = items([alerts, chaos], verdict(Decision.NO_GO))
    assert checklist["alert rules tested"].checked is True
    assert checklist["alert rules tested"].evidence.endswith("(3 test groups, 0 failures)")
    assert checklist["chaos experiments held steady state"].checked is False
    assert checklist["chaos experiments held steady state"].evidence == (
        "chaos: 1/2 experiment(s) held their steady state, 1 finding(s); 1 blocking: warehouse-down: steady state "
        "deviated")


def test_checks_the_policy_does_not_plan_say_so():
    checklist = items([suite("unit", 5)])

    for item in ("load budgets held", "no blocking SAST finding", "no blocking dependency advisory",
                 "alert rules tested", "chaos experiments held steady state"):
        assert checklist[item].checked is False and checklist[item].evidence == NOT_PLANNED


def test_a_planned_stage_without_a_result_is_no_evidence():
    checklist = items([suite("unit", 5)], verdict(Decision.INCONCLUSIVE, [missing("alerts")]))

    assert checklist["alert rules tested"].evidence == "no evidence: the stage produced no result"
    assert checklist["every required stage produced evidence"].checked is False
    assert checklist["every required stage produced evidence"].evidence == "no evidence from alerts"


def test_the_evidence_item_is_ticked_when_every_required_stage_has_evidence():
    checklist = items([suite("unit", 5), stage("semgrep", "sast", summary="semgrep: 0 findings")])

    assert checklist["every required stage produced evidence"].checked is True
    assert checklist["every required stage produced evidence"].evidence == "2 required stage(s) with evidence"


def test_an_optional_stage_without_a_result_does_not_untick_the_evidence_item():
    checklist = items([suite("unit", 5)], verdict(Decision.GO, [missing("chaos", Severity.low)]))

    assert checklist["every required stage produced evidence"].checked is True
    assert checklist["chaos experiments held steady state"].evidence == "no evidence: the stage produced no result"
