"""Every way a pytest suite ends names its cause, on small real projects: a path that does not exist, a coverage
threshold missed, a warning turned into an error, a plugin that fails the run, a service that stopped mid-run.

No reason, metric or remediation says `exit code N` alone; the documented fixes (`--cov-fail-under=0`,
`-W default`) work, and the one the docs used to give (`-p no:cov`) is shown to break under `--cov` addopts.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import yaml

from releasegate.context import RunContext
from releasegate.domain.models import Decision, StageResult, Status
from releasegate.domain.verdict import ExpectedStage, decide
from releasegate.environment import Environment
from releasegate.policy import load_policy
from releasegate.report import remediation
from releasegate.stages import pytest_suites

pytest_cov = pytest.importorskip("pytest_cov", reason="pytest-cov is in the test extra: pip install -e '.[test]'")
pytestmark = pytest.mark.timeout(120)

CALC = "def add(a, b):\n    return a + b\n\n\ndef unused(flag):\n    if flag:\n        return 1\n    return 2\n"
TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
COVERAGE_INI = "[pytest]\naddopts = --cov=calc --cov-fail-under=100\n"
WARNING_AT_IMPORT = ("import warnings\nwarnings.warn('calc.old is deprecated, use calc.new', DeprecationWarning)\n"
                     + TESTS)
WARNING_IN_TEST = ("import warnings\nfrom calc import add\n\n\ndef test_add():\n"
                   "    warnings.warn('add() will be removed in 2.0', DeprecationWarning)\n    assert add(1, 2) == 3\n")
WARNINGS_ARE_ERRORS = "[pytest]\nfilterwarnings = error\n"


def gate(tmp_path: Path, files: dict[str, str], suite: dict, env: Environment | None = None) -> tuple[StageResult,
                                                                                                  object]:
    """The suite run by the gate on a project made of `files`, and the verdict on that one stage."""
    source = tmp_path / "svc"
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text, encoding="utf-8")
    policy_doc: dict = {"service": "calc", "suites": [{"name": "unit", **suite}]}
    if suite.get("needs_service"):
        policy_doc["environment"] = {"start": "true", "health": {"url": "http://{host}:{port}/"}}
    (source / "gate.yaml").write_text(yaml.safe_dump(policy_doc), encoding="utf-8")
    policy = load_policy(source / "gate.yaml")
    ctx = RunContext(run_id="rg-causes", service="calc", version="1.0", policy_path=str(policy.path),
                     evidence_dir=str(tmp_path / "evidence"), workspace=str(source), started=datetime.now(UTC))
    result = pytest_suites.run(policy, ctx, policy.suites[0], env)
    return result, decide([result], [ExpectedStage(result.stage)], datetime.now(UTC))


def texts(result: StageResult, verdict) -> list[str]:
    """Every text a release manager reads about the stage: reasons, summary, error, findings, remediation."""
    return ([r.message for r in verdict.reasons] + [result.summary, result.error or "", remediation(result)]
            + [f.title for f in result.findings] + [f.evidence for f in result.findings])


def assert_no_bare_exit_code(result: StageResult, verdict) -> None:
    for text in texts(result, verdict):
        assert "<exit code" not in text and "exit code" not in text, text


def test_a_suite_on_a_missing_path_is_inconclusive_with_pytests_own_line(tmp_path):
    result, verdict = gate(tmp_path, {"calc/__init__.py": CALC, "tests.py": TESTS},
                           {"paths": ["tests/does_not_exist"]})

    assert result.status is Status.error and verdict.decision is Decision.INCONCLUSIVE
    assert "ERROR: file or directory not found: tests/does_not_exist" in verdict.reasons[0].message
    assert "the suite did not run: pytest usage error (exit 4)" in result.error
    assert_no_bare_exit_code(result, verdict)


def test_a_coverage_shortfall_is_its_own_reason_with_value_and_threshold(tmp_path):
    result, verdict = gate(tmp_path, {"calc/__init__.py": CALC, "tests.py": TESTS, "pytest.ini": COVERAGE_INI},
                           {"paths": ["tests.py"]})

    assert result.status is Status.failed and verdict.decision is Decision.NO_GO
    [reason] = verdict.reasons
    assert reason.message == "coverage 50% is below the required 100% (--cov-fail-under, unit suite 'unit')"
    assert (reason.value, reason.threshold) == (50.0, 100.0)
    metrics = {m.name: m for m in result.metrics}
    assert metrics["tests_passed"].value == 1 and metrics["tests_error"].value == 0 and metrics["tests_failed"].value == 0
    assert (metrics["coverage"].value, metrics["coverage"].threshold, metrics["coverage"].passed) == (50, 100, False)
    assert remediation(result) == "raise coverage to 100% (now 50%), or lower --cov-fail-under"
    assert result.test_cases and all(c.node_id == "tests.py::test_add" for c in result.test_cases)
    assert_no_bare_exit_code(result, verdict)


def test_cov_fail_under_zero_judges_the_tests_alone(tmp_path):
    result, verdict = gate(tmp_path, {"calc/__init__.py": CALC, "tests.py": TESTS, "pytest.ini": COVERAGE_INI},
                           {"paths": ["tests.py"], "args": ["--cov-fail-under=0"]})

    assert result.status is Status.passed and verdict.decision is Decision.GO, result.summary


def test_disabling_the_coverage_plugin_breaks_cov_addopts_and_says_so(tmp_path):
    result, verdict = gate(tmp_path, {"calc/__init__.py": CALC, "tests.py": TESTS, "pytest.ini": COVERAGE_INI},
                           {"paths": ["tests.py"], "args": ["-p", "no:cov"]})

    assert verdict.decision is Decision.INCONCLUSIVE
    assert "error: unrecognized arguments: --cov=calc --cov-fail-under=100" in result.error
    assert_no_bare_exit_code(result, verdict)


def test_a_coverage_threshold_that_holds_is_a_metric(tmp_path):
    ini = "[pytest]\naddopts = --cov=calc --cov-fail-under=40\n"
    result, verdict = gate(tmp_path, {"calc/__init__.py": CALC, "tests.py": TESTS, "pytest.ini": ini},
                           {"paths": ["tests.py"]})

    assert verdict.decision is Decision.GO
    coverage = result.metric("coverage")
    assert (coverage.value, coverage.threshold, coverage.passed) == (50, 40, True)


def test_a_warning_turned_into_an_error_while_collecting_names_the_warning(tmp_path):
    result, verdict = gate(tmp_path, {"calc/__init__.py": CALC, "tests.py": WARNING_AT_IMPORT,
                                      "pytest.ini": WARNINGS_ARE_ERRORS}, {"paths": ["tests.py"]})

    assert verdict.decision is Decision.INCONCLUSIVE
    assert "DeprecationWarning: calc.old is deprecated, use calc.new" in result.error
    assert "a warning turned into an error" in result.error and "['-W', 'default']" in result.error
    assert_no_bare_exit_code(result, verdict)


def test_a_warning_turned_into_an_error_in_a_conftest_names_the_warning(tmp_path):
    conftest = "import warnings\nwarnings.warn('settings.LEGACY is read', UserWarning)\n"
    result, verdict = gate(tmp_path, {"calc/__init__.py": CALC, "tests.py": TESTS, "conftest.py": conftest},
                           {"paths": ["tests.py"], "args": ["-W", "error"]})

    assert verdict.decision is Decision.INCONCLUSIVE
    assert "while loading conftest" in result.error and "UserWarning: settings.LEGACY is read" in result.error


def test_a_test_failed_by_a_warning_names_the_warning(tmp_path):
    result, verdict = gate(tmp_path, {"calc/__init__.py": CALC, "tests.py": WARNING_IN_TEST,
                                      "pytest.ini": WARNINGS_ARE_ERRORS}, {"paths": ["tests.py"]})

    assert verdict.decision is Decision.NO_GO
    assert verdict.reasons[0].message == ("tests.py::test_add failed (unit suite 'unit'): a warning turned into an "
                                          "error: DeprecationWarning: add() will be removed in 2.0")


def test_command_line_warning_filters_win_over_the_ini(tmp_path):
    result, verdict = gate(tmp_path, {"calc/__init__.py": CALC, "tests.py": WARNING_IN_TEST,
                                      "pytest.ini": WARNINGS_ARE_ERRORS}, {"paths": ["tests.py"], "args": ["-W", "default"]})

    assert verdict.decision is Decision.GO, result.summary


def test_a_plugin_that_fails_a_passing_run_is_named_by_its_line(tmp_path):
    conftest = ("import sys\n\n\ndef pytest_sessionfinish(session, exitstatus):\n"
                "    print('ERROR: licence headers missing in 2 files', file=sys.stderr)\n"
                "    session.exitstatus = 1\n")
    result, verdict = gate(tmp_path, {"calc/__init__.py": CALC, "tests.py": TESTS, "conftest.py": conftest},
                           {"paths": ["tests.py"]})

    assert verdict.decision is Decision.NO_GO
    assert verdict.reasons[0].message == ("the test run failed although all 1 test(s) passed (unit suite 'unit'): "
                                          "ERROR: licence headers missing in 2 files")
    assert result.metric("tests_error").value == 0
    assert_no_bare_exit_code(result, verdict)


SERVICE = """\
import signal, sys, time

