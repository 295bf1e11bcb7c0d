"""Dependency stage: pip-audit over the service's pinned requirements, against OSV (a loopback mirror or a URL).

Fail closed: the audit counts only when every dependency was audited and the OSV endpoint really
answered. pip-audit exits 1 both for "vulnerabilities found" and for a crash (an unreachable OSV
URL is a traceback and no JSON), so the exit code is never read alone: the endpoint must answer a
preflight query, the JSON must exist and list every dependency, and a local mirror must have
served at least one query per dependency.

Severity: pip-audit's JSON carries none, so each advisory's OSV record is looked up (in the mirror,
or GET /v1/vulns/{id} beside the URL): CVSS v3 vector -> base score -> rating, else
database_specific.severity, else the policy's unknown_severity with data["severity_source"] = "unknown".
"""

from __future__ import annotations

import json
import logging
import math
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from releasegate import trace
from releasegate.context import RunContext
from releasegate.environment import Environment
from releasegate.errors import StageError
from releasegate.fingerprint import fingerprint
from releasegate.models import (
    AdvisoryData,
    Artifact,
    Finding,
    Metric,
    Severity,
    StageResult,
    Status,
    sha256_file,
)
from releasegate.osv_mirror import OsvMirror, normalise_name
from releasegate.policy import PipAudit, Policy
from releasegate.stages.base import ToolRun, find_tool, fresh_folder, guarded, now, run_tool
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

STAGE = "pip-audit"
KIND = "dependencies"
FINDING_KIND = "vulnerability"
PREFLIGHT_QUERY = {"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "0.0.0"}
HTTP_TIMEOUT_S = 10
# Lines on pip-audit's stderr that mean it did not really audit, whatever the exit code says.
STDERR_FAILURES = ("Traceback (most recent call last)", "ConnectionError", "ERROR:pip_audit")
# pip-audit's exit statuses when it audited: 0 (no known vulnerability), 1 (vulnerabilities found; also a crash,
# which the checks on its JSON and stderr catch). Any other status, a signal or a timeout is an error.
PIP_AUDIT_OK = (0, 1)
EXPORT_OK = (0,)


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


def advisory_data(policy: Policy, spec: PipAudit, url: str, mirror: OsvMirror | None,
                  started: datetime) -> AdvisoryData:
    """Which vulnerability data this audit is judged against: the file's digest, size and newest `modified` (its age
    at the stage's start), or the endpoint, whose data the gate cannot see."""
    if mirror is None:
        return AdvisoryData(source="osv_url", location=url)
    path = policy.resolve(str(spec.osv_data))
    newest = mirror.advisories.newest_modified
    age = round((started - newest).total_seconds() / 86400, 2) if newest is not None else None
    return AdvisoryData(source="osv_data", location=str(path), sha256=sha256_file(path),
                        advisories=len(mirror.advisories), newest_modified=newest, age_days=age,
                        max_age_days=spec.max_advisory_age_days)


def _data_metrics(data: AdvisoryData) -> list[Metric]:
    if data.source != "osv_data":
        return []
    metrics = [Metric(name="advisories", value=data.advisories or 0)]
    if data.age_days is not None:
        metrics.append(Metric(name="advisory_age", value=data.age_days, unit="days", threshold=data.max_age_days,
                              operator="<=", passed=not data.stale))
    return metrics


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
                       error=error, metrics=_data_metrics(data), advisory_data=data,
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
                 Metric(name="duration", value=round(seconds, 3), unit="s"), *_data_metrics(data)],
        advisory_data=data,
        artifacts=[Artifact.of(out_dir / n) for n in ("pip-audit.json", "pip-audit.log", "advisories.json")]
        + ([Artifact.of(Path(data.location), name="advisory data")] if data.source == "osv_data" else []))


# --- running ---------------------------------------------------------------------------------------------


def requirement_files(spec: PipAudit, source: Path) -> list[Path]:
    files = [(source / name).resolve() for name in spec.requirements]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise StageError(f"pip-audit: requirements file(s) not found: {', '.join(missing)} — "
                         "fix scans.pip_audit.requirements (paths are relative to the service source)")
    return files


@contextmanager
def osv_endpoint(policy: Policy, spec: PipAudit) -> Iterator[tuple[str, OsvMirror | None]]:
    """The OSV query URL: a loopback mirror over osv_data for the duration, else the policy's osv_url."""
    if not spec.osv_data:
        yield str(spec.osv_url), None
        return
    data = policy.resolve(spec.osv_data)
    if not data.is_file():
        raise StageError(f"{policy.path}: scans.pip_audit.osv_data: {data} does not exist — "
                         "point it at OSV JSON lines (.gz allowed), relative to the policy")
    with OsvMirror(data) as mirror:
        trace.record("start", [sys.executable, "-m", "releasegate.osv_mirror", str(data), "--port", str(mirror.port)],
                     Path.cwd(), port=mirror.port)
        yield mirror.url, mirror


