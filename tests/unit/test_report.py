"""compile_report(): the evidence folder a person reads and a machine replays."""

import hashlib
import json
from datetime import timedelta
from functools import partial

import pytest

from releasegate.context import safe_name
from releasegate.domain.models import (
    Artifact,
    Decision,
    Finding,
    Metric,
    Reason,
    Severity,
    Status,
    Verdict,
)
from releasegate.report import (
    MANIFEST,
    compile_report,
    readiness_checklist,
    remediation,
    risk_register,
)
from tests.support import builders
from tests.support.builders import T0, run_context, stage_result

CANARY = "xoxb-canary-123456-abcdef"
stage = partial(stage_result, seconds=12.5)  # stage(name, kind, status, **fields): each took 12.5 s


def failing_test_finding():
    return Finding(kind="test", rule="tests/test_api.py::test_search", severity=Severity.high,
                   title="test_search failed", location="tests/test_api.py",
                   evidence=f"AssertionError: got 500; token={CANARY}", fingerprint="f" * 32)


def budget_finding():
    return Finding(kind="budget", rule="p95_ms", severity=Severity.high, title="p95 312 ms over budget 250 ms",
                   location="/search", fingerprint="b" * 32)


def results_all_stages():
    return [
        stage("pytest[unit]", "suite", summary="41 passed", metrics=[Metric(name="tests", value=41)]),
        stage("pytest[integration]", "suite", Status.failed, summary="9 passed, 1 failed",
              findings=[failing_test_finding()]),
        stage("locust", "load", Status.failed, summary="p95 312 ms over budget",
              metrics=[Metric(name="p95", value=312, unit="ms", threshold=250, operator="<=", passed=False),
                       Metric(name="requests", value=1200)],
              findings=[budget_finding()]),
        stage("semgrep", "sast", summary="0 findings"),
        stage("pip-audit", "dependencies", Status.error, summary="could not run",
              error=f"pip-audit crashed: Authorization: Bearer {CANARY}"),
        stage("alerts", "alerts", summary="4 rule tests passed"),
    ]


def verdict_no_go(reasons=None):
    return builders.verdict(Decision.NO_GO, reasons if reasons is not None else [
        Reason(stage="locust", message="p95 over budget", severity=Severity.high,
               fingerprint="b" * 32, value=312, threshold=250),
        Reason(stage="pytest[integration]", message="test_search failed",
               severity=Severity.critical, fingerprint="f" * 32),
        Reason(stage="semgrep", message="low-severity note", severity=Severity.low),
    ], decided_at=T0 + timedelta(minutes=5), policy_digest="sha256:abc")


@pytest.fixture
def ctx(tmp_path):
    return run_context(tmp_path)


def compile_default(ctx, results=None, verdict=None, defects=None):
    (ctx.evidence / "junit").mkdir(parents=True, exist_ok=True)
    (ctx.evidence / "junit" / "unit.xml").write_text("<testsuite/>")
    return compile_report(ctx, "sha256:abc", results if results is not None else results_all_stages(),
                          verdict or verdict_no_go(), tool_versions={"pytest": "8.3.0", "locust": "2.31"},
                          defects=defects)


def test_html_shows_decision_reasons_most_severe_first(ctx):
    paths = compile_default(ctx)

    html = paths.html.read_text()
    assert 'class="decision decision-NO_GO"' in html and "NO-GO" in html
    for message in ("p95 over budget", "test_search failed", "low-severity note"):
        assert message in html
    assert html.index("test_search failed") < html.index("p95 over budget") < html.index("low-severity note")
    assert "312 vs 250" in html
    assert "sha256:abc" in html and "8.3.0" in html


def test_html_is_self_contained(ctx):
    html = compile_default(ctx).html.read_text()

    assert "<style>" in html
    assert not any(marker in html for marker in ('src="http', 'href="http', "<script", "@import"))


def test_inconclusive_is_shown_distinctly(ctx):
    verdict = Verdict(decision=Decision.INCONCLUSIVE, decided_at=T0, reasons=[
        Reason(stage="pip-audit", message="required stage errored", severity=Severity.high)])

    html = compile_default(ctx, verdict=verdict).html.read_text()

    assert 'class="decision decision-INCONCLUSIVE"' in html
    assert "the gate could not decide: fix the gate&#39;s inputs, not necessarily the service" in html


def test_tool_output_is_redacted_everywhere(ctx):
    compile_default(ctx)

    for name in ("report.html", "results.md", "evidence.json", "risk-register.json"):
        assert CANARY not in (ctx.evidence / name).read_text(), name


def test_html_escapes_tool_output(ctx):
    results = [stage("semgrep", "sast", Status.failed, summary="<script>alert(1)</script>")]

    html = compile_default(ctx, results=results).html.read_text()

    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_manifest_lists_every_file_with_its_sha256(ctx):
    paths = compile_default(ctx)

    lines = paths.manifest.read_text().splitlines()
    names = [line.split("  ", 1)[1] for line in lines]
    assert names == sorted(names)
    assert MANIFEST not in names
    assert {"report.html", "results.md", "evidence.json", "risk-register.json", "junit/unit.xml"} <= set(names)
    for line in lines:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((ctx.evidence / name).read_bytes()).hexdigest() == digest, name
    assert paths.manifest_sha256 == hashlib.sha256(paths.manifest.read_bytes()).hexdigest()


