"""A GO run of the demo through the CLI: its readiness checklist ticks every item with the evidence behind it, and
its verdict names the advisory data the dependency audit used."""

import hashlib
import json
from pathlib import Path

import pytest

from tests.support.demo import DEMO_POLICY, run_cli

pytestmark = pytest.mark.slow


def test_a_go_runs_checklist_and_advisory_data(quick_policy):
    code, data = run_cli(quick_policy, "1.0.0")

    assert (code, data["decision"]) == (0, "GO"), data["reasons"]
    demo_data = DEMO_POLICY.parent / "advisories.osv.jsonl"
    used = data["advisory_data"]
    assert used["sha256"] == hashlib.sha256(demo_data.read_bytes()).hexdigest()
    assert (used["source"], used["advisories"], used["newest_modified"][:10]) == ("osv_data", 4, "2021-08-27")
    document = json.loads((Path(data["evidence_dir"]) / "evidence.json").read_text())
    assert document["verdict"]["advisory_data"] == used
    checklist = document["checklist"]
    suites = [c for c in checklist if c["item"].startswith("suite pytest[")]
    assert len(suites) == 3
    for item in checklist:
        assert item["checked"] is True, item
        assert "no evidence" not in item["evidence"], item
    for item in suites:
        assert " passed, 0 failed, 0 errors" in item["evidence"], item
    assert f"sha256 {used['sha256'][:12]}" in next(c["evidence"] for c in checklist
                                                    if c["item"] == "no blocking dependency advisory")
    assert "<exit code" not in json.dumps(document)
    migrations = next(s for s in document["stages"] if s["stage"] == "migrations")
    assert migrations["status"] == "passed", migrations["summary"]
    assert "migrations: 0 findings; 3 tables after up; up " in migrations["summary"] and "up again" in migrations["summary"]
