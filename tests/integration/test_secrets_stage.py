"""The secrets stage runs the real detect-secrets over a small project: a committed key is a finding with file, line
and kind but never its value; a known fixture on the allow-list is counted, not reported; a broken allow-list or a
tool that crashes or prints nothing is an error (INCONCLUSIVE)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from releasegate.context import RunContext
from releasegate.domain.models import Status
from releasegate.policy import Policy
from releasegate.stages import registry
from tests.support.fake_tools import fake_tool

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
FIXTURE_PASSWORD = "fixture-pw-77aa"


def project(root: Path, blank_lines: int = 0) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "app" / "settings.py").write_text("DEBUG = False\n" + "\n" * blank_lines + f'AWS_KEY = "{AWS_KEY}"\n')
    (root / "tests" / "test_db.py").write_text(f'URL = "postgresql://app:{FIXTURE_PASSWORD}@db.internal/app"\n')
    (root / "allow.yaml").write_text("- {path: 'tests/*', type: Basic Auth Credentials, reason: a test fixture}\n")
    return root


def run_stage(root: Path, spec: dict):
    policy = Policy.model_validate({"service": "svc", "scans": {"credentials": spec}})
    ctx = RunContext(run_id="r1", service="svc", version="1", policy_path=str(root / "gate.yaml"),
                     evidence_dir=str(root / "evidence"), workspace=str(root), started=datetime.now(UTC))
    planned = registry.find(policy, "credentials")
    return planned.stage.run(policy, ctx, None, planned)


def test_a_committed_key_is_found_by_file_line_and_kind_and_the_fixture_is_allowed(tmp_path):
    root = project(tmp_path / "p")
    result = run_stage(root, {"paths": ["app", "tests"], "allowlist": "allow.yaml"})

    assert result.status is Status.failed, result.error
    [found] = result.findings
    assert (found.title, found.location, found.severity.value) == ("AWS Access Key in app/settings.py:2",
                                                                   "app/settings.py:2", "high")
    assert {m.name: m.value for m in result.metrics}["allowed"] == 1
    kept = "".join(p.read_text() for p in (root / "evidence").rglob("*") if p.is_file()) + found.model_dump_json()
    assert AWS_KEY not in kept and FIXTURE_PASSWORD not in kept


def test_the_fingerprint_survives_the_secret_moving_down_the_file(tmp_path):
    first = run_stage(project(tmp_path / "a"), {"allowlist": "allow.yaml", "paths": ["app"]})
    moved = run_stage(project(tmp_path / "b", blank_lines=5), {"allowlist": "allow.yaml", "paths": ["app"]})

    assert first.findings[0].location != moved.findings[0].location
    assert first.findings[0].fingerprint == moved.findings[0].fingerprint


@pytest.mark.parametrize(("allowlist", "said"), [
    ("- {path: 'tests/*'}\n", "an entry has a reason"),
    ("path: tests\n", "must be a list"),
    (None, "cannot be read"),
])
def test_an_allowlist_that_cannot_be_used_is_an_error(tmp_path, allowlist, said):
    root = project(tmp_path / "p")
    (root / "allow.yaml").unlink()
    if allowlist is not None:
        (root / "allow.yaml").write_text(allowlist)
    result = run_stage(root, {"allowlist": "allow.yaml"})

    assert result.status is Status.error and said in result.error


@pytest.mark.parametrize(("output", "ending", "said"), [
    ("full", "sigkill", "killed by SIGKILL"),
    ("none", "exit0", "output unreadable"),
    ("full", "exit1", "exited 1"),
    ("full", "hang", "timed out after 2 s"),
])
def test_a_fake_detect_secrets_that_crashes_or_prints_nothing_is_an_error(tmp_path, monkeypatch, output, ending,
                                                                          said):
    tool = fake_tool(tmp_path / "bin", "detect-secrets", "emit(None, DOC)", {"DOC": '{"results": {}}'},
                     output=output, ending=ending)
    monkeypatch.setenv("RELEASEGATE_DETECT_SECRETS_BIN", str(tool))

    result = run_stage(project(tmp_path / "p"), {"timeout_s": 2})

    assert result.status is Status.error and said in result.error