def test_results_md_has_the_log_table_with_one_row_per_stage(ctx):
    results = results_all_stages()

    md = compile_default(ctx, results=results).markdown.read_text()

    header = "| Date/time (UTC) | Scope | Test type | Metrics | Status | Remediation |"
    assert header in md
    table = md.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]  # skip the --- row
    assert len(table) == len(results)
    assert any("shop@1.4.2 locust" in row and "p95 312 ms (budget 250)" in row
               and "profile endpoint /search" in row for row in table)
    assert any("fix tests/test_api.py::test_search" in row for row in table)
    assert any("fix the gate input: pip-audit crashed" in row for row in table)
    assert "## Risk register" in md and "## Readiness checklist" in md


def test_evidence_json_is_machine_readable(ctx):
    paths = compile_default(ctx)

    doc = json.loads(paths.evidence_json.read_text())
    assert doc["schema_version"] == "releasegate.evidence/v2"
    assert doc["run"]["run_id"] == ctx.run_id
    assert doc["policy_digest"] == "sha256:abc"
    assert doc["tool_versions"] == {"locust": "2.31", "pytest": "8.3.0"}
    assert doc["verdict"]["decision"] == "NO_GO" and len(doc["verdict"]["reasons"]) == 3
    assert [s["stage"] for s in doc["stages"]] == [r.stage for r in results_all_stages()]
    assert doc["stages"][2]["metrics"][0]["threshold"] == 250
    assert doc["checklist"] and doc["risk_register"]
    register = json.loads((paths.evidence_json.parent / doc["risk_register"]["file"]).read_text())
    assert doc["risk_register"]["rows"] == len(register) > 0
    for stage, result in zip(doc["stages"], results_all_stages(), strict=True):
        assert "findings" not in stage and "test_cases" not in stage  # kept once, in the stage's own file
        assert stage["findings_total"] == len(result.findings)
        assert stage["details"] == f"stages/{safe_name(result.stage)}.json"


def test_same_inputs_give_byte_identical_documents(ctx, tmp_path):
    first = compile_default(ctx)
    again = compile_default(ctx)

    assert first.manifest_sha256 == again.manifest_sha256


def test_checklist_alert_item_unchecked_when_alerts_stage_missing():
    results = [r for r in results_all_stages() if r.kind != "alerts"]
    expected = verdict_no_go([Reason(stage="alerts", severity=Severity.high,
                                     message="missing_evidence: the stage produced no result")])

    items = {c.item: c for c in readiness_checklist(results, expected)}

    assert items["alert rules tested"].checked is False
    assert items["alert rules tested"].evidence == "no evidence: the stage produced no result"


def test_checklist_ticked_only_by_evidence():
    items = {c.item: c for c in readiness_checklist(results_all_stages(), verdict_no_go())}

    assert items["suite pytest[unit] passed"].checked is True
    assert items["suite pytest[integration] passed"].checked is False
    assert items["load budgets held"].checked is False
    assert items["no blocking SAST finding"].checked is True
    assert items["no blocking dependency advisory"].checked is False
    assert items["alert rules tested"].checked is True
    assert items["every required stage produced evidence"].checked is False


def test_checklist_without_suites_is_unchecked():
    items = {c.item: c for c in readiness_checklist([stage("semgrep", "sast")], verdict_no_go())}

    assert items["unit/integration/contract suites passed"].checked is False


def test_risk_register_rows_owner_due_and_order():
    defects = [{"fingerprint": "f" * 32, "owner": "team-search", "state": "recurring"},
               {"fingerprint": "d" * 32, "title": "old leak", "severity": "medium", "state": "reopened",
                "stage": "semgrep"},
               {"fingerprint": "e" * 32, "title": "gone", "severity": "high", "state": "fixed"}]

    rows = risk_register(results_all_stages(), verdict_no_go(), defects)

    by_id = {r.id: r for r in rows}
    assert by_id["f" * 32].owner == "team-search" and by_id["f" * 32].status == "recurring (blocking)"
    assert by_id["b" * 32].owner == "unassigned" and by_id["b" * 32].due == "2025-03-31"  # high: 30 days
    assert by_id["d" * 32].due == "2025-05-30"                                           # medium: 90 days
    assert "e" * 32 not in by_id                                                          # fixed: not open
    assert any(r.source == "pip-audit" and r.status == "inconclusive" for r in rows)
    assert any(r.title == "low-severity note" and r.due == "2025-06-29" for r in rows)    # low: 120 days
    assert [r.severity for r in rows] == sorted((r.severity for r in rows),
                                                key=lambda s: -Severity(s).rank)


@pytest.mark.parametrize(("result", "expected"), [
    (stage("s", "suite"), "none"),
    (stage("s", "suite", Status.error, error="junit.xml missing"), "fix the gate input: junit.xml missing"),
    (stage("s", "suite", evidence_empty=True, summary="0 tests collected"),
     "fix the gate input: s produced no evidence (0 tests collected)"),
    (stage("s", "load", Status.failed, findings=[budget_finding()]), "profile endpoint /search"),
])
def test_remediation(result, expected):
    assert remediation(result) == expected


def test_artifacts_listed_with_sha256(ctx):
    ctx.evidence.mkdir(parents=True)
    junit = ctx.evidence / "unit.xml"
    junit.write_text("<testsuite tests='1'/>")
    results = [stage("pytest[unit]", "suite", artifacts=[Artifact.of(junit)])]

    html = compile_default(ctx, results=results).html.read_text()

    assert hashlib.sha256(junit.read_bytes()).hexdigest() in html
