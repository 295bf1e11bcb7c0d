"""SAST stage: semgrep over the run's copy of the source, offline, with the policy's rule files.

Running semgrep is `scan_semgrep`; reading its JSON is the pure `parse_semgrep`, tested on
recorded output. Semgrep (>= 1.1xx) writes "requires login" instead of the matched lines, so
`attach_lines` reads them from the scanned file by byte offset before parsing: the fingerprint
hashes the normalised code, never the line number, and so survives code moving up or down.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint, normalise_code, normalise_path
from releasegate.domain.models import Artifact, Finding, Metric, Severity, StageResult, Status
from releasegate.environment import Environment
from releasegate.policy import Policy, Semgrep
from releasegate.redact import redact
from releasegate.stages.base import ToolRun, find_tool, fresh_folder, guarded, now, require_ran, run_tool
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

STAGE = "semgrep"
KIND = "sast"
EXCERPT_CHARS = 300
BUILTIN_PREFIX = "builtin:"

# Semgrep's rule severities (classic ERROR/WARNING/INFO and the newer CRITICAL..LOW) on the gate's
# scale. ERROR is semgrep's top classic level, so it blocks at the default blocking_severity (high).
# A severity semgrep may add later is read as high: an unknown level must not slip through.
SEVERITY = {
    "CRITICAL": Severity.critical,
    "ERROR": Severity.high,
    "HIGH": Severity.high,
    "WARNING": Severity.medium,
    "MEDIUM": Severity.medium,
    "INFO": Severity.low,
    "LOW": Severity.low,
    "INVENTORY": Severity.info,
    "EXPERIMENT": Severity.info,
}
UNKNOWN_SEVERITY = Severity.high

# Semgrep's exit statuses when it scanned: 0 (findings or not), 1 (findings, with --error). Any other status
# (2 fatal error, 7 invalid config, …), a signal or a timeout means the scan cannot be trusted.
SEMGREP_OK = (0, 1)

# Offline and private: no version check, no metrics, settings and logs under the evidence folder.
OFFLINE_ENV = {"SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"}


def run(policy: Policy, ctx: RunContext) -> StageResult:
    spec = policy.scans.semgrep
    if spec is None:
        raise ValueError("policy has no scans.semgrep section: do not schedule the semgrep stage")
    return guarded(STAGE, KIND, spec.required, lambda started: _run(policy, spec, ctx, started))


def _run(policy: Policy, spec: Semgrep, ctx: RunContext, started: datetime) -> StageResult:
    rule_files = resolve_rules(policy, spec.rules)
    out_dir = fresh_folder(ctx.evidence / STAGE)
    tool = scan_semgrep(rule_files, spec, ctx.source, out_dir)
    doc = read_output(tool, out_dir / "semgrep.json")
    findings = parse_semgrep(attach_lines(doc, ctx.source), spec.blocking_severity, str(ctx.source))
    warnings = scan_warnings(doc)
    scanned = len(doc.get("paths", {}).get("scanned", []))
    result = _result(spec, started, findings, scanned, len(warnings), tool.seconds, out_dir)
    log.info("%s", result.summary)
    return result


def _result(spec: Semgrep, started: datetime, findings: list[Finding], scanned: int, warnings: int,
            seconds: float, out_dir: Path) -> StageResult:
    blocking = sum(f.blocking for f in findings)
    json_path = out_dir / "semgrep.json"
    summary = (f"semgrep: {len(findings)} findings ({blocking} blocking) in {scanned} files, {seconds:.1f} s"
               f"{f', {warnings} warnings' if warnings else ''}; json: {json_path}")
    return StageResult(
        stage=STAGE, kind=KIND, status=Status.failed if blocking else Status.passed, required=spec.required,
        started=started, finished=now(), summary=summary, findings=findings,
        metrics=[Metric(name="findings", value=len(findings)), Metric(name="blocking", value=blocking),
                 Metric(name="files_scanned", value=scanned, unit="files"),
                 Metric(name="warnings", value=warnings), Metric(name="duration", value=round(seconds, 3), unit="s")],
        artifacts=[Artifact.of(json_path), Artifact.of(out_dir / "semgrep.log")],
        evidence_empty=scanned == 0)


def builtin_rules_dir() -> Path:
    """The gate's bundled rules: package data of releasegate (releasegate/rules/)."""
    return Path(str(files("releasegate") / "rules"))


