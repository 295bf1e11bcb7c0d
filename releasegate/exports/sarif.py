"""The findings of every code or API scan (a stage whose findings are `sast` or `dast`) as one SARIF 2.1.0 log:
one run per stage, one result per finding, located by file and line (`app/db.py:12`) or, for an API scan, by the
operation it found (`GET /items`) as a logical location. Pure: the same results give the same bytes."""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from urllib.parse import quote

from releasegate.domain.models import Finding, Severity, StageResult

SARIF_REPORT = "findings.sarif"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SCANS = frozenset({"sast", "dast"})
LEVEL = {Severity.critical: "error", Severity.high: "error", Severity.medium: "warning", Severity.low: "note",
         Severity.info: "note"}
_FILE_LINE = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>[1-9][0-9]*)$")


def sarif_log(results: list[StageResult], tool_versions: dict[str, str]) -> dict:
    """A SARIF log with a run for each stage that has scan findings (or is a scan), in the results' order."""
    scans = [r for r in results if r.kind in SCANS or any(f.kind in SCANS for f in r.findings)]
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [_run(r, tool_versions) for r in scans]}


def sarif_text(results: list[StageResult], tool_versions: dict[str, str]) -> str:
    # compact: the C encoder (an indented document takes the pure-Python one, 20x slower at 20,000 findings)
    return json.dumps(sarif_log(results, tool_versions), sort_keys=True, ensure_ascii=False) + "\n"


def _run(result: StageResult, tool_versions: dict[str, str]) -> dict:
    findings = [f for f in result.findings if f.kind in SCANS]
    rules = sorted({f.rule for f in findings})
    index = {rule: i for i, rule in enumerate(rules)}
    driver: dict = {"name": result.stage, "rules": [{"id": rule} for rule in rules]}
    version = tool_versions.get(result.stage)
    if version:
        driver["version"] = version
    invocation: dict = {"executionSuccessful": result.status.value != "error",
                        "startTimeUtc": _utc(result.started), "endTimeUtc": _utc(result.finished)}
    if result.error:
        invocation["toolExecutionNotifications"] = [{"level": "error", "message": {"text": result.error}}]
    return {"tool": {"driver": driver}, "results": [_result(f, index[f.rule]) for f in findings],
            "invocations": [invocation]}


def _result(finding: Finding, rule_index: int) -> dict:
    return {"ruleId": finding.rule, "ruleIndex": rule_index, "level": LEVEL[finding.severity],
            "message": {"text": finding.title or finding.rule}, "locations": [_location(finding)],
            "partialFingerprints": {"releasegate/v1": finding.fingerprint},
            "properties": {"severity": finding.severity.value, "blocking": finding.blocking}}


def _location(finding: Finding) -> dict:
    where = _FILE_LINE.match(finding.location)
    if where:
        region: dict = {"startLine": int(where["line"])}
        end = finding.data.get("end_line")
        if isinstance(end, int) and end >= region["startLine"]:
            region["endLine"] = end
        if finding.evidence:
            region["snippet"] = {"text": finding.evidence}
        return {"physicalLocation": {"artifactLocation": {"uri": _uri(where["path"]),
                                                           "uriBaseId": "%SRCROOT%"},
                                     "region": region}}
    operation = finding.location or finding.rule
    return {"logicalLocations": [{"fullyQualifiedName": operation, "kind": "resource"}]}


@functools.lru_cache(maxsize=4096)
def _uri(path: str) -> str:
    """A file's path as a SARIF artifact URI (a scan names the same files again and again)."""
    return quote(path, safe="/")


def _utc(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
