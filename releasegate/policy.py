"""The gate policy (`gate.yaml`): one per service, validated here, with a published JSON schema.

Paths to the service's own files (suite paths, locustfile, requirements, semgrep paths, alert files) are relative
to its source folder; paths to the gate's inputs (source.path, semgrep rules, osv_data, chaos experiments,
dependency folders) to the policy file (docs/policy.md, "Paths"). Strings may use placeholders, filled in when the
gate runs: {version} {port} {host} {base_url} {workdir} {python} {service} {evidence} {run_id}.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from releasegate.errors import PolicyError
from releasegate.models import Severity
from releasegate.waiver_rules import DEFAULT_MAX_DAYS, LIMIT_MAX_DAYS

PLACEHOLDERS = ("version", "port", "host", "base_url", "workdir", "python", "service", "evidence", "run_id")
REPORT_URL_PLACEHOLDERS = ("service", "version", "run_id")
Command = list[str] | str
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Env = dict[EnvName, str]

# What a policy may be: hostile files are refused before they cost memory or time (docs/policy.md, "Limits").
MAX_POLICY_BYTES = 1024 * 1024    # 1 MiB
MAX_NESTING = 32                  # mappings and lists inside each other
MAX_NODES = 10_000                # values, keys, lists and mappings in all (a real policy has a few hundred)
MAX_PROBLEMS_SHOWN = 20
MAX_TIMEOUT_S = 86400.0           # every *timeout_s: one day at most
MAX_INTERVAL_S = 60.0             # every interval_s
MAX_COOLDOWN_S = 3600.0           # load.remeasure_cooldown_s
DEFAULT_MAX_ADVISORY_AGE_DAYS = 30  # scans.pip_audit.max_advisory_age_days: advisory feeds change daily
MAX_ADVISORY_AGE_DAYS = 3650


class _Spec(BaseModel):
    # finite numbers only: .inf / .nan in a policy are refused, never read as "wait forever"
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class Source(_Spec):
    """Where the service's code for a version lives, and how the gate gets a private copy of it."""

    path: str = Field(".", description="Folder with the service code, relative to the policy; may use {version}.")
    copy_to_workspace: bool = Field(
        True, description="Copy the code into the run's own workspace first (for apps that write into their tree).")
    exclude: list[str] = Field(default_factory=lambda: [".git", ".venv", "__pycache__", "node_modules", "*.pyc"])


class HealthCheck(_Spec):
    url: str = Field(description="URL that answers when the service is ready, e.g. http://{host}:{port}/healthz")
    expect_status: int = 200
    timeout_s: float = Field(60, gt=0, le=MAX_TIMEOUT_S, description="How long to wait for health before provisioning fails.")
    interval_s: float = Field(0.5, gt=0, le=MAX_INTERVAL_S)


class EnvironmentSpec(_Spec):
    """How to start the service on its own port, check it is healthy and stop it."""

    python: str | None = Field(None, description="Interpreter for {python} (setup, start and the suites' default "
                               "'{python} -m pytest'); default: the gate's own. Needs pytest and the service's "
                               "dependencies.")
    setup: list[Command] = Field(
        default_factory=list, description="Commands run in the workspace before start (migrations, fixtures); "
                                          "split into arguments, not run by a shell.")
    start: Command = Field(description="Command that serves the app on {port}, e.g. '{python} -m flask run -p {port}'; "
                                       "split into arguments, not run by a shell.")
    env: Env = Field(
        default_factory=dict, description="Environment for setup, start and the suites (e.g. DATABASE_URL).")
    port: int | None = Field(None, ge=1, le=65535, description="Fixed port; default: a free 127.0.0.1 port.")
    health: HealthCheck
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT"] = "SIGTERM"
    stop_timeout_s: float = Field(10, gt=0, le=MAX_TIMEOUT_S, description="Grace period before the gate kills the service.")
    dependencies: list[Dependency] = Field(
        default_factory=list, description="Services started first, each on its own free port; the service finds "
        "one through {dep_NAME_url} / {dep_NAME_port} (the proxy's address when proxy is true).")


