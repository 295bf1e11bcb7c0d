"""Fail closed: on the healthy 1.0.0, a stage that cannot run or whose output cannot be read gives
INCONCLUSIVE (exit 3) with a reason naming that stage, never GO."""

import os
import stat
from pathlib import Path

import pytest
import yaml

from tests.support.demo import run_cli

pytestmark = pytest.mark.slow


def fake_tool(tmp_path: Path, name: str, script: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def inconclusive_for(data: dict, stage: str) -> list[str]:
    return [r["message"] for r in data["reasons"] if r["stage"] == stage and r["message"].startswith("missing_evidence")]


def test_quick_policy_is_go_when_every_tool_works(quick_policy):
    code, data = run_cli(quick_policy, "1.0.0")
    assert (code, data["decision"]) == (0, "GO"), data["reasons"]


@pytest.mark.parametrize(("variable", "stage"), [("RELEASEGATE_SEMGREP_BIN", "semgrep"),
                                                 ("RELEASEGATE_PIP_AUDIT_BIN", "pip-audit")])
def test_missing_tool_is_inconclusive(quick_policy, tmp_path, variable, stage):
    code, data = run_cli(quick_policy, "1.0.0", {variable: str(tmp_path / "not-installed")})
    assert (code, data["decision"]) == (3, "INCONCLUSIVE")
    assert inconclusive_for(data, stage)


def test_semgrep_malformed_output_is_inconclusive(quick_policy, tmp_path):
    tool = fake_tool(tmp_path, "semgrep", 'echo "{ this is not json"; exit 0\n')
    code, data = run_cli(quick_policy, "1.0.0", {"RELEASEGATE_SEMGREP_BIN": tool})
    assert (code, data["decision"]) == (3, "INCONCLUSIVE")
    assert inconclusive_for(data, "semgrep")


def fake_pip_audit(tmp_path: Path, report: str) -> str:
    """A pip-audit that claims success like a confused tool would, writing `report` where its JSON goes."""
    script = 'while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done\n' \
             f'echo "No known vulnerabilities found"; echo {report} > "$out"; exit 0\n'
    return fake_tool(tmp_path, "pip-audit", script)


def test_pip_audit_malformed_output_is_inconclusive(quick_policy, tmp_path):
    tool = fake_pip_audit(tmp_path, '"<html>oops"')
    code, data = run_cli(quick_policy, "1.0.0", {"RELEASEGATE_PIP_AUDIT_BIN": tool})
    assert (code, data["decision"]) == (3, "INCONCLUSIVE")
    assert inconclusive_for(data, "pip-audit")


def test_pip_audit_that_audited_nothing_is_inconclusive(quick_policy, tmp_path):
    tool = fake_pip_audit(tmp_path, '\'{"dependencies": [], "fixes": []}\'')
    code, data = run_cli(quick_policy, "1.0.0", {"RELEASEGATE_PIP_AUDIT_BIN": tool})
    assert (code, data["decision"]) == (3, "INCONCLUSIVE")
    assert inconclusive_for(data, "pip-audit")


def test_suite_collecting_zero_tests_is_inconclusive(quick_policy):
    policy = yaml.safe_load(quick_policy.read_text())
    policy["suites"][0]["args"] = ["-k", "no_test_has_this_name"]
    quick_policy.write_text(yaml.safe_dump(policy, sort_keys=False))
    code, data = run_cli(quick_policy, "1.0.0")
    assert (code, data["decision"]) == (3, "INCONCLUSIVE")
    assert inconclusive_for(data, "pytest[unit]")


def test_service_that_never_gets_healthy_is_inconclusive(quick_policy):
    policy = yaml.safe_load(quick_policy.read_text())
    policy["environment"]["setup"] = []  # skip the migrations: the demo answers 503 until migrated
    policy["environment"]["health"]["timeout_s"] = 3
    quick_policy.write_text(yaml.safe_dump(policy, sort_keys=False))
    code, data = run_cli(quick_policy, "1.0.0")
    assert (code, data["decision"]) == (3, "INCONCLUSIVE")
    assert inconclusive_for(data, "provision")
    assert not os.environ.get("RELEASEGATE_BASE_URL")
