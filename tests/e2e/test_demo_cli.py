"""The gate on its demo service through the CLI contract: 1.0.0 is GO, 1.1.0 NO_GO for four real reasons."""

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from tests.support.demo import reason_stages

pytestmark = pytest.mark.slow


@pytest.fixture
def healthy(demo_cli_runs):
    return demo_cli_runs["1.0.0"]


@pytest.fixture
def broken(demo_cli_runs):
    return demo_cli_runs["1.1.0"]


def test_healthy_release_is_go(healthy):
    code, data = healthy
    assert (code, data["decision"], data["reasons"]) == (0, "GO", [])
    assert Path(data["report"]).is_file()


def test_broken_release_is_no_go_for_four_distinct_reasons(broken):
    code, data = broken
    assert (code, data["decision"]) == (1, "NO_GO")
    assert {"pytest[unit]", "locust", "pip-audit", "semgrep"} <= reason_stages(data)
    messages = " ".join(r["message"] for r in data["reasons"])
    assert "test_pricing.py" in messages and "p95" in messages and "PYSEC-2021-142" in messages
    assert "migrations" in reason_stages(data)
    assert "the downgrade (down) failed at revision 0002_restock_notifications: sqlite3.OperationalError" in messages
    assert "messaging" in reason_stages(data)
    assert re.search(r"messaging: dead-letter queue restock\.dead holds [1-9][0-9]* messages", messages), messages
    assert re.search(r"messaging: jobs restock: ([1-9][0-9]*) created, 0 completed — \1 did not complete", messages)
    assert all(r["fingerprint"] and r["severity"] for r in data["reasons"])


def test_report_and_manifest_cover_the_evidence(broken):
    _, data = broken
    folder = Path(data["evidence_dir"])
    html = Path(data["report"]).read_text()
    assert "NO_GO" in html or "NO-GO" in html
    listed = {line.split("  ", 1)[1] for line in (folder / "MANIFEST.sha256").read_text().splitlines()}
    assert {"report.html", "results.md", "evidence.json", "verdict.json", "slack-payload.json", "findings.sarif",
            "gate-checks.junit.xml"} <= listed
    assert not (folder / "attestation.intoto.json").exists()  # no signing key in this run: nothing signed


def test_the_scans_findings_are_sarif_and_the_checks_junit(broken):
    _, data = broken
    folder = Path(data["evidence_dir"])
    schema = json.loads((Path(__file__).parents[1] / "fixtures" / "sarif" / "sarif-schema-2.1.0.json").read_text())
    log = json.loads((folder / "findings.sarif").read_text())
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(log)
    semgrep = next(run for run in log["runs"] if run["tool"]["driver"]["name"] == "semgrep")
    assert "sql-built-from-strings" in {r["ruleId"] for r in semgrep["results"]}
    suite = ET.fromstring((folder / "gate-checks.junit.xml").read_text())
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert {"pytest[unit]", "semgrep", "pip-audit", "verdict"} <= failed


def test_slack_payload_is_written_when_slack_is_not_configured(broken):
    _, data = broken
    payload = (Path(data["evidence_dir"]) / "slack-payload.json").read_text()
    assert "NO_GO" in payload or "NO-GO" in payload
    assert data["notification"] == "written"


def test_a_bad_policy_cannot_start(tmp_path):
    bad = tmp_path / "gate.yaml"
    bad.write_text("service: x\nsuites: [{name: unit, retires: 1}]\n")
    import subprocess
    import sys

    proc = subprocess.run([str(Path(sys.executable).parent / "releasegate"), "run", "--policy", str(bad),
                           "--version", "1.0.0", "--json"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "suites[0].retires: unknown key" in proc.stderr and "did you mean 'retries'?" in proc.stderr


def test_the_attacks_on_the_running_service_are_reasons_and_keep_no_secret(broken):
    """1.1.0's stock write ignores the token and answers a bad body with a traceback: Schemathesis names the
    operation and the check, the authorization matrix the endpoint, the caller and the status."""
    _, data = broken
    by_stage = {}
    for reason in data["reasons"]:
        by_stage.setdefault(reason["stage"], []).append(reason["message"])
    dast, authz = " ".join(by_stage.get("dast", [])), by_stage.get("authz", [])
    assert "ignored_auth on PUT /items/{item_id}/stock" in dast
    assert "not_a_server_error on PUT /items/{item_id}/stock" in dast
    assert "trace_in_error_body on PUT /items/{item_id}/stock" in dast
    assert "PUT /items/1/stock as anonymous answered HTTP 200 where 401|403 is required" in authz
    assert {"PUT /items/1/stock as expired answered HTTP 200 where 401|403 is required",
            "PUT /items/1/stock as forged answered HTTP 200 where 401|403 is required"} <= set(authz)
    assert not any("DELETE" in message for message in authz)  # the delete still checks the token
    folder = Path(data["evidence_dir"])
    for path in [*(folder / "dast").rglob("*"), *(folder / "authz").rglob("*"), folder / "evidence.json"]:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "clerk-pass-4411" not in text and "demo-signing-key-7Qm2" not in text, path