class Suite(_Spec):
    """One pytest suite; its result is read from JUnit XML, never from the exit code alone."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Short id, e.g. unit.")
    kind: Literal["unit", "integration", "contract", "e2e", "smoke", "other"] = "unit"
    command: Command = Field(
        default_factory=lambda: ["{python}", "-m", "pytest"],
        description="Test command (split into arguments, not run by a shell); the gate adds --junitxml.")
    paths: list[str] = Field(default_factory=list,
                             description="Test files or folders, relative to the source, e.g. ['tests.py'].")
    args: list[str] = Field(default_factory=list,
                            description="Extra arguments, e.g. ['--cov-fail-under=0', '-W', 'default'].")
    env: Env = Field(default_factory=dict)
    junit: str | None = Field(
        None, description="Where the command writes JUnit XML itself (non-pytest runners), relative to the source; "
                          "default: the gate asks pytest.")
    needs_service: bool = Field(False, description="Start the service first; the suite gets RELEASEGATE_BASE_URL.")
    required: bool = True
    retries: int = Field(0, ge=0, le=5, description="Reruns of failing tests only; a pass on rerun is flaky.")
    flaky_blocks: bool = Field(False, description="Whether a flaky test blocks the release.")
    min_tests: int = Field(1, ge=0, description="Fewer collected tests than this is missing evidence.")
    timeout_s: float = Field(900, gt=0, le=MAX_TIMEOUT_S)
    exit_codes_ok: list[int] = Field(
        default_factory=lambda: [0, 1],
        description="Exit statuses that mean the tests ran (1: some failed). Any other (pytest's 2, 3, 4), a signal "
                    "or a timeout means the suite did not run: INCONCLUSIVE, with the tool's own error line.")
    severity: Severity = Field(Severity.high, description="Severity of a failing test in this suite.")


class Budgets(_Spec):
    p50_ms: float | None = Field(None, gt=0)
    p95_ms: float | None = Field(None, gt=0)
    p99_ms: float | None = Field(None, gt=0)
    error_rate: float | None = Field(None, ge=0, le=1, description="Failures / requests, e.g. 0.01 for 1 %.")
    min_rps: float | None = Field(None, ge=0, description="Minimum requests per second sustained.")


class Stress(_Spec):
    """Step the users up until a budget breaks: the capacity is the last step that held every budget.

    A breach while stressing is expected (that is the point) and is reported as a low finding that does
    not block; it blocks (load.severity) only when the service breaks below min_users_before_break.
    """

    start_users: int = Field(5, ge=1, le=1000)
    step_users: int = Field(5, ge=1, le=1000, description="Users added at each step.")
    step_duration_s: float = Field(30, ge=2, le=3600, description="Seconds per step; also the percentile window.")
    max_users: int = Field(50, ge=1, le=1000, description="The last step; reaching it without a breach passes.")
    min_users_before_break: int | None = Field(
        None, ge=1, description="Block when a budget breaks with fewer users than this; default: never block.")

    @model_validator(mode="after")
    def _steps(self) -> Stress:
        if self.max_users < self.start_users:
            raise ValueError("max_users must be at least start_users")
        return self

    def targets(self) -> list[int]:
        return list(range(self.start_users, self.max_users + 1, self.step_users))


class Soak(_Spec):
    """A long steady run (users, duration_s) split into windows: latency drift and the service's memory."""

    window_s: float = Field(60, ge=2, le=3600, description="Window length; the first and last full ones compare.")
    max_p95_drift_ratio: float | None = Field(
        1.5, gt=0, description="Block when p95 of the last window over p95 of the first exceeds this.")
    max_memory_growth_mb: float | None = Field(
        None, gt=0, description="Block when the service's RSS (with children) grows by more than this.")


class Distributed(_Spec):
    """Run Locust as a master with worker processes on this machine (--processes)."""

    workers: int | Literal["auto"] = Field("auto", description="Worker processes; 'auto' = one per core.")

    @field_validator("workers")
    @classmethod
    def _positive(cls, workers: int | str) -> int | str:
        if isinstance(workers, int) and not 1 <= workers <= 64:
            raise ValueError("workers must be between 1 and 64, or 'auto'")
        return workers


