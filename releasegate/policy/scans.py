"""The `scans` section: Semgrep, pip-audit and secrets in the source (detect-secrets)."""

from __future__ import annotations

from pydantic import Field, model_validator

from releasegate.domain.models import Severity
from releasegate.policy.spec import (
    DEFAULT_MAX_ADVISORY_AGE_DAYS,
    MAX_ADVISORY_AGE_DAYS,
    MAX_TIMEOUT_S,
    Command,
    _Spec,
)


class Semgrep(_Spec):
    rules: list[str] = Field(min_length=1, description="Local rule files or folders (relative to the policy), "
                             "or 'builtin:NAME' for the gate's bundled rules.")
    paths: list[str] = Field(default_factory=lambda: ["."], description="What to scan, relative to the source.")
    exclude: list[str] = Field(default_factory=lambda: ["tests", "test_*.py", "tests.py"],
                               description="Patterns (semgrep --exclude) of paths in the source not to scan.")
    blocking_severity: Severity = Field(Severity.high, description="Lowest severity that blocks; semgrep's ERROR "
                                        "is high, WARNING medium, INFO low (docs/policy.md, 'Severities').")
    required: bool = True
    timeout_s: float = Field(300, gt=0, le=MAX_TIMEOUT_S)


class PipAudit(_Spec):
    requirements: list[str] = Field(min_length=1, description="Pinned requirements files, relative to the source.")
    export: list[Command] = Field(
        default_factory=list,
        description="Commands run in the workspace first (not by a shell) that write those files from a lock file "
                    "pip-audit cannot read, e.g. 'uv export --format requirements-txt -o requirements.lock.txt'.")
    osv_url: str | None = Field(None, description="An OSV-compatible endpoint (may be a local mirror).")
    osv_data: str | None = Field(
        None, description="Local advisory data (OSV JSON lines, .gz allowed), relative to the policy, that the gate "
                          "serves on loopback.")
    unknown_severity: Severity = Field(Severity.high, description="Severity for advisories that carry none.")
    blocking_severity: Severity = Severity.high
    max_advisory_age_days: int = Field(
        DEFAULT_MAX_ADVISORY_AGE_DAYS, ge=1, le=MAX_ADVISORY_AGE_DAYS,
        description="osv_data older than this (its newest advisory's `modified`, to the run) makes the stage an "
                    "error (INCONCLUSIVE): refresh the file. Not checked for osv_url, whose data the gate cannot see.")
    required: bool = True
    timeout_s: float = Field(300, gt=0, le=MAX_TIMEOUT_S)

    @model_validator(mode="after")
    def _one_source(self) -> PipAudit:
        if bool(self.osv_url) == bool(self.osv_data):
            raise ValueError("set exactly one of osv_url (an OSV endpoint) or osv_data (a local advisory file)")
        return self


class Secrets(_Spec):
    paths: list[str] = Field(default_factory=lambda: ["."], description="What to scan, relative to the source.")
    exclude_files: list[str] = Field(default_factory=list, description="Regular expressions of file paths not to "
                                     "scan (detect-secrets --exclude-files).")
    allowlist: str | None = Field(None, description="A YAML list of known test fixtures, relative to the source: "
                                  "entries with `path` (a glob), `type`, `hashed_secret` and a `reason`.")
    severity: Severity = Field(Severity.high, description="Severity of a secret found.")
    blocking_severity: Severity = Severity.high
    required: bool = True
    timeout_s: float = Field(300, gt=0, le=MAX_TIMEOUT_S)


class Scans(_Spec):
    semgrep: Semgrep | None = None
    pip_audit: PipAudit | None = None
    credentials: Secrets | None = Field(None, description="Secrets committed to the source (detect-secrets).")
