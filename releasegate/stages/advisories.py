"""The advisories pip-audit reported, as findings: each advisory's OSV record (from the mirror in process,
else GET /v1/vulns/{id} beside the query URL), its severity and one finding per (package, version, advisory).

Severity: pip-audit's JSON carries none, so it comes from the OSV record: CVSS v3 vector -> base score ->
rating, else database_specific.severity, else the policy's unknown_severity with
data["severity_source"] = "unknown".
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Finding, Severity
from releasegate.servers.osv_mirror import OsvMirror, normalise_name
from releasegate.stages.osv_source import HTTP_TIMEOUT_S

FINDING_KIND = "vulnerability"


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