class Telemetry(_Spec):
    """Cross-check the service's own /metrics against what Locust measured (scraped before and after the load).

    The request counter's increase (after − before, without `exclude`d series) must agree with Locust's
    request count within `tolerance`; the increase of its error series (`errors_selector`) with Locust's
    failures. Exclude what the gate itself calls during the load and Locust does not (its own scrapes of
    /metrics); keep an endpoint Locust also calls (the demo's locustfile hits /healthz).
    """

    url: str = Field("{base_url}/metrics", description="Prometheus text endpoint, e.g. {base_url}/metrics.")
    required_metrics: list[str] = Field(
        default_factory=list, description="Sample names that must be exposed, e.g. http_request_duration_seconds_bucket.")
    requests_metric: str = Field("http_requests_total", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
                                 description="Counter of requests served.")
    errors_selector: dict[str, str] = Field(
        default_factory=lambda: {"status": "[45].."},
        description="Label regexes (anchored, like PromQL =~) that make a request an error; match what the "
                    "locustfile counts as a failure (Locust fails every 4xx and 5xx by default).")
    exclude: dict[str, list[str]] = Field(
        default_factory=lambda: {"endpoint": ["/metrics"]},
        description="Label values whose series do not count, e.g. {endpoint: [/metrics]}.")
    tolerance: float = Field(0.05, ge=0, le=1, description="Allowed relative difference, e.g. 0.05 for 5 %.")
    timeout_s: float = Field(5, gt=0, le=MAX_TIMEOUT_S, description="Per scrape.")
    severity: Severity = Field(Severity.high, description="Severity of a missing metric or a disagreeing counter.")


class Load(_Spec):
    locustfile: str = Field(description="Locust file, relative to the service source.")
    profile: Literal["load", "stress", "soak"] = "load"
    users: int = Field(10, ge=1, le=1000)
    spawn_rate: float = Field(10, gt=0, le=1000)
    duration_s: float = Field(20, gt=0, le=7200)
    min_requests: int = Field(50, ge=1, description="Fewer requests than this is missing evidence.")
    budgets: Budgets
    endpoints: dict[str, Budgets] = Field(default_factory=dict, description="Budgets per Locust request name.")
    remeasure_cooldown_s: float = Field(5, ge=0, le=MAX_COOLDOWN_S, description="Pause before re-measuring a breached budget.")
    required: bool = True
    timeout_s: float = Field(600, gt=0, le=MAX_TIMEOUT_S)
    severity: Severity = Severity.high
    stress: Stress | None = Field(None, description="Steps for profile stress; default: Stress's defaults.")
    soak: Soak | None = Field(None, description="Windows and limits for profile soak; default: Soak's defaults.")
    distributed: Distributed | None = Field(None, description="Run Locust with worker processes.")
    telemetry: Telemetry | None = Field(None, description="Cross-check the service's /metrics against Locust.")

    @model_validator(mode="after")
    def _profile_sections(self) -> Load:
        for section in ("stress", "soak"):
            if getattr(self, section) is not None and self.profile != section:
                raise ValueError(f"'{section}' is only read when profile is {section} (profile is {self.profile})")
        if self.profile == "soak" and self.duration_s < 2 * self.soak_spec().window_s:
            raise ValueError("a soak needs at least two windows: make duration_s at least 2 × soak.window_s")
        return self

    def stress_spec(self) -> Stress:
        return self.stress or Stress()

    def soak_spec(self) -> Soak:
        return self.soak or Soak()


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


class Scans(_Spec):
    semgrep: Semgrep | None = None
    pip_audit: PipAudit | None = None


_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