def preflight(url: str) -> None:
    """The endpoint must answer an OSV query with 200 and a JSON object, or nothing it says is believed."""
    request = urllib.request.Request(url, data=json.dumps(PREFLIGHT_QUERY).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            body = json.loads(response.read() or b"null")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StageError(f"pip-audit: OSV endpoint {url} did not answer a test query ({_reason(exc)}) — "
                         "start the mirror / fix scans.pip_audit.osv_url, or use osv_data for a local file") from None
    if not isinstance(body, dict):
        raise StageError(f"pip-audit: OSV endpoint {url} answered a test query with {type(body).__name__}, "
                         "not a JSON object — is it really an OSV /v1/query endpoint?")


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)


def export_requirements(policy: Policy, spec: PipAudit, ctx: RunContext, out_dir: Path) -> None:
    """Run the policy's export commands (lock file -> pinned requirements) in the workspace first."""
    from releasegate.environment import placeholders
    from releasegate.policy import fill_command

    for i, command in enumerate(spec.export, start=1):
        argv = fill_command(command, placeholders(policy, ctx))
        try:
            run_tool(argv, cwd=ctx.source, timeout_s=spec.timeout_s, log_to=out_dir / f"export-{i}.log", ok=EXPORT_OK)
        except StageError as exc:
            raise StageError(f"pip-audit: export command {i} ({' '.join(argv)}) failed: {exc}; "
                             "fix scans.pip_audit.export") from None


def pip_audit_command(binary: str, requirements: list[Path], url: str, out_dir: Path) -> list[str]:
    command = [binary]
    for file in requirements:
        command += ["-r", str(file)]
    return command + ["--no-deps", "--disable-pip", "-s", "osv", "--osv-url", url, "-f", "json",
                      "--progress-spinner", "off", "--cache-dir", str(out_dir / "cache"),
                      "-o", str(out_dir / "pip-audit.json")]


def audit(requirements: list[Path], url: str, spec: PipAudit, source: Path, out_dir: Path) -> ToolRun:
    binary = find_tool("pip-audit")
    (out_dir / "pip-audit.json").unlink(missing_ok=True)  # a retry must never read the last attempt's output
    command = pip_audit_command(binary, requirements, url, out_dir)
    return run_tool(command, cwd=source, timeout_s=spec.timeout_s, log_to=out_dir / "pip-audit.log", ok=PIP_AUDIT_OK)


def read_report(tool: ToolRun, json_path: Path) -> dict[str, Any]:
    text = json_path.read_text(encoding="utf-8") if json_path.is_file() else ""
    return load_report(text, tool.returncode, tool.stderr)


def load_report(text: str, returncode: int, stderr: str) -> dict[str, Any]:
    """pip-audit's JSON, or StageError saying why there is none (the ERROR line it printed, with a fix)."""
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("dependencies"), list):
        return doc
    raise StageError(f"pip-audit wrote no readable report (exit {returncode}): {stderr_reason(stderr)}")


