"""Judging what Locust measured: the policy's overall and endpoint budgets (latency percentiles, error rate,
throughput) against the final stats, and the service's own telemetry against Locust's counts; each breach a
finding. `Outcome` is what a profile (stress, soak) adds to the stage's result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Attempt, Finding, Metric
from releasegate.policy import Budgets, Load
from releasegate.stages.locust_output import AGGREGATED, EndpointStats, Measurement
from releasegate.stages.telemetry import cross_check


@dataclass(frozen=True)
class Outcome:
    """What a profile adds to the common result: metrics, findings and the words for the summary line."""

    metrics: list[Metric] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    summary: str = ""
    budgets_apply: bool = True
    attempt_log: list[Attempt] = field(default_factory=list)


def budget_checks(load: Load, stats: dict[str, EndpointStats]) -> list[tuple[str, str, float, float, str]]:
    """(scope, budget, value, threshold, operator) for every budget set in the policy."""
    checks = _scope_checks("overall", load.budgets, stats[AGGREGATED])
    for name, budgets in load.endpoints.items():
        if name in stats:
            checks += _scope_checks(name, budgets, stats[name])
    return checks


def _scope_checks(scope: str, budgets: Budgets, s: EndpointStats) -> list[tuple[str, str, float, float, str]]:
    measured = {"p50_ms": s.p50_ms, "p95_ms": s.p95_ms, "p99_ms": s.p99_ms, "error_rate": s.error_rate,
                "min_rps": s.rps}
    return [(scope, name, measured[name], limit, ">=" if name == "min_rps" else "<=")
            for name, limit in budgets.model_dump().items() if limit is not None]


def holds(value: float, threshold: float, operator: str) -> bool:
    return value >= threshold if operator == ">=" else value <= threshold


def budget_breaches(load: Load, stats: dict[str, EndpointStats]) -> list[tuple[str, str, float, float, str]]:
    return [c for c in budget_checks(load, stats) if not holds(c[2], c[3], c[4])]


def budget_unit(budget: str) -> str:
    return {"error_rate": "ratio", "min_rps": "req/s"}.get(budget, "ms")


def budget_finding(load: Load, scope: str, budget: str, value: float, threshold: float,
                   operator: str) -> Finding:
    where = "overall" if scope == "overall" else f"endpoint {scope}"
    label = budget.removesuffix("_ms").replace("min_rps", "throughput").replace("error_rate", "error rate")
    return Finding(kind="budget", rule=budget, severity=load.severity, location=scope,
                   title=f"{label} {fmt_value(budget, value)} breaks the budget {operator} "
                         f"{fmt_value(budget, threshold)} ({where})",
                   fingerprint=fingerprint("budget", scope, budget),
                   data={"value": round(value, 4), "threshold": threshold, "operator": operator, "scope": scope})


def missing_endpoint(load: Load, name: str) -> Finding:
    return Finding(kind="budget", rule="endpoint-missing", severity=load.severity, location=name,
                   title=f"endpoint {name} has a budget but Locust sent it no request — check the locustfile's names",
                   fingerprint=fingerprint("budget", name, "endpoint-missing"))


def fmt_value(budget: str, value: float) -> str:
    if budget == "error_rate":
        return f"{value:.2%}"
    if budget == "min_rps":
        return f"{value:.1f} req/s"
    return f"{value:.0f} ms"


def check_telemetry(load: Load, measured: Measurement) -> tuple[list[Metric], list[Finding]]:
    """The service's own counters against what Locust saw; missing telemetry is a finding, not an error."""
    if load.telemetry is None:
        return [], []
    before, after, why = measured.scrapes
    if before is None or after is None:
        return [], [Finding(kind="telemetry", rule="metrics-endpoint", severity=load.severity, location=load.telemetry.url,
                            title=f"telemetry: the service's metrics could not be read: {why}",
                            fingerprint=fingerprint("telemetry", "metrics-endpoint"))]
    total = measured.stats[AGGREGATED]
    requests, failures = measured.completed or (total.requests, total.failures)
    return cross_check(load.telemetry, before, after, requests, failures)