class FeedSeries(_Spec):
    """The input series a generated promtool test feeds the alert, as one of four common shapes.

    The gate fills in the value (the budget just past / just under, in the alert's unit):
    - histogram: two `le` buckets (`metric` is the _bucket series) so any histogram_quantile() is the value;
    - ratio: two counters of `metric`, `bad` and `good` requests, whose rate ratio is the value;
    - rate: one counter of `metric` growing by the value per second;
    - gauge: one series of `metric` holding the value.
    Labels are a mapping (PromQL braces are not allowed in policy strings), e.g. {job: inventory}.
    """

    shape: Literal["histogram", "ratio", "rate", "gauge"]
    metric: str = Field(pattern=_METRIC_NAME, description="e.g. http_request_duration_seconds_bucket.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels on every series, e.g. {job: inventory}.")
    bad: dict[str, str] = Field(default_factory=dict, description="ratio: labels of failing requests, e.g. {status: '500'}.")
    good: dict[str, str] = Field(default_factory=dict, description="ratio: labels of good requests, e.g. {status: '200'}.")

    @model_validator(mode="after")
    def _ratio_needs_both(self) -> FeedSeries:
        if self.shape == "ratio" and not (self.bad and self.good):
            raise ValueError("shape ratio needs 'bad' and 'good' labels, e.g. bad: {status: '500'}, good: {status: '200'}")
        return self


class BudgetAlert(_Spec):
    """The alert rule that covers one load budget, and how to feed it a value in a generated test."""

    alert: str = Field(description="Alert name in the rule files, e.g. InventoryHighLatencyP95.")
    series: FeedSeries
    scale: float | None = Field(
        None, gt=0, description="Alert value = budget × scale; default 0.001 for *_ms budgets (alerts compare "
                                "seconds), else 1. Use 1 for an alert in ms, 100 for an error rate in percent.")
    margin: float = Field(0.05, gt=0, lt=0.5, description="How far past / under the budget the generated values sit.")


class AlertBudgets(_Spec):
    """Which alert covers which budget of load.budgets; each is checked by threshold and by generated tests."""

    p50_ms: BudgetAlert | None = None
    p95_ms: BudgetAlert | None = None
    p99_ms: BudgetAlert | None = None
    error_rate: BudgetAlert | None = None
    min_rps: BudgetAlert | None = None


class RouteExpectation(_Spec):
    """An alert with these labels must reach exactly these receivers."""

    labels: dict[str, str] = Field(min_length=1, description="e.g. {severity: critical, service: inventory}.")
    receivers: list[str] = Field(min_length=1, description="e.g. [pager].")


class Alertmanager(_Spec):
    """Alertmanager config checked with `amtool check-config` and `amtool config routes test`."""

    config: str = Field(description="Alertmanager config, relative to the source, e.g. alerts/alertmanager.yml.")
    routes: list[RouteExpectation] = Field(default_factory=list)


class Alerts(_Spec):
    rule_files: list[str] = Field(min_length=1, description="Prometheus rule files, relative to the source.")
    tests: list[str] = Field(min_length=1, description="promtool rule-test files, relative to the source.")
    budgets: AlertBudgets = Field(
        default_factory=AlertBudgets, description="Alerts covering load budgets (needs load.budgets).")
    alertmanager: Alertmanager | None = None
    required: bool = True
    timeout_s: float = Field(120, gt=0, le=MAX_TIMEOUT_S)


class Slack(_Spec):
    channel: str = Field(description="Channel id or name, e.g. #releases.")
    connection_id: str = Field("slack_api_default", description="Airflow connection holding the bot token.")
    report_url: str | None = Field(
        None, description="Link to the report, may use {service} {version} {run_id}; default: the report's path.")


class Notify(_Spec):
    slack: Slack | None = None


class Waivers(_Spec):
    """Limits on the waivers granted for this service's findings (`releasegate waive`)."""

    max_days: int = Field(DEFAULT_MAX_DAYS, ge=1, le=LIMIT_MAX_DAYS, description="Longest a waiver may last: its expiry at most this many "
                                                        "days after the day it is granted (UTC).")