def stop(*_):
    print("FATAL: lost the connection to the database (orders)", flush=True)
    sys.exit(3)

signal.signal(signal.SIGTERM, stop)
print("serving on 127.0.0.1", flush=True)
while True:
    time.sleep(0.1)
"""
KILLS_THE_SERVICE = """\
import os, signal, time
from pathlib import Path


def test_the_service_answers():
    os.kill(int(Path("service.pid").read_text()), signal.SIGTERM)
    time.sleep(1)
"""


def test_a_service_that_stopped_mid_run_is_named_with_its_last_log_lines(tmp_path):
    log_path = tmp_path / "service.log"
    with open(log_path, "wb") as out:
        service = subprocess.Popen([sys.executable, "-c", SERVICE], stdout=out, stderr=subprocess.STDOUT)
    try:
        created = psutil.Process(service.pid).create_time()
        env = Environment(host="127.0.0.1", port=9, base_url="http://127.0.0.1:9", pid=service.pid,
                          pid_created=created, log_path=str(log_path), env={})
        for _ in range(50):
            if "serving" in log_path.read_text():
                break
            time.sleep(0.1)
        result, verdict = gate(tmp_path, {"tests.py": KILLS_THE_SERVICE, "service.pid": str(service.pid)},
                               {"paths": ["tests.py"], "needs_service": True}, env)
    finally:
        if service.poll() is None:
            service.send_signal(signal.SIGKILL)
        service.wait(timeout=10)

    assert verdict.decision is Decision.NO_GO
    [reason] = verdict.reasons
    assert reason.message.startswith(f"the service stopped while pytest[unit] ran: the service (pid {service.pid}) "
                                     "is no longer running, exited 3; its last log lines: ")
    assert reason.message.endswith("serving on 127.0.0.1 | FATAL: lost the connection to the database (orders)")


BAIL_OUT = ("import pytest\nfrom calc import add\n\n\ndef test_a_first():\n    assert add(1, 2) == 3\n\n\n"
            "def test_b_bails_out():\n    pytest.exit('enough', returncode=0)\n\n\n"
            "def test_c_never_runs():\n    assert add(1, 1) == 3\n")


def test_a_session_cut_short_with_exit_status_0_is_inconclusive_not_go(tmp_path):
    result, verdict = gate(tmp_path, {"calc.py": CALC, "tests/test_calc.py": BAIL_OUT}, {"paths": ["tests"]})
    assert (result.status, verdict.decision) == (Status.error, Decision.INCONCLUSIVE)
    assert "cut short after 1 of 3 collected tests" in result.error and "enough" in result.error
