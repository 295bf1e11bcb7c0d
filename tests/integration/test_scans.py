"""The scan stages with the real tools: semgrep, pip-audit against the loopback OSV mirror, promtool."""

import os
import shutil
from pathlib import Path

import pytest

from releasegate.context import open_run
from releasegate.domain.models import Severity, Status
from releasegate.policy import load_policy
from releasegate.stages import alerts, pip_audit, semgrep

PROMTOOL_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "promtool"

APP = '''import sqlite3


def find_user(conn: sqlite3.Connection, name: str):
    return conn.execute(f"SELECT * FROM users WHERE name = '{name}'").fetchall()


def find_user_safe(conn: sqlite3.Connection, name: str):
    return conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchall()
'''


def osv_data() -> Path:
    default = Path(__file__).resolve().parents[3] / "shared/data/osv/pypa-advisories.osv.jsonl.gz"
    path = Path(os.environ.get("RELEASEGATE_OSV_DATA") or default)
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"OSV advisory data missing at {path} (set RELEASEGATE_OSV_DATA)")
        pytest.skip(f"OSV advisory data not found at {path}: set RELEASEGATE_OSV_DATA to the PyPA OSV JSON lines")
    return path


def make_run(home: Path, gate_yaml: str, files: dict[str, str]):
    """A service tree with gate.yaml and files, its policy and an open run (the caller sets RELEASEGATE_HOME)."""
    service = home / "service"
    for name, text in files.items():
        (service / name).parent.mkdir(parents=True, exist_ok=True)
        (service / name).write_text(text)
    (service / "gate.yaml").write_text(gate_yaml)
    policy = load_policy(service / "gate.yaml")
    return policy, open_run(policy, "1.0.0")


@pytest.fixture(scope="module")
def semgrep_result(tmp_path_factory):
    home = tmp_path_factory.mktemp("semgrep")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RELEASEGATE_HOME", str(home))
        policy, ctx = make_run(home, "service: svc\nscans:\n  semgrep:\n    rules: ['builtin:python-security']\n",
                               {"app.py": APP, "tests/test_app.py": APP})
        return semgrep.run(policy, ctx), ctx


def test_semgrep_flags_the_sql_fstring_as_high_and_not_the_parameterised_query(semgrep_result):
    result, ctx = semgrep_result

    assert result.status is Status.failed, result.error
    assert [(f.rule, f.location, f.severity) for f in result.findings] == [
        ("sql-built-from-strings", "app.py:5", Severity.high)]
    assert result.metric("files_scanned").value == 1
    assert (ctx.evidence / "semgrep" / "semgrep.json").is_file() and result.artifacts
    assert "1 findings (1 blocking) in 1 files" in result.summary


def test_semgrep_missing_rule_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_HOME", str(tmp_path))
    policy, ctx = make_run(tmp_path, "service: svc\nscans:\n  semgrep:\n    rules: [rules/missing.yml]\n",
                           {"app.py": APP})

    result = semgrep.run(policy, ctx)

    assert result.status is Status.error and "missing.yml" in result.error


def test_semgrep_printing_garbage_is_an_error(tmp_path, monkeypatch):
    fake = tmp_path / "semgrep"
    fake.write_text("#!/bin/sh\necho 'this is not json'\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("RELEASEGATE_SEMGREP_BIN", str(fake))
    monkeypatch.setenv("RELEASEGATE_HOME", str(tmp_path))
    policy, ctx = make_run(tmp_path, "service: svc\nscans:\n  semgrep:\n    rules: ['builtin:python-security']\n",
                           {"app.py": APP})

    result = semgrep.run(policy, ctx)

    assert result.status is Status.error and "semgrep output unreadable" in result.error


def audit_policy(data: str, requirements: str = "requests==2.19.0\n") -> tuple[str, dict[str, str]]:
    # the shared PyPA snapshot is from 2024-10-10: older than the default limit, accepted here on purpose
    gate = (f"service: svc\nscans:\n  pip_audit:\n    requirements: [requirements.txt]\n    {data}\n"
            "    max_advisory_age_days: 3650\n")
    return gate, {"requirements.txt": requirements}


def test_pip_audit_reports_real_advisories_for_requests_2_19_0(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_HOME", str(tmp_path))
    policy, ctx = make_run(tmp_path, *audit_policy(f"osv_data: {osv_data()}"))

    result = pip_audit.run(policy, ctx)

    assert result.status is Status.failed, result.error
    assert {"PYSEC-2018-28", "PYSEC-2023-74"} <= {f.rule for f in result.findings}
    assert all(f.data["severity_source"] == "unknown" and f.severity is Severity.high for f in result.findings)
    assert result.metric("dependencies").value == 1 and result.metric("vulns").value == len(result.findings)
    assert (ctx.evidence / "pip-audit" / "pip-audit.json").is_file()


def test_pip_audit_unpinned_requirement_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_HOME", str(tmp_path))
    policy, ctx = make_run(tmp_path, *audit_policy(f"osv_data: {osv_data()}", "requests==2.19.0\nflask>=2\n"))

    result = pip_audit.run(policy, ctx)

    assert result.status is Status.error and "flask" in result.error and "==" in result.error


def test_pip_audit_against_a_closed_port_is_an_error_never_a_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_HOME", str(tmp_path))
    policy, ctx = make_run(tmp_path, *audit_policy("osv_url: http://127.0.0.1:9/v1/query"))

    result = pip_audit.run(policy, ctx)

    assert result.status is Status.error and "did not answer" in result.error


def test_pip_audit_missing_binary_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_PIP_AUDIT_BIN", str(tmp_path / "no-such-pip-audit"))
    monkeypatch.setenv("RELEASEGATE_HOME", str(tmp_path))
    policy, ctx = make_run(tmp_path, *audit_policy(f"osv_data: {osv_data()}"))

    result = pip_audit.run(policy, ctx)

    assert result.status is Status.error and "RELEASEGATE_PIP_AUDIT_BIN" in result.error


def alert_run(tmp_path, tests_file: str):
    files = {name: (PROMTOOL_FIXTURES / name).read_text() for name in ("rules.yml", tests_file)}
    gate = f"service: svc\nalerts:\n  rule_files: [rules.yml]\n  tests: [{tests_file}]\n"
    return make_run(tmp_path, gate, files)


@pytest.mark.skipif(shutil.which("promtool") is None and not os.environ.get("CI"), reason="promtool not installed")
def test_promtool_passing_rule_tests(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_HOME", str(tmp_path))
    result = alerts.run(*alert_run(tmp_path, "tests-pass.yml"))

    assert result.status is Status.passed, result.error
    assert (result.metric("rules").value, result.metric("tests").value) == (3, 1)


@pytest.mark.skipif(shutil.which("promtool") is None and not os.environ.get("CI"), reason="promtool not installed")
def test_promtool_failing_rule_tests_are_findings(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_HOME", str(tmp_path))
    result = alerts.run(*alert_run(tmp_path, "tests-fail.yml"))

    assert result.status is Status.failed, result.error
    assert [f.data["key"] for f in result.findings] == ["instance down expected too early/InstanceDown",
                                                        "error rate never fires wrongly/HighErrorRate"]
    assert result.metric("tests_failed").value == 2