def resolve_rules(policy: Policy, rules: list[str]) -> list[Path]:
    """Each policy entry as an existing file or folder; a missing one is an error naming the path."""
    paths = [_resolve_rule(policy, entry) for entry in rules]
    for entry, path in zip(rules, paths):
        if not path.exists():
            raise StageError(f"{policy.path}: scans.semgrep.rules: {entry!r} -> {path} does not exist — "
                             f"fix the path (relative to the policy) or use one of: {', '.join(builtin_names())}")
    return paths


def _resolve_rule(policy: Policy, entry: str) -> Path:
    if entry.startswith(BUILTIN_PREFIX):
        return builtin_rules_dir() / f"{entry[len(BUILTIN_PREFIX):]}.yml"
    return policy.resolve(entry)


def builtin_names() -> list[str]:
    return sorted(BUILTIN_PREFIX + p.stem for p in builtin_rules_dir().glob("*.yml"))


def semgrep_command(binary: str, rule_files: list[Path], spec: Semgrep) -> list[str]:
    command = [binary, "scan", "--json", "--metrics=off", "--disable-version-check", "--no-git-ignore",
               "--no-rewrite-rule-ids", "--project-root", "."]
    for rule_file in rule_files:
        command += ["--config", str(rule_file)]
    for pattern in spec.exclude:
        command += ["--exclude", pattern]
    return command + list(spec.paths)


def semgrep_env(home: Path) -> dict[str, str]:
    """Keep semgrep's settings, log and version cache inside the run's evidence, not in $HOME."""
    home.mkdir(parents=True, exist_ok=True)
    return {**OFFLINE_ENV, "XDG_CONFIG_HOME": str(home), "XDG_CACHE_HOME": str(home),
            "SEMGREP_SETTINGS_FILE": str(home / "settings.yml"), "SEMGREP_LOG_FILE": str(home / "semgrep.log"),
            "SEMGREP_VERSION_CACHE_PATH": str(home / "semgrep_version")}


def scan_semgrep(rule_files: list[Path], spec: Semgrep, source: Path, out_dir: Path) -> ToolRun:
    binary = find_tool("semgrep")
    command = semgrep_command(binary, rule_files, spec)
    tool = run_tool(command, cwd=source, timeout_s=spec.timeout_s, env=semgrep_env(out_dir / "home"),
                    log_to=out_dir / "semgrep.log")
    (out_dir / "semgrep.json").write_text(tool.stdout, encoding="utf-8")
    return tool


def read_output(tool: ToolRun, json_path: Path) -> dict[str, Any]:
    """Semgrep's JSON document, or StageError when semgrep did not end as it does after a scan (timeout, signal,
    an exit status outside SEMGREP_OK) or its JSON is missing, unreadable or reports a fatal error."""
    fatal = fatal_errors(_json_object(tool.stdout))
    if fatal and not tool.timed_out and tool.signal is None:  # semgrep said why it could not scan: that is the reason
        raise StageError(f"semgrep could not scan ({tool.ending()}): {'; '.join(fatal)} — fix the rule files "
                         f"(scans.semgrep.rules) or the config; details: {json_path}")
    try:
        require_ran(tool, SEMGREP_OK)
        doc = load_semgrep_json(tool.stdout, tool.returncode, tool.stderr)
    except StageError as exc:
        raise StageError(f"{exc}; semgrep's own errors: {'; '.join(fatal)}" if fatal else str(exc)) from None
    fatal = fatal_errors(doc)
    if fatal:
        raise StageError(f"semgrep could not scan (exit {tool.returncode}): {'; '.join(fatal)} — "
                         f"fix the rule files or config; details: {json_path}")
    return doc


def load_semgrep_json(stdout: str, returncode: int, stderr: str = "") -> dict[str, Any]:
    doc = _json_object(stdout)
    if not isinstance(doc.get("results"), list):
        tail = (stderr.strip().splitlines() or ["no output on stderr"])[-1][:200]
        what = "semgrep printed nothing on stdout" if not stdout.strip() else "expected JSON with 'results'"
        raise StageError(f"semgrep output unreadable (exit {returncode}): {what} — last stderr line: {tail}")
    return doc