def stderr_reason(stderr: str) -> str:
    """The line that explains a failed run, plus what to do about it."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    if errors:
        line = errors[-1].split(":", 2)[-1].strip()
        fix = " — pin it with == (e.g. flask==3.0.3)" if "not pinned" in line else ""
        return line[:300] + fix
    if any("ConnectionError" in ln or "Connection refused" in ln for ln in lines):
        return "could not reach the OSV endpoint — check the mirror / scans.pip_audit.osv_url"
    return (lines[-1][:300] if lines else "nothing on stderr") + " — see pip-audit.log in the evidence"


def check_complete(doc: Mapping[str, Any], tool: ToolRun, url: str) -> None:
    """Every dependency audited, at least one, and no connection error on stderr."""
    skipped = skipped_dependencies(doc)
    if skipped:
        listed = "; ".join(f"{name}: {reason}" for name, reason in skipped)
        raise StageError(f"pip-audit could not audit {len(skipped)} dependenc{'y' if len(skipped) == 1 else 'ies'}: "
                         f"{listed} — pin each with == to a released version (unaudited code is not a pass)")
    if not doc["dependencies"]:
        raise StageError("pip-audit audited 0 dependencies — list the service's pinned requirements "
                         "(name==version) in scans.pip_audit.requirements")
    if any(marker in tool.stderr for marker in STDERR_FAILURES):
        raise StageError(f"pip-audit reported an error talking to {url}: {stderr_reason(tool.stderr)}")


def check_mirror_served(served: int, dependencies: int, url: str) -> None:
    if served < dependencies:
        raise StageError(f"pip-audit reported {dependencies} dependencies but the OSV mirror at {url} answered "
                         f"only {served} queries — the audit did not really ask; rerun (a retry starts clean)")


def skipped_dependencies(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(d.get("name", "?"), d["skip_reason"]) for d in doc["dependencies"] if d.get("skip_reason")]


# --- advisories and their severity ------------------------------------------------------------------------


def vuln_ids(doc: Mapping[str, Any]) -> list[str]:
    return sorted({v["id"] for d in doc["dependencies"] for v in d.get("vulns", [])})


def advisory_records(ids: list[str], mirror: OsvMirror | None, url: str) -> dict[str, dict[str, Any]]:
    """The OSV record of each advisory: from the mirror in process, else GET /v1/vulns/{id} beside url."""
    if mirror is not None:
        return {i: mirror.advisories.by_id[i] for i in ids if i in mirror.advisories.by_id}
    found = {i: fetch_record(url, i) for i in ids}
    return {i: r for i, r in found.items() if r is not None}


def fetch_record(query_url: str, vuln_id: str) -> dict[str, Any] | None:
    """Best effort: a missing record means "severity unknown", which the policy maps (default: high)."""
    if not query_url.rstrip("/").endswith("/query"):
        return None
    url = f"{query_url.rstrip('/').removesuffix('/query')}/vulns/{vuln_id}"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            record = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_records(records: Mapping[str, Any], path: Path) -> None:
    path.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n", encoding="utf-8")


# GHSA-style labels found in database_specific.severity.
LABELS = {"CRITICAL": Severity.critical, "HIGH": Severity.high, "MODERATE": Severity.medium,
          "MEDIUM": Severity.medium, "LOW": Severity.low, "NONE": Severity.info}


def advisory_severity(record: Mapping[str, Any] | None) -> tuple[Severity, str] | None:
    """(severity, source) from an OSV record: CVSS v3 first, then database_specific.severity; None if neither."""
    for entry in (record or {}).get("severity", []):
        score = cvss3_base_score(str(entry.get("score", ""))) if entry.get("type") == "CVSS_V3" else None
        if score is not None:
            return cvss_rating(score), f"cvss_v3 {score:.1f}"
    label = str(((record or {}).get("database_specific") or {}).get("severity", "")).upper()
    return (LABELS[label], "database_specific") if label in LABELS else None


_CVSS3 = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}


def cvss3_base_score(vector: str) -> float | None:
    """CVSS 3.0/3.1 base score from a vector (FIRST's specification, section 7.1); None if malformed."""
    parts = dict(p.split(":", 1) for p in vector.split("/")[1:] if ":" in p)
    try:
        scope = parts["S"]
        impact_sub = 1 - math.prod(1 - _CVSS3["C"][parts[m]] for m in ("C", "I", "A"))
        exploitability = (8.22 * _CVSS3["AV"][parts["AV"]] * _CVSS3["AC"][parts["AC"]] * _PR[scope][parts["PR"]]
                          * _CVSS3["UI"][parts["UI"]])
    except KeyError:
        return None
    impact = 6.42 * impact_sub if scope == "U" else 7.52 * (impact_sub - 0.029) - 3.25 * (impact_sub - 0.02) ** 15
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))


def _roundup(value: float) -> float:
    scaled = round(value * 100000)
    return scaled / 100000.0 if scaled % 10000 == 0 else (math.floor(scaled / 10000) + 1) / 10.0


def cvss_rating(score: float) -> Severity:
    """CVSS v3 qualitative rating: 0 none, <4 low, <7 medium, <9 high, else critical."""
    if score == 0:
        return Severity.info
    if score < 4:
        return Severity.low
    if score < 7:
        return Severity.medium
    return Severity.high if score < 9 else Severity.critical


# --- findings ----------------------------------------------------------------------------------------------


def parse_pip_audit(doc: Mapping[str, Any], records: Mapping[str, Mapping[str, Any]], unknown_severity: Severity,
                    blocking_severity: Severity) -> list[Finding]:
    """One finding per (package, version, advisory) in pip-audit's JSON."""
    return [_finding(dep, vuln, records.get(vuln["id"]), unknown_severity, blocking_severity)
            for dep in doc["dependencies"] for vuln in dep.get("vulns", [])]


def _finding(dep: Mapping[str, Any], vuln: Mapping[str, Any], record: Mapping[str, Any] | None,
             unknown_severity: Severity, blocking_severity: Severity) -> Finding:
    name, version, vuln_id = normalise_name(dep["name"]), dep["version"], vuln["id"]
    aliases = sorted(vuln.get("aliases", []))
    fixes = vuln.get("fix_versions", [])
    severity, source = advisory_severity(record) or (unknown_severity, "unknown")
    alias_text = f" ({', '.join(aliases)})" if aliases else ""
    fixed_in = ", ".join(fixes) if fixes else "no released version"
    title = f"{name} {version}: {vuln_id}{alias_text} fixed in {fixed_in}"
    return Finding(
        kind=FINDING_KIND, rule=vuln_id, severity=severity, title=title, location=f"{name}=={version}",
        evidence=_short(vuln.get("description", "")),
        fingerprint=fingerprint(FINDING_KIND, name, version, " ".join([vuln_id, *aliases])),
        blocking=severity.at_least(blocking_severity),
        data={"package": name, "version": version, "aliases": aliases, "fix_versions": fixes,
              "severity_source": source})


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    """The stage as the registry runs it (releasegate/stages/registry.py): it needs no service."""
    return run(policy, ctx)