class DependencyHealth(_Spec):
    """How the gate knows a dependency is ready: an HTTP URL or a TCP connect (both may use its own {port})."""

    url: str | None = Field(None, description="e.g. http://{host}:{port}/healthz")
    tcp: str | None = Field(None, description="host:port that accepts connections, e.g. {host}:{port}")
    expect_status: int = 200
    timeout_s: float = Field(30, gt=0, le=MAX_TIMEOUT_S)
    interval_s: float = Field(0.25, gt=0, le=MAX_INTERVAL_S)

    @model_validator(mode="after")
    def _one_check(self) -> DependencyHealth:
        if bool(self.url) == bool(self.tcp):
            raise ValueError("set exactly one of url (an HTTP health URL) or tcp (host:port)")
        return self


class Dependency(_Spec):
    """A service the one under test calls, started by the gate before it (and stopped after it)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Short id; the service's placeholders use it.")
    path: str | None = Field(None, description="Folder to start in, relative to the policy; default: the workspace.")
    start: Command = Field(description="Command serving the dependency on its own {port}.")
    env: Env = Field(default_factory=dict)
    health: DependencyHealth
    proxy: bool = Field(False, description="Put the gate's fault-injecting TCP proxy in front (for chaos).")
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT"] = "SIGTERM"
    stop_timeout_s: float = Field(10, gt=0, le=MAX_TIMEOUT_S)


class ChaosExperiment(_Spec):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Short id, e.g. warehouse-down.")
    file: str = Field(description="Chaos Toolkit experiment (JSON or YAML), relative to the policy file.")
    required: bool = True
    severity: Severity = Field(Severity.high, description="Severity of a deviated steady state.")


class Chaos(_Spec):
    """Chaos Toolkit experiments run against the provisioned service and its dependencies."""

    experiments: list[ChaosExperiment] = Field(min_length=1)
    required: bool = True
    timeout_s: float = Field(300, gt=0, le=MAX_TIMEOUT_S, description="Per experiment.")


class Policy(_Spec):
    """A service's release gate: what must hold before a version ships."""

    service: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    source: Source = Field(default_factory=Source)
    environment: EnvironmentSpec | None = None
    suites: list[Suite] = Field(default_factory=list)
    load: Load | None = None
    scans: Scans = Field(default_factory=Scans)
    alerts: Alerts | None = None
    chaos: Chaos | None = None
    notify: Notify = Field(default_factory=Notify)
    waivers: Waivers = Field(default_factory=Waivers)

    _path: Path | None = PrivateAttr(default=None)
    _digest: str = PrivateAttr(default="")
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)  # field path -> line in the file

    @field_validator("suites")
    @classmethod
    def _unique_suite_names(cls, suites: list[Suite]) -> list[Suite]:
        names = [s.name for s in suites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"suite names must be unique; repeated: {', '.join(dupes)}")
        return suites

    @model_validator(mode="after")
    def _service_for_suites(self) -> Policy:
        needing = [s.name for s in self.suites if s.needs_service]
        if (needing or self.load) and self.environment is None:
            what = f"suites {needing}" if needing else "load"
            raise ValueError(f"{what} need the running service: add an 'environment' section (start, health)")
        return self

    @property
    def path(self) -> Path:
        assert self._path is not None, "policy was not loaded from a file"
        return self._path

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def digest(self) -> str:
        return self._digest

    def resolve(self, relative: str) -> Path:
        """A path from the policy, relative to the policy file."""
        return (self.base_dir / relative).resolve()

    def source_dir(self, version: str) -> Path:
        return self.resolve(self.source.path.replace("{version}", version))


