"""Which advisory data a dependency verdict used, and fail closed when it is stale: the real pip-audit against the
gate's loopback mirror over small OSV files the tests write (the demo's PyYAML advisories, re-dated).

The stage, the verdict (verdict.json, `run --json`), evidence.json, the report and the Slack message name the data:
source, sha256, number of advisories, newest `modified`. Data older than `scans.pip_audit.max_advisory_age_days`
(or of unknown age) makes the stage an error, so the verdict is INCONCLUSIVE with a reason that says so.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from releasegate import pipeline
from releasegate.context import RunContext
from releasegate.domain.models import Status
from releasegate.policy import load_policy
from releasegate.servers.osv_mirror import OsvMirror
from releasegate.stages import pip_audit
from tests.support.demo import DEMO_POLICY

pytestmark = pytest.mark.timeout(180)
DEMO_DATA = DEMO_POLICY.parent / "advisories.osv.jsonl"
VULNERABLE = "pyyaml==5.3.1\n"   # PYSEC-2021-142 (CVE-2020-14343), critical
CLEAN = "pyyaml==6.0.1\n"


def advisories(folder: Path, newest: datetime | None, name: str = "advisories.osv.jsonl") -> Path:
    """The demo's four PyYAML records, the newest modified at `newest` (None: no record has a `modified`)."""
    records = [json.loads(line) for line in DEMO_DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, record in enumerate(records):
        if newest is None:
            record.pop("modified", None)
        else:
            record["modified"] = (newest - timedelta(days=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def audit(tmp_path: Path, scan: dict, requirements: str = VULNERABLE):
    source = tmp_path / "svc"
    source.mkdir(exist_ok=True)
    (source / "requirements.txt").write_text(requirements, encoding="utf-8")
    (source / "gate.yaml").write_text(yaml.safe_dump({"service": "svc", "scans": {"pip_audit": {
        "requirements": ["requirements.txt"], **scan}}}), encoding="utf-8")
    policy = load_policy(source / "gate.yaml")
    ctx = RunContext(run_id="rg-advisories", service="svc", version="1.0", policy_path=str(policy.path),
                     evidence_dir=str(tmp_path / "evidence"), workspace=str(source), started=datetime.now(UTC))
    return pip_audit.run(policy, ctx), ctx


def test_the_audit_names_the_data_it_used(tmp_path):
    newest = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    data = advisories(tmp_path, newest)

    result, _ = audit(tmp_path, {"osv_data": str(data)})

    assert result.status is Status.failed, result.error
    assert {f.rule for f in result.findings} == {"PYSEC-2021-142"}
    used = result.advisory_data
    assert (used.source, used.location, used.advisories) == ("osv_data", str(data), 4)
    assert used.sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    assert used.newest_modified == newest and 1.9 < used.age_days < 2.1 and used.max_age_days == 30
    age = result.metric("advisory_age")
    assert (age.threshold, age.operator, age.passed) == (30, "<=", True)
    assert any(a.name == "advisory data" and a.sha256 == used.sha256 for a in result.artifacts)
    assert f"advisory data: osv_data advisories.osv.jsonl (sha256 {used.sha256[:12]}, 4 advisories" in result.summary


def test_data_older_than_the_policy_allows_fails_closed(tmp_path):
    result, ctx = audit(tmp_path, {"osv_data": str(DEMO_DATA)})   # newest modified 2021-08-27; default limit 30 days

    assert result.status is Status.error
    age = (datetime.now(UTC) - datetime(2021, 8, 27, 3, 22, 18, tzinfo=UTC)).days
    assert result.error.startswith(
        f"the advisory data is too old: its newest advisory was modified 2021-08-27, {age} days before this run")
    assert "the policy allows 30 (scans.pip_audit.max_advisory_age_days)" in result.error
    assert result.advisory_data.stale and result.metric("advisory_age").passed is False
    assert not (ctx.evidence / "pip-audit" / "pip-audit.json").exists()   # not audited against stale data


def test_the_limit_is_the_policys(tmp_path):
    result, _ = audit(tmp_path, {"osv_data": str(DEMO_DATA), "max_advisory_age_days": 3650})

    assert result.status is Status.failed, result.error
    assert result.advisory_data.max_age_days == 3650 and not result.advisory_data.stale


def test_data_without_dates_fails_closed(tmp_path):
    result, _ = audit(tmp_path, {"osv_data": str(advisories(tmp_path, None))})

    assert result.status is Status.error
    assert "has no advisory with a `modified` date (4 advisories), so its age cannot be told" in result.error


def test_an_endpoint_is_named_but_its_age_is_not_judged(tmp_path):
    with OsvMirror(advisories(tmp_path, datetime.now(UTC) - timedelta(days=400))) as mirror:
        result, _ = audit(tmp_path, {"osv_url": mirror.url})

    assert result.status is Status.failed, result.error
    assert result.advisory_data.model_dump(exclude_none=True) == {"source": "osv_url", "location": mirror.url,
                                                                  "sha256": ""}
    assert result.metric("advisory_age") is None


def run_gate(tmp_path: Path, requirements: str, newest: datetime) -> tuple[dict, Path]:
    source = tmp_path / "svc"
    source.mkdir()
    (source / "requirements.txt").write_text(requirements, encoding="utf-8")
    (source / "tests.py").write_text("def test_ok():\n    assert True\n", encoding="utf-8")
    advisories(tmp_path, newest)
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump({
        "service": "svc", "source": {"path": "svc"}, "suites": [{"name": "unit", "paths": ["tests.py"]}],
        "scans": {"pip_audit": {"requirements": ["requirements.txt"], "osv_data": "advisories.osv.jsonl"}}}))
    ctx = pipeline.begin(tmp_path / "gate.yaml", "1.0")
    for name in pipeline.stage_names(pipeline.policy_of(ctx)):
        pipeline.run_stage(ctx, name, None)
    outcome = pipeline.conclude(ctx)
    pipeline.notify(ctx, outcome)
    return outcome.as_json(), ctx.evidence


def test_verdict_evidence_report_and_slack_name_the_data(tmp_path, cli_db):
    newest = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)

    answer, evidence = run_gate(tmp_path, CLEAN, newest)

    assert answer["decision"] == "GO", answer["reasons"]
    sha = hashlib.sha256((tmp_path / "advisories.osv.jsonl").read_bytes()).hexdigest()
    used = answer["advisory_data"]
    assert (used["sha256"], used["advisories"], used["newest_modified"]) == (sha, 4, newest.isoformat().replace(
        "+00:00", "Z"))
    assert json.loads((evidence / "verdict.json").read_text())["advisory_data"] == used
    document = json.loads((evidence / "evidence.json").read_text())
    assert document["verdict"]["advisory_data"] == used
    html = (evidence / "report.html").read_text()
    assert f"sha256:{sha}" in html and f"newest modified {newest.isoformat()}" in html
    assert f"sha256 `{sha}`" in (evidence / "results.md").read_text()
    slack = json.loads((evidence / "slack-payload.json").read_text())
    context = slack["blocks"][-1]["elements"][0]["text"]
    assert f"advisory data: osv_data advisories.osv.jsonl (sha256 {sha[:12]}, 4 advisories, newest " \
           f"{newest.date()}, 3 days old, limit 30 days)" in context
    checklist = {c["item"]: c for c in document["checklist"]}
    assert checklist["suite pytest[unit] passed"] == {
        "item": "suite pytest[unit] passed", "checked": True,
        "evidence": "pytest[unit]: 1 passed, 0 failed, 0 errors, 0 flaky, 0 skipped"}
    assert checklist["no blocking dependency advisory"]["checked"] is True
    assert sha[:12] in checklist["no blocking dependency advisory"]["evidence"]


def test_a_gate_on_stale_data_is_inconclusive_and_says_why(tmp_path, cli_db):
    answer, _ = run_gate(tmp_path, CLEAN, datetime.now(UTC) - timedelta(days=45))

    assert answer["decision"] == "INCONCLUSIVE"
    [reason] = answer["reasons"]
    assert reason["stage"] == "pip-audit" and "the advisory data is too old" in reason["message"]
    assert "45 days before this run; the policy allows 30" in reason["message"]
    assert answer["advisory_data"]["age_days"] > 30
