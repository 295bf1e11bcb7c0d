"""Credentials stage: secrets committed to the source, found by detect-secrets over the run's copy of it (policy
`scans.credentials`).

Running detect-secrets is `scan_secrets`; reading its JSON is the pure `parse_secrets`. A finding names the file,
the line and the kind of secret, never its value: detect-secrets reports a SHA-1 of the secret, of which the
evidence keeps a prefix and the fingerprint the whole (with the file and kind, not the line, so it survives code
moving). Known test fixtures are listed in an allow-list file in the source (`allowlist`): entries match by `path`
(a glob), `type` and `hashed_secret`, each with its `reason`; a match is counted, not reported. A missing or
malformed allow-list, detect-secrets failing, killed, timing out or printing no JSON make the stage an error.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import yaml

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint, normalise_path
from releasegate.domain.models import Artifact, Finding, Metric, StageResult, Status
from releasegate.environment import Environment
from releasegate.policy import Policy
from releasegate.policy.scans import Secrets
from releasegate.stages.base import ToolRun, find_tool, fresh_folder, guarded, now, run_tool
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

STAGE = "credentials"  # not "secrets": redaction masks what follows a word such as `secrets:`
KIND = "secret"
TOOL = "detect-secrets"
DETECT_SECRETS_OK = (0,)
HASH_SHOWN = 12
ALLOW_KEYS = {"path", "type", "hashed_secret", "reason"}


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    spec: Secrets = planned.entry
    return guarded(planned.name, KIND, planned.required, lambda started: _run(spec, ctx, started))


def _run(spec: Secrets, ctx: RunContext, started: datetime) -> StageResult:
    allowed = read_allowlist(ctx.source, spec.allowlist)
    out_dir = fresh_folder(ctx.evidence / STAGE)
    tool = scan_secrets(spec, ctx.source, out_dir)
    doc = read_output(tool)
    (out_dir / "detect-secrets.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    findings, skipped = parse_secrets(doc, allowed, spec)
    return _result(spec, started, findings, skipped, tool, out_dir)


def read_allowlist(source: Path, name: str | None) -> list[dict[str, str]]:
    """The allow-list's entries; StageError naming the file and the entry that cannot be used."""
    if name is None:
        return []
    path = source / name
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except OSError as exc:
        raise StageError(f"the allow-list (scans.credentials.allowlist) {name} cannot be read ({exc.strerror}) — create it in the "
                         "source or remove the setting") from exc
    except yaml.YAMLError as exc:
        raise StageError(f"the allow-list (scans.credentials.allowlist) {name} is not YAML ({exc})") from exc
    if not isinstance(entries, list):
        raise StageError(f"the allow-list (scans.credentials.allowlist) {name} must be a list of entries")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("reason") or set(entry) - ALLOW_KEYS or len(entry) < 2:
            raise StageError(f"the allow-list (scans.credentials.allowlist) {name}, entry {i}: an entry has a reason and at least one of "
                             f"path, type, hashed_secret (and nothing else); got {entry!r}")
    return [{k: str(v) for k, v in entry.items()} for entry in entries]


def scan_secrets(spec: Secrets, source: Path, out_dir: Path) -> ToolRun:
    command = [find_tool(TOOL), "scan", "--all-files"]
    for pattern in spec.exclude_files:
        command += ["--exclude-files", pattern]
    return run_tool(command + list(spec.paths), cwd=source, timeout_s=spec.timeout_s,
                    log_to=out_dir / "detect-secrets.log", ok=DETECT_SECRETS_OK)


def read_output(tool: ToolRun) -> dict[str, Any]:
    try:
        doc = json.loads(tool.stdout)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
        raise StageError(f"detect-secrets output unreadable ({tool.ending()}): expected JSON with 'results'; "
                         f"log: {tool.log}")
    return doc


def parse_secrets(doc: dict[str, Any], allowed: list[dict[str, str]],
                  spec: Secrets) -> tuple[list[Finding], int]:
    """Findings for the secrets no allow-list entry matches, and how many were allowed."""
    findings, skipped = [], 0
    for file, hits in sorted(doc["results"].items()):
        for hit in hits:
            if any(_matches(entry, normalise_path(file), hit) for entry in allowed):
                skipped += 1
            else:
                findings.append(_finding(normalise_path(file), hit, spec))
    return findings, skipped


def _matches(entry: dict[str, str], file: str, hit: dict[str, Any]) -> bool:
    return (fnmatch(file, entry.get("path", "*")) and entry.get("type", hit.get("type")) == hit.get("type")
            and entry.get("hashed_secret", hit.get("hashed_secret")) == hit.get("hashed_secret"))


def _finding(file: str, hit: dict[str, Any], spec: Secrets) -> Finding:
    kind, line, hashed = str(hit.get("type", "secret")), int(hit.get("line_number", 0)), str(hit["hashed_secret"])
    return Finding(
        kind=KIND, rule=kind, severity=spec.severity, title=f"{kind} in {file}:{line}", location=f"{file}:{line}",
        evidence=f"sha1 of the secret starts {hashed[:HASH_SHOWN]} (the value is never kept)",
        fingerprint=fingerprint(KIND, kind, file, hashed), blocking=spec.severity.at_least(spec.blocking_severity),
        data={"type": kind, "line": line})


def _result(spec: Secrets, started: datetime, findings: list[Finding], skipped: int, tool: ToolRun,
            out_dir: Path) -> StageResult:
    blocking = sum(f.blocking for f in findings)
    summary = (f"{STAGE}: {len(findings)} found ({blocking} blocking), {skipped} allowed as known fixtures, "
               f"{tool.seconds:.1f} s; json: {out_dir / 'detect-secrets.json'}")
    log.info("%s", summary)
    return StageResult(
        stage=STAGE, kind=KIND, status=Status.failed if blocking else Status.passed, required=spec.required,
        started=started, finished=now(), summary=summary, findings=findings,
        metrics=[Metric(name="findings", value=len(findings)), Metric(name="blocking", value=blocking),
                 Metric(name="allowed", value=skipped), Metric(name="duration", value=round(tool.seconds, 3), unit="s")],
        artifacts=[Artifact.of(out_dir / "detect-secrets.json"), Artifact.of(out_dir / "detect-secrets.log")])
