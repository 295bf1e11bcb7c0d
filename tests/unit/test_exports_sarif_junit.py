"""SARIF 2.1.0 of the scans' findings (validated against the OASIS schema) and the JUnit XML of the gate's checks."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from releasegate.domain.models import Decision, Finding, Metric, Reason, Severity, Status
from releasegate.exports import junit_report, sarif_log
from releasegate.exports.sarif import sarif_text
from releasegate.stages.semgrep import parse_semgrep
from tests.support.builders import stage_result, verdict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SCHEMA = json.loads((FIXTURES / "sarif" / "sarif-schema-2.1.0.json").read_text())


def semgrep_result():
    doc = json.loads((FIXTURES / "semgrep" / "v1.json").read_text())
    findings = parse_semgrep(doc, Severity.high)
    return stage_result("semgrep", "sast", Status.failed, seconds=3.0, findings=findings)


def dast_result():
    finding = Finding(kind="dast", rule="api-sql-injection", severity=Severity.critical, fingerprint="d" * 32,
                      title="SQL injection in the search parameter", location="GET /search?q=")
    return stage_result("dast", "dast", Status.failed, findings=[finding])


def validate(log: dict) -> None:
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)


def test_semgrep_findings_are_a_sarif_log_the_official_schema_accepts():
    result = semgrep_result()
    log = sarif_log([result, stage_result("pytest[unit]", "suite")], {"semgrep": "1.185.0"})
    validate(log)
    [run] = log["runs"]
    assert run["tool"]["driver"]["name"] == "semgrep" and run["tool"]["driver"]["version"] == "1.185.0"
    assert len(run["results"]) == len(result.findings) > 0
    first, finding = run["results"][0], result.findings[0]
    path, line = finding.location.rsplit(":", 1)
    physical = first["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == path and physical["region"]["startLine"] == int(line)
    assert run["tool"]["driver"]["rules"][first["ruleIndex"]]["id"] == first["ruleId"] == finding.rule


def test_an_api_scans_findings_are_located_by_operation():
    log = sarif_log([dast_result()], {})
    validate(log)
    [result] = log["runs"][0]["results"]
    assert result["level"] == "error"
    assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "GET /search?q="


def test_a_scan_that_could_not_run_says_so_in_its_run():
    errored = stage_result("semgrep", "sast", Status.error, error="semgrep: Invalid rule schema at rules.yml:3")
    log = sarif_log([errored], {})
    validate(log)
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "Invalid rule schema" in invocation["toolExecutionNotifications"][0]["message"]["text"]


def test_the_schema_check_is_not_a_formality():
    log = sarif_log([dast_result()], {})
    log["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        validate(log)


def test_the_same_results_give_the_same_bytes():
    assert sarif_text([semgrep_result()], {}) == sarif_text([semgrep_result()], {})


def junit_cases(text: str) -> dict[str, ET.Element]:
    suite = ET.fromstring(text)
    assert suite.tag == "testsuite" and int(suite.get("tests")) == len(suite.findall("testcase"))
    return {c.get("name"): c for c in suite.findall("testcase")}


def test_junit_has_a_case_per_stage_and_budget_and_failures_carry_the_reason():
    locust = stage_result("locust", "load", Status.failed, seconds=30.0, metrics=[
        Metric(name="p95_ms", value=400, unit="ms", threshold=250, operator="<=", passed=False),
        Metric(name="error_rate", value=0.0, threshold=0.01, operator="<=", passed=True)])
    pip_audit = stage_result("pip-audit", "dependencies", Status.error, error="pip-audit: ERROR: no such option")
    reasons = [Reason(stage="locust", severity=Severity.high, message="p95 400 ms breaks the budget <= 250 ms"),
               Reason(stage="pip-audit", severity=Severity.high, message="pip-audit: ERROR: no such option"),
               Reason(stage="chaos", severity=Severity.high, message="missing_evidence: chaos never ran")]
    text = junit_report("shop", "1.4.2", [locust, stage_result("semgrep", "sast"), pip_audit],
                        verdict(Decision.INCONCLUSIVE, reasons))
    cases = junit_cases(text)
    assert set(cases) == {"locust", "locust: p95_ms <= 250 ms", "locust: error_rate <= 0.01", "semgrep",
                          "pip-audit", "chaos", "verdict"}
    assert cases["locust"].find("failure").get("message") == "p95 400 ms breaks the budget <= 250 ms"
    assert cases["locust"].get("time") == "30.000"
    assert "400" in cases["locust: p95_ms <= 250 ms"].find("failure").get("message")
    assert cases["locust: error_rate <= 0.01"].find("failure") is None
    assert cases["semgrep"].find("failure") is None and cases["semgrep"].find("error") is None
    assert cases["pip-audit"].find("error").get("message") == "pip-audit: ERROR: no such option"
    assert cases["chaos"].find("failure").get("message") == "missing_evidence: chaos never ran"
    assert cases["verdict"].find("error").get("message").startswith("INCONCLUSIVE: p95 400 ms")
    suite = ET.fromstring(text)
    assert (suite.get("failures"), suite.get("errors")) == ("3", "2")


def test_a_go_is_a_junit_report_without_failures():
    text = junit_report("shop", "1.4.2", [stage_result("semgrep", "sast")], verdict(Decision.GO))
    suite = ET.fromstring(text)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")
