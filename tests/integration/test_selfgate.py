"""`make selfgate` fails CI unless releasegate's own gate says GO, and prints why (real make, Semgrep, pip-audit).

Each test runs the Makefile target on a private copy of the repository (copied as the gate copies a source, with
gate.yaml's excludes) and a copy of gate.yaml pointing at it, in a fresh gate home: the committed waivers are granted
into an empty database there, as in CI.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from releasegate.context import prepare_workspace
from releasegate.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
GATE = ROOT / "gate.yaml"
WAIVED = len(yaml.safe_load((ROOT / "gate-waivers.yaml").read_text())["waivers"])
SEEDED_CODE = '''import subprocess


def archive(folder: str) -> None:
    subprocess.run(f"tar czf /tmp/out.tgz {folder}", shell=True, check=True)
'''


def make_selfgate(policy: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "selfgate", f"SELFGATE_POLICY={policy}",
                           f"SELFGATE_HOME={home}", "SELFGATE_VERSION=candidate"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def copied_gate(tmp_path: Path, edit) -> Path:
    """gate.yaml on a copy of the repository: its inputs absolute, the source the copy, then `edit(policy, copy)`."""
    policy = load_policy(GATE)
    data = yaml.safe_load(GATE.read_text())
    copy = prepare_workspace(policy, "candidate", tmp_path / "repository")
    data["source"]["path"] = str(copy)
    data["scans"]["semgrep"]["rules"] = [str(policy.resolve(r)) for r in data["scans"]["semgrep"]["rules"]]
    data["scans"]["pip_audit"]["osv_data"] = str(policy.resolve(data["scans"]["pip_audit"]["osv_data"]))
    if not Path(data["scans"]["pip_audit"]["osv_data"]).is_file():
        pytest.skip(f"the shared OSV advisory data is not at {data['scans']['pip_audit']['osv_data']}")
    # one quick unit file instead of the whole suite: this checks what the target does with the verdict
    data["suites"] = [{"name": "unit", "kind": "unit", "paths": ["tests/unit/test_waiver_rules.py"]}]
    edit(data, copy)
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def seed_a_shell_call_and_a_vulnerable_pin(_data: dict, copy: Path) -> None:
    (copy / "releasegate" / "archive.py").write_text(SEEDED_CODE)
    lock = copy / "requirements.lock"
    pinned, count = re.subn(r"(?m)^pyyaml==\S+$", "pyyaml==5.3.1", lock.read_text())
    assert count == 1, "requirements.lock pins no pyyaml to replace"
    lock.write_text(pinned)


def test_selfgate_fails_on_no_go_naming_each_finding_with_the_committed_waivers_applied(tmp_path):
    policy = copied_gate(tmp_path, seed_a_shell_call_and_a_vulnerable_pin)

    proc = make_selfgate(policy, tmp_path / "home")

    out = proc.stdout
    reasons = [line for line in out.splitlines() if line.startswith("  - [")]
    assert proc.returncode != 0 and "selfgate] Error 1" in proc.stderr, out[-3000:] + proc.stderr[-3000:]
    assert "releasegate candidate: NO_GO" in out
    assert any("semgrep: subprocess-shell-true" in r and r.endswith("(releasegate/archive.py:5)") for r in reasons)
    assert any(r.startswith("  - [high] pip-audit: pyyaml 5.3.1: PYSEC-2021-142") for r in reasons)
    assert out.count("selfgate waivers: waiver #") == WAIVED  # granted into the empty database, as in CI
    assert re.search(r"^  waived #", out, flags=re.M), out[-3000:]  # and they applied to what Semgrep found


def test_selfgate_fails_on_inconclusive_naming_the_cause(tmp_path):
    def stale_data_only(data: dict, _copy: Path) -> None:
        data["suites"] = []
        del data["scans"]["semgrep"]
        data["scans"]["pip_audit"]["max_advisory_age_days"] = 30

    proc = make_selfgate(copied_gate(tmp_path, stale_data_only), tmp_path / "home")

    assert proc.returncode != 0 and "selfgate] Error 3" in proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "releasegate candidate: INCONCLUSIVE" in proc.stdout
    assert "pip-audit: missing_evidence: the stage could not run: the advisory data is too old" in proc.stdout