def json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "releasegate policy (gate.yaml)"
    return schema


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; every problem becomes one PolicyError that says how to fix it.

    Hostile files are refused with a message, never a traceback: more than MAX_POLICY_BYTES, not UTF-8,
    anchors and aliases, duplicate keys, nesting deeper than MAX_NESTING, tags beyond JSON's types,
    control characters, a bool where a number belongs, infinite or unbounded durations, and templates
    (report_url, commands) that would not render at run time.
    """
    file = Path(path)
    raw = _read_bytes(file)
    text = _decode(file, raw)
    data, lines = _parse_yaml(file, text)
    try:
        # JSON-mode strict validation: no bool for a number, no "8080" for an int; enums by their value
        policy = Policy.model_validate_json(json.dumps(data, allow_nan=True), strict=True)
    except ValidationError as exc:
        raise PolicyError(_explain(file, exc, lines)) from None
    _check_placeholders(file, data, known=PLACEHOLDERS + dependency_placeholders(policy))
    _check_templates(file, policy, lines)
    policy._path = file.resolve()
    policy._digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    policy._lines = lines
    return policy


def line_of(policy: Policy, loc: tuple) -> int | None:
    """The line in the policy file of a field (or of its nearest written parent)."""
    return _line_for(loc, policy._lines)


def dotted(loc: tuple) -> str:
    """`suites[0].paths[1]` for ("suites", 0, "paths", 1)."""
    return _dotted(loc)


def _read_bytes(file: Path) -> bytes:
    if not file.is_file():
        raise PolicyError(f"{file}: policy file not found — pass the path of the service's gate.yaml")
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"{file}: cannot read the policy ({exc.strerror or exc}) — check its permissions") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{file}: the policy is larger than {MAX_POLICY_BYTES // 1024} KiB — a gate.yaml is a few "
                          "KiB; check that this is the right file")
    return raw


def _decode(file: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise PolicyError(f"{file}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}) — save the "
                          "policy as UTF-8") from None


class _Refused(Exception):
    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else None


_JSON_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map"))
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


class PolicyLoader(yaml.SafeLoader):
    """A SafeLoader for policies: JSON's types only, no anchors or aliases, no duplicate keys, bounded nesting.

    Aliases are what make a 1 KiB file expand to gigabytes (and anchors their only use), so both are
    refused where they appear. Dates stay text (``version: 2026-01-01``).
    """

    yaml_implicit_resolvers = {first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(event.start_mark, f"alias *{event.anchor}: anchors and aliases are not allowed in a "
                                             "policy — write the value out where it is used")
        if getattr(event, "anchor", None):
            raise _Refused(event.start_mark, f"anchor &{event.anchor}: anchors and aliases are not allowed in a "
                                             "policy — remove it and write values out where they are used")
        self._depth += 1
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(event.start_mark, f"more than {MAX_NODES} values — a policy needs a few hundred; check "
                                             "that this is the right file")
        if self._depth > MAX_NESTING:
            raise _Refused(event.start_mark, f"nested more than {MAX_NESTING} levels deep — a policy needs a "
                                             "handful; check the indentation and brackets")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:  # PyYAML returns a node or raises; its type hints allow None
            raise _Refused(event.start_mark, "no value where one was expected — check the indentation")
        if node.tag not in _JSON_TAGS:
            raise _Refused(node.start_mark, f"tag {node.tag} is not allowed in a policy (text, numbers, true/false, "
                                            "null, lists and mappings only) — remove the tag")
        if isinstance(node, yaml.ScalarNode) and _CONTROL.search(node.value):
            raise _Refused(node.start_mark, "control character in a value — remove it (tabs and line breaks are "
                                            "the only ones allowed)")
        return node

    def construct_yaml_int(self, node: Any) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise _Refused(node.start_mark, f"the number {node.value[:20]}... is too long — write a number of "
                                            "a few digits") from None

    def construct_yaml_float(self, node: Any) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _Refused(node.start_mark, f"{node.value} is not a finite number — write a number (durations "
                                            f"have a maximum, e.g. {MAX_TIMEOUT_S:g} s for a timeout)")
        return value

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[str, int] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Refused(key_node.start_mark, f"a {type(key).__name__} as a key is not allowed — keys "
                                                        "are text")
                raise _Refused(key_node.start_mark, f"key {_clip_repr(key_node.value)} is read as "
                                                    f"{type(key).__name__}, not text — quote it")
            if key in seen:
                raise _Refused(key_node.start_mark, f"duplicate key {key!r} (first on line {seen[key]}) — keep one; "
                                                    "YAML would silently use the last")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


PolicyLoader.add_constructor("tag:yaml.org,2002:int", PolicyLoader.construct_yaml_int)
PolicyLoader.add_constructor("tag:yaml.org,2002:float", PolicyLoader.construct_yaml_float)


def _parse_yaml(file: Path, text: str) -> tuple[Any, dict[tuple, int]]:
    loader = None
    try:
        loader = PolicyLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        where = f":{exc.line}" if exc.line else ""
        raise PolicyError(f"{file}{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else _reader_line(text, exc)
        where = f":{line}" if line else ""
        raise PolicyError(f"{file}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc}) — "
                          "check indentation and quoting near that line") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise PolicyError(f"{file}: expected a mapping at the top (service:, suites:, ...), "
                          f"got {type(data).__name__} — see docs/policy.md for an example")
    lines: dict[tuple, int] = {}
    _index_lines(node, (), lines)
    return data, lines


def _reader_line(text: str, exc: yaml.YAMLError) -> int | None:
    position = getattr(exc, "position", None)
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else None


def _index_lines(node: Any, path: tuple, out: dict[tuple, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[path + (key.value,)] = key.start_mark.line + 1
            _index_lines(value, path + (key.value,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _index_lines(item, path + (i,), out)


_HINTS = {
    "int_parsing": "write a whole number, e.g. 2",
    "int_type": "write a whole number, e.g. 2",
    "float_parsing": "write a number, e.g. 300",
    "float_type": "write a number, e.g. 300",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write text (quote it if YAML reads it as something else)",
    "list_type": "write a list, e.g. [a, b] or one '- item' per line",
    "dict_type": "write a mapping of key: value lines",
    "missing": "add it; see docs/policy.md for what it means",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
    "string_pattern_mismatch": "use lowercase letters, digits, - and _ only",
    "too_short": "give at least one entry",
    "finite_number": "write a finite number",
}


def _explain(file: Path, exc: ValidationError, lines: dict[tuple, int]) -> str:
    errors = exc.errors()
    messages = [_explain_one(file, err, lines) for err in errors[:MAX_PROBLEMS_SHOWN]]
    if len(errors) > MAX_PROBLEMS_SHOWN:
        messages.append(f"{file}: ... and {len(errors) - MAX_PROBLEMS_SHOWN} more — fix these first")
    head = f"{file}: {len(errors)} problem(s) in the policy" if len(errors) > 1 else ""
    return "\n".join(([head] if head else []) + messages)


_UNION_TAGS = ("str", "int", "float", "bool", "list[str]", "[key]")


def _explain_one(file: Path, err: ErrorDetails, lines: dict[tuple, int]) -> str:
    is_key = "[key]" in err["loc"]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (
        p in _UNION_TAGS or p.startswith(("function-", "literal[")))))
    field = _dotted(loc) or "(top level)"
    line = _line_for(loc, lines)
    where = f"{file}:{line}" if line else str(file)
    shown = _clip_repr(err.get("input"))
    if err["type"] == "extra_forbidden":
        return f"{where}: {field}: unknown key — {_suggest(loc)}"
    if err["type"] == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        return f"{where}: {field}: {shown} is not allowed — use one of {allowed}"
    if err["type"] == "enum":
        return f"{where}: {field}: {shown} is not allowed — use one of {err['ctx']['expected']}"
    if is_key:
        return (f"{where}: {field}: {shown} is not an environment variable name — use letters, digits and _, "
                "not starting with a digit")
    got = "" if err["type"] == "missing" else f", got {shown}"
    hint = _HINTS.get(err["type"], "see docs/policy.md")
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {field}: {message}{got} — {hint}"


def _clip_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_for(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _suggest(loc: tuple) -> str:
    model: Any = Policy
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _model_of(field.annotation) if field else None
        if inner is None:
            break
        model = inner
    known = sorted(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"known keys here: {', '.join(known)}" if known else "remove it"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found:
            return found
    return None


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def dependency_placeholders(policy: Policy) -> tuple[str, ...]:
    """{dep_NAME_url} {dep_NAME_host} {dep_NAME_port}, only for the dependencies the policy declares."""
    names = [d.name for d in policy.environment.dependencies] if policy.environment else []
    return tuple(f"dep_{n}_{part}" for n in names for part in ("url", "host", "port"))


def _check_placeholders(file: Path, data: Any, loc: tuple = (), known: tuple[str, ...] = PLACEHOLDERS) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            _check_placeholders(file, value, loc + (key,), known)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _check_placeholders(file, value, loc + (i,), known)
    elif isinstance(data, str):
        for name in _PLACEHOLDER.findall(data):
            if name not in known:
                raise PolicyError(f"{file}: {_dotted(loc)}: unknown placeholder {{{name}}} — "
                                  f"known: {', '.join('{' + p + '}' for p in known)}")


def _check_templates(file: Path, policy: Policy, lines: dict[tuple, int]) -> None:
    """Render every template with the code the run uses, so what passes `policy check` renders at run time."""
    problems = []
    for loc, command in _commands(policy):
        try:
            if not fill_command(command, _SAMPLE_VALUES):
                problems.append((loc, "the command is empty — write the program and its arguments"))
        except ValueError as exc:
            problems.append((loc, f"cannot split the command into arguments ({exc}) — balance its quotes, or "
                                  "write it as a list of arguments"))
    slack = policy.notify.slack
    if slack and slack.report_url is not None:
        try:
            render_report_url(slack.report_url, service=policy.service, version="1.0.0-rc.1+b7", run_id="rg-x_1")
        except ValueError as exc:
            problems.append((("notify", "slack", "report_url"), str(exc)))
    if problems:
        loc, message = problems[0]
        line = _line_for(loc, lines)
        raise PolicyError(f"{file}{f':{line}' if line else ''}: {_dotted(loc)}: {message}")


_SAMPLE_VALUES = {name: f"sample-{name}" for name in PLACEHOLDERS}


def _commands(policy: Policy) -> list[tuple[tuple, Command]]:
    found: list[tuple[tuple, Command]] = []
    env = policy.environment
    if env is not None:
        found += [(("environment", "setup", i), c) for i, c in enumerate(env.setup)]
        found.append((("environment", "start"), env.start))
        found += [(("environment", "dependencies", i, "start"), d.start) for i, d in enumerate(env.dependencies)]
    found += [(("suites", i, "command"), s.command) for i, s in enumerate(policy.suites)]
    if policy.scans.pip_audit:
        found += [(("scans", "pip_audit", "export", i), c) for i, c in enumerate(policy.scans.pip_audit.export)]
    return found


_URL_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")


def render_report_url(template: str, *, service: str, version: str, run_id: str) -> str:
    """The report link for a run: ``notify.slack.report_url`` with {service} {version} {run_id} filled in.

    Values are percent-encoded, so a version such as ``1.0/<!channel>`` stays inside its path segment.
    `policy check` renders every report_url with this function; ValueError says what to fix.
    """
    names = _PLACEHOLDER.findall(template)
    unknown = sorted({n for n in names if n not in REPORT_URL_PLACEHOLDERS})
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}} in report_url — it may use "
                         f"{' '.join('{' + p + '}' for p in REPORT_URL_PLACEHOLDERS)} only")
    values = {"service": service, "version": version, "run_id": run_id}
    url = fill(template, {k: quote(v, safe="") for k, v in values.items()})
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"report_url {template!r} is not an http(s) URL — write e.g. "
                         "https://gate.example.com/{service}/{version}/{run_id}/report.html")
    bad = _URL_UNSAFE.search(url)
    if bad:
        raise ValueError(f"report_url {template!r} has {bad.group()!r}, which a URL cannot hold as is — "
                         "percent-encode it (e.g. %20 for a space)")
    return url


def fill(template: str, values: dict[str, str]) -> str:
    """Fill the known placeholders of a policy string; other braces are left as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def fill_command(command: Command, values: dict[str, str]) -> list[str]:
    parts = shlex.split(command) if isinstance(command, str) else list(command)
    return [fill(p, values) for p in parts]


def schema_json() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