def _json_object(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def fatal_errors(doc: Mapping[str, Any]) -> list[str]:
    """Errors of level "error" (rule parse errors, invalid config): the scan cannot be trusted."""
    return [_error_text(e) for e in doc.get("errors", []) if e.get("level") == "error"]


def scan_warnings(doc: Mapping[str, Any]) -> list[str]:
    """Per-file problems (syntax errors, timeouts): noted in the metrics, the scan still counts."""
    return [_error_text(e) for e in doc.get("errors", []) if e.get("level") != "error"]


def _error_text(error: Mapping[str, Any]) -> str:
    """Semgrep's own words on one error: its type, what it says (a first line ending in ':' joined with the line
    that explains it, else long_msg or short_msg) and where (rule file and line, when semgrep says)."""
    lines = [ln.strip() for ln in str(error.get("message", "")).splitlines() if ln.strip()]
    said = lines[0] if lines else str(error.get("long_msg") or error.get("short_msg") or "(no message)")
    if said.endswith(":") and len(lines) > 1:
        said = f"{said} {lines[1]}"
    spans = error.get("spans") or []
    start = spans[0].get("start", {}) if spans and isinstance(spans[0], Mapping) else {}
    where = f" ({Path(str(spans[0].get('file', ''))).name}:{start.get('line', '?')})" if start else ""
    return f"{error.get('type', 'error')}: {said}{where}"[:300]


def attach_lines(doc: dict[str, Any], source: Path) -> dict[str, Any]:
    """A copy of doc whose results carry the matched source lines (read by byte offset) in extra.lines."""
    cache: dict[str, bytes] = {}
    results = [_with_lines(r, source, cache) for r in doc["results"]]
    return {**doc, "results": results}


def _with_lines(result: dict[str, Any], source: Path, cache: dict[str, bytes]) -> dict[str, Any]:
    path = result["path"]
    if path not in cache:
        file = Path(path) if Path(path).is_absolute() else source / path
        cache[path] = file.read_bytes() if file.is_file() else b""
    lines = matched_lines(cache[path], result["start"]["offset"], result["end"]["offset"])
    return {**result, "extra": {**result.get("extra", {}), "lines": lines}}


def matched_lines(data: bytes, start: int, end: int) -> str:
    """The whole lines covering bytes [start, end): what semgrep shows as `lines` when logged in."""
    first = data.rfind(b"\n", 0, start) + 1
    last = data.find(b"\n", end)
    return data[first: len(data) if last < 0 else last].decode("utf-8", errors="replace")


def parse_semgrep(doc: Mapping[str, Any], blocking_severity: Severity, source: str | None = None) -> list[Finding]:
    """Semgrep's JSON results as findings; `source` (absolute root) makes absolute paths relative."""
    return [_finding(r, blocking_severity, source) for r in doc["results"]]


def _finding(result: Mapping[str, Any], blocking_severity: Severity, source: str | None) -> Finding:
    extra = result.get("extra", {})
    severity = SEVERITY.get(str(extra.get("severity", "")).upper(), UNKNOWN_SEVERITY)
    path = relative_path(result["path"], source)
    code = extra.get("lines", "")
    rule = result["check_id"]
    return Finding(
        kind=KIND, rule=rule, severity=severity, title=f"{rule}: {_first_line(extra.get('message', ''))}",
        location=f"{path}:{result['start']['line']}", evidence=excerpt(code),
        fingerprint=fingerprint(KIND, rule, path, fingerprint(normalise_code(code))),
        blocking=severity.at_least(blocking_severity),
        data={"message": extra.get("message", ""), "semgrep_severity": extra.get("severity", ""),
              "metadata": extra.get("metadata", {}), "start_line": result["start"]["line"],
              "end_line": result["end"]["line"]})


def relative_path(path: str, source: str | None) -> str:
    if source and os.path.isabs(path):
        path = os.path.relpath(path, source)
    return normalise_path(path)


def excerpt(code: str) -> str:
    text = redact(code.strip("\n"))
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= 160 else line[:159] + "…"


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    """The stage as the registry runs it (releasegate/stages/registry.py): it needs no service."""
    return run(policy, ctx)
