"""Running pip-audit, fail closed: the requirements it audits (exported first where the policy says how), its
command line, its JSON report, and the checks that the audit really happened.

pip-audit exits 1 both for "vulnerabilities found" and for a crash (an unreachable OSV URL is a traceback and
no JSON), so the exit code is never read alone: the JSON must exist and list every dependency, nothing on
stderr may say it did not audit, and a local mirror must have served at least one query per dependency.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.policy import PipAudit, Policy
from releasegate.stages.base import ToolRun, find_tool, run_tool

# Lines on pip-audit's stderr that mean it did not really audit, whatever the exit code says.
STDERR_FAILURES = ("Traceback (most recent call last)", "ConnectionError", "ERROR:pip_audit")
# pip-audit's exit statuses when it audited: 0 (no known vulnerability), 1 (vulnerabilities found; also a crash,
# which the checks on its JSON and stderr catch). Any other status, a signal or a timeout is an error.
PIP_AUDIT_OK = (0, 1)
EXPORT_OK = (0,)


def requirement_files(spec: PipAudit, source: Path) -> list[Path]:
    files = [(source / name).resolve() for name in spec.requirements]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise StageError(f"pip-audit: requirements file(s) not found: {', '.join(missing)} — "
                         "fix scans.pip_audit.requirements (paths are relative to the service source)")
    return files


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
