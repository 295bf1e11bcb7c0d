"""The gate's data contracts: StageResult, Finding, Metric, Artifact, Reason, Verdict.

Every stage returns a StageResult; the verdict is computed from them alone.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from releasegate.domain.defect_lifecycle import DefectState


class Severity(str, Enum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self.value]

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class Status(str, Enum):
    passed = "passed"    # the tool ran and every check held
    failed = "failed"    # the tool ran and found problems (a result, not an error)
    error = "error"      # the tool could not run or its output could not be read


class Decision(str, Enum):
    GO = "GO"
    NO_GO = "NO_GO"
    INCONCLUSIVE = "INCONCLUSIVE"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metric(_Model):
    name: str
    value: float
    unit: str = ""
    threshold: float | None = None
    operator: str | None = None  # "<=" or ">=": the value must satisfy `value operator threshold`
    passed: bool | None = None


class Artifact(_Model):
    name: str
    path: str
    sha256: str

    @classmethod
    def of(cls, path: Path, name: str | None = None) -> Artifact:
        return cls(name=name or path.name, path=str(path), sha256=sha256_file(path))


class Finding(_Model):
    kind: str                 # test, sast, vulnerability, budget, alert, suite, ...
    rule: str                 # rule id, test node id, advisory id, budget name
    severity: Severity
    title: str
    location: str = ""
    evidence: str = ""        # excerpt, secrets redacted
    fingerprint: str
    blocking: bool = True
    data: dict[str, Any] = Field(default_factory=dict)


class TestCase(_Model):
    __test__ = False  # not a pytest test class

    node_id: str
    outcome: str              # passed, failed, error, skipped, flaky
    duration_s: float = 0.0
    attempts: int = 1
    message: str = ""


class TestGroup(_Model):
    """A suite's cases of one module (test file), counted: the report shows passing tests this way."""

    __test__ = False  # not a pytest test class

    module: str
    passed: int = 0
    failed: int = 0
    error: int = 0
    skipped: int = 0
    flaky: int = 0
    duration_s: float = 0.0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.error + self.skipped + self.flaky


class Attempt(_Model):
    """One measurement or run of a stage: the first, or a remediation cycle (rerun, re-measure)."""

    attempt: int
    started: datetime
    finished: datetime
    scope: str                # what ran: "all tests", "3 failing tests", "overall load"
    status: Status
    summary: str = ""
    remediation: str = ""     # why this attempt happened, or what it changed


class AdvisoryData(_Model):
    """The vulnerability data a dependency audit was judged against: where it came from, its digest, its size and
    how old its newest advisory is (OSV's `modified`), so a verdict on old data never looks like a current one."""

    source: str               # "osv_data" (a file the gate served) or "osv_url" (an endpoint the gate cannot see)
    location: str             # the file's path or the endpoint's URL
    sha256: str = ""          # of the file; "" for an endpoint
    advisories: int | None = None
    newest_modified: datetime | None = None
    age_days: float | None = None       # newest_modified to the start of the stage
    max_age_days: int | None = None     # the policy's limit (scans.pip_audit.max_advisory_age_days)

    @property
    def stale(self) -> bool:
        return self.age_days is not None and self.max_age_days is not None and self.age_days > self.max_age_days

    def describe(self) -> str:
        """One line: `osv_data advisories.osv.jsonl (sha256 3f2a…, 4 advisories, newest 2021-08-27, 1923 days old)`."""
        if self.source != "osv_data":
            return f"{self.source} {self.location} (the endpoint's data: its age is not known to the gate)"
        newest = self.newest_modified.date().isoformat() if self.newest_modified else "no modified date"
        age = f", {int(self.age_days)} days old" if self.age_days is not None else ""  # whole days
        limit = f", limit {self.max_age_days} days" if self.max_age_days is not None else ""
        return (f"{self.source} {Path(self.location).name} (sha256 {self.sha256[:12]}, {self.advisories} advisories, "
                f"newest {newest}{age}{limit})")


class StageResult(_Model):
    stage: str                # e.g. "pytest[unit]", "locust", "semgrep"
    kind: str                 # suite, load, sast, dependencies, alerts, chaos
    status: Status
    required: bool = True
    started: datetime
    finished: datetime
    attempts: int = 1
    summary: str = ""         # one line an operator can act on
    error: str | None = None  # set when status is error: what failed and what to do
    metrics: list[Metric] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    artifacts: list[Artifact] = Field(default_factory=list)
    evidence_empty: bool = False  # the tool ran but produced no evidence (0 tests collected)
    test_cases: list[TestCase] = Field(default_factory=list)  # failing and flaky ones all; others up to a sample
    test_groups: list[TestGroup] = Field(default_factory=list)  # every case, counted per module
    cases_file: str = ""      # a suite's spool of every case that is not failing (releasegate.stages.suite_tally)
    attempt_log: list[Attempt] = Field(default_factory=list)
    advisory_data: AdvisoryData | None = None  # a dependency audit's vulnerability data

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)


class Reason(_Model):
    stage: str
    message: str
    severity: Severity
    fingerprint: str = ""
    value: float | None = None
    threshold: float | None = None
    evidence: str = ""


class AppliedWaiver(_Model):
    """A documented exception that turned a blocking finding into a non-blocking one in this run."""

    id: int
    fingerprint: str
    reason: str
    approver: str
    requested_by: str = ""
    expires_on: str           # YYYY-MM-DD
    title: str = ""           # the waived finding


class Approval(_Model):
    """A person's acceptance, in Airflow's approval step, of the evidence an INCONCLUSIVE run lacks: the missing
    evidence it names (reason fingerprints) stops deciding; anything else still decides."""

    approver: str             # the authenticated Airflow user who chose "Approve"
    requested_by: str = ""    # who triggered the run (may not approve it)
    approved_at: datetime
    service: str = ""         # what was approved: this service and version only
    version: str = ""
    accepted: list[str] = Field(default_factory=list)  # the gaps accepted, each as read (verdict.gap_key)


class DefectChange(_Model):
    fingerprint: str
    title: str
    stage: str = ""
    severity: str = ""
    state: DefectState        # new, recurring, reopened, fixed, waived
    previous: DefectState | None = None


class Verdict(_Model):
    decision: Decision
    reasons: list[Reason] = Field(default_factory=list)
    decided_at: datetime
    policy_digest: str = ""
    waivers: list[AppliedWaiver] = Field(default_factory=list)
    defects: list[DefectChange] = Field(default_factory=list)
    advisory_data: AdvisoryData | None = None  # the vulnerability data the dependency audit used
    approval: Approval | None = None  # an approver accepted missing evidence of this run (it decided otherwise)

    @property
    def new_defects(self) -> list[DefectChange]:
        return [d for d in self.defects if d.state in (DefectState.new, DefectState.reopened)]

    @property
    def old_defects(self) -> list[DefectChange]:
        return [d for d in self.defects if d.state in (DefectState.recurring, DefectState.waived)]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()
