"""The `load` section: the Locust run, its profile (load, stress, soak), budgets, the /metrics cross-check."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from releasegate.domain.models import Severity
from releasegate.policy.spec import MAX_COOLDOWN_S, MAX_TIMEOUT_S, _Spec


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


class Baseline(_Spec):
    """Compare the run's latency with an earlier GO of the same service (the last one, or the last GO of a pinned
    version): a percentile that rose by more than `max_change` blocks, though it may be under its budget.

    The rise must also be significant: the Mann-Whitney U test (one-sided, on the per-interval percentiles Locust
    records) must reject "no rise" at `alpha`. With fewer than `min_samples` intervals on either side the rise
    alone decides. Without an earlier GO (a service's first run) there is nothing to compare and the summary says so.
    """

    version: str | None = Field(None, min_length=1, description="Compare with this version's last GO; default: the "
                                                                "service's last GO before this run.")
    max_change: dict[Literal["p50_ms", "p95_ms", "p99_ms"], float] = Field(
        description="Allowed relative rise per percentile over the baseline, e.g. {p95_ms: 0.2} for 20 %.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the Mann-Whitney U test.")
    min_samples: int = Field(5, ge=2, le=100000, description="Intervals each side needs for the U test to count.")

    @field_validator("max_change")
    @classmethod
    def _changes(cls, changes: dict[str, float]) -> dict[str, float]:
        if not changes:
            raise ValueError("name at least one percentile, e.g. {p95_ms: 0.2}")
        if any(not 0 <= change <= 100 for change in changes.values()):
            raise ValueError("a change is a ratio between 0 and 100, e.g. 0.2 for 20 %")
        return changes


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
    baseline: Baseline | None = Field(None, description="Compare latency with the service's last GO (or a pinned "
                                                        "version's): a rise beyond max_change blocks.")

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
