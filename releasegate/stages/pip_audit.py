"""Dependency stage: pip-audit over the service's pinned requirements, against OSV (a loopback mirror or a URL).

Fail closed: the audit counts only when every dependency was audited and the OSV endpoint really
answered. pip-audit exits 1 both for "vulnerabilities found" and for a crash (an unreachable OSV
URL is a traceback and no JSON), so the exit code is never read alone: the endpoint must answer a
preflight query, the JSON must exist and list every dependency, and a local mirror must have
served at least one query per dependency.

Severity: pip-audit's JSON carries none, so each advisory's OSV record is looked up (in the mirror,
or GET /v1/vulns/{id} beside the URL): CVSS v3 vector -> base score -> rating, else
database_specific.severity, else the policy's unknown_severity with data["severity_source"] = "unknown".

Running it: releasegate.stages.pip_audit_run; the OSV endpoint and the data's provenance:
releasegate.stages.osv_source; each advisory's record, severity and finding: releasegate.stages.advisories.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.models import AdvisoryData, Artifact, Finding, Metric, StageResult, Status
from releasegate.environment import Environment
from releasegate.policy import PipAudit, Policy
from releasegate.stages.advisories import (
    advisory_records,
    advisory_severity,
    cvss3_base_score,
    cvss_rating,
    parse_pip_audit,
    vuln_ids,
    write_records,
)
from releasegate.stages.base import fresh_folder, guarded, now
from releasegate.stages.osv_source import advisory_data, data_metrics, osv_endpoint, preflight
from releasegate.stages.pip_audit_run import (
    audit,
    check_complete,
    check_mirror_served,
    export_requirements,
    load_report,
    read_report,
    requirement_files,
    stderr_reason,
)
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

# what the tests read from the pip-audit stage, wherever it lives
__all__ = ["advisory_severity", "check_complete", "check_mirror_served", "cvss3_base_score", "cvss_rating",
           "load_report", "parse_pip_audit", "run", "run_planned", "stderr_reason", "vuln_ids"]

STAGE = "pip-audit"
KIND = "dependencies"


def run(policy: Policy, ctx: RunContext) -> StageResult:
    spec = policy.scans.pip_audit
    if spec is None:
        raise ValueError("policy has no scans.pip_audit section: do not schedule the pip-audit stage")
    return guarded(STAGE, KIND, spec.required, lambda started: _run(policy, spec, ctx, started))


def _run(policy: Policy, spec: PipAudit, ctx: RunContext, started: datetime) -> StageResult:
    out_dir = fresh_folder(ctx.evidence / STAGE)  # a retry starts clean: no report, cache or advisories of the last
    export_requirements(policy, spec, ctx, out_dir)
    requirements = requirement_files(spec, ctx.source)
    with osv_endpoint(policy, spec) as (url, mirror):
        data = advisory_data(policy, spec, url, mirror, started)
        if data.stale or (data.source == "osv_data" and data.age_days is None):
            return _stale_result(spec, started, data, out_dir)
        preflight(url)
        served_before = mirror.queries if mirror else 0
        tool = audit(requirements, url, spec, ctx.source, out_dir)
        doc = read_report(tool, out_dir / "pip-audit.json")
        check_complete(doc, tool, url)
        if mirror:
            check_mirror_served(mirror.queries - served_before, len(doc["dependencies"]), url)
        records = advisory_records(vuln_ids(doc), mirror, url)
    write_records(records, out_dir / "advisories.json")
    findings = parse_pip_audit(doc, records, spec.unknown_severity, spec.blocking_severity)
    result = _result(spec, started, doc, findings, tool.seconds, out_dir, data)
    log.info("%s", result.summary)
    return result


def _stale_result(spec: PipAudit, started: datetime, data: AdvisoryData, out_dir: Path) -> StageResult:
    """Fail closed: an audit against data older than the policy allows (or of unknown age) is not evidence."""
    if data.newest_modified is None:
        why = (f"the advisory data {data.location} has no advisory with a `modified` date ({data.advisories} "
               "advisories), so its age cannot be told")
    else:
        why = (f"the advisory data is too old: its newest advisory was modified {data.newest_modified.date()}, "
               f"{int(data.age_days or 0)} days before this run; the policy allows {data.max_age_days} "
               f"(scans.pip_audit.max_advisory_age_days)")
    error = (f"{why} — refresh {data.location} from the OSV export (e.g. "
             "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip) and rerun")
    log.error("%s: error: %s", STAGE, error)
    return StageResult(stage=STAGE, kind=KIND, status=Status.error, required=spec.required, started=started,
                       finished=now(), summary="pip-audit: not run: the advisory data is not fresh enough",
                       error=error, metrics=data_metrics(data), advisory_data=data,
                       artifacts=[Artifact.of(Path(data.location), name="advisory data")])


def _result(spec: PipAudit, started: datetime, doc: Mapping[str, Any], findings: list[Finding], seconds: float,
            out_dir: Path, data: AdvisoryData) -> StageResult:
    deps = len(doc["dependencies"])
    vulnerable = len({(f.data["package"], f.data["version"]) for f in findings})
    blocking = sum(f.blocking for f in findings)
    unknown = sum(f.data["severity_source"] == "unknown" for f in findings)
    summary = (f"pip-audit: {len(findings)} vulnerabilities ({blocking} blocking, {unknown} without severity "
               f"-> {spec.unknown_severity.value} by policy) in {vulnerable} of {deps} dependencies, {seconds:.1f} s; "
               f"advisory data: {data.describe()}; json: {out_dir / 'pip-audit.json'}")
    return StageResult(
        stage=STAGE, kind=KIND, status=Status.failed if blocking else Status.passed, required=spec.required,
        started=started, finished=now(), summary=summary, findings=findings,
        metrics=[Metric(name="dependencies", value=deps), Metric(name="vulnerable_packages", value=vulnerable),
                 Metric(name="vulns", value=len(findings)), Metric(name="blocking", value=blocking),
                 Metric(name="duration", value=round(seconds, 3), unit="s"), *data_metrics(data)],
        advisory_data=data,
        artifacts=[Artifact.of(out_dir / n) for n in ("pip-audit.json", "pip-audit.log", "advisories.json")]
        + ([Artifact.of(Path(data.location), name="advisory data")] if data.source == "osv_data" else []))


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    """The stage as the registry runs it (releasegate/stages/registry.py): it needs no service."""
    return run(policy, ctx)
