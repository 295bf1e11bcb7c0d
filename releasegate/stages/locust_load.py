"""Load test with Locust, headless: percentiles, error rate and throughput from its CSV, against the budgets.

A breached budget is measured once more after a cool-down before it blocks (one slow moment is not a verdict).
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from releasegate.context import RunContext
from releasegate.environment import Environment
from releasegate.errors import StageError
from releasegate.fingerprint import fingerprint
from releasegate.models import Artifact, Finding, Metric, StageResult, Status
from releasegate.policy import Budgets, Load, Policy
from releasegate.stages.base import find_tool, guarded, now, run_tool

log = logging.getLogger("releasegate")
STAGE = "locust"
AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class EndpointStats:
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def run(policy: Policy, ctx: RunContext, env: Environment | None) -> StageResult:
    load = policy.load
    assert load is not None
    return guarded(STAGE, "load", load.required, lambda started: _run(load, ctx, env, started))


def _run(load: Load, ctx: RunContext, env: Environment | None, started: datetime) -> StageResult:
    if env is None:
        raise StageError("the load test needs the running service, but provisioning did not give one — "
                         "see the provision stage")
    folder = ctx.evidence / "locust"
    stats = _measure(load, ctx, env, folder, attempt=1)
    attempts = 1
    if _breaches(load, stats) and load.remeasure_cooldown_s >= 0:
        log.info("locust: budget breached; measuring once more after a %.0f s cool-down", load.remeasure_cooldown_s)
        time.sleep(load.remeasure_cooldown_s)
        stats = _measure(load, ctx, env, folder, attempt=2)
        attempts = 2
    return _result(load, stats, started, attempts, folder)


def _measure(load: Load, ctx: RunContext, env: Environment, folder: Path, attempt: int) -> dict[str, EndpointStats]:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / f"run{attempt}"
    locustfile = ctx.source / load.locustfile
    if not locustfile.is_file():
        raise StageError(f"load.locustfile: {locustfile} not found in the service source — check the path")
    argv = [find_tool("locust"), "-f", str(locustfile), "--headless", "-u", str(load.users), "-r", f"{load.spawn_rate:g}",
            "-t", f"{round(load.duration_s)}s", "--host", env.base_url, "--csv", str(prefix),
            "--csv-full-history", "--html", f"{prefix}-report.html", "--only-summary", "--stop-timeout", "5",
            "--exit-code-on-error", "0", "--loglevel", "WARNING"]
    run = run_tool(argv, cwd=ctx.source, timeout_s=load.timeout_s + load.duration_s, log_to=folder / f"run{attempt}.log")
    stats_csv = Path(f"{prefix}_stats.csv")
    if run.returncode != 0 or not stats_csv.is_file():
        raise StageError(f"locust exited {run.returncode} without its stats CSV: "
                         f"{' | '.join((run.stderr or run.stdout).strip().splitlines()[-5:])[-600:]} — "
                         f"see {folder / f'run{attempt}.log'}")
    return parse_stats_csv(stats_csv.read_text(encoding="utf-8"), str(stats_csv))


def parse_stats_csv(text: str, source: str = "stats.csv") -> dict[str, EndpointStats]:
    """Locust's <prefix>_stats.csv into stats per request name; the row 'Aggregated' is the whole run."""
    try:
        rows = list(csv.DictReader(text.splitlines()))
        stats = {row["Name"]: _row(row) for row in rows}
    except (KeyError, ValueError, csv.Error) as exc:
        raise StageError(f"{source}: Locust stats cannot be read ({type(exc).__name__}: {exc})") from None
    if AGGREGATED not in stats:
        raise StageError(f"{source}: no 'Aggregated' row — Locust did not finish writing its stats")
    return stats


def _row(row: dict[str, str]) -> EndpointStats:
    def ms(key: str) -> float:
        value = row.get(key, "N/A")
        return 0.0 if value in ("N/A", "") else float(value)

    return EndpointStats(name=row["Name"], requests=int(row["Request Count"]), failures=int(row["Failure Count"]),
                         rps=float(row["Requests/s"]), p50_ms=ms("50%"), p95_ms=ms("95%"), p99_ms=ms("99%"))


def _checks(load: Load, stats: dict[str, EndpointStats]) -> list[tuple[str, str, float, float, str]]:
    """(scope, budget, value, threshold, operator) for every budget set in the policy."""
    checks = _budget_checks("overall", load.budgets, stats[AGGREGATED])
    for name, budgets in load.endpoints.items():
        if name in stats:
            checks += _budget_checks(name, budgets, stats[name])
    return checks


def _budget_checks(scope: str, budgets: Budgets, s: EndpointStats) -> list[tuple[str, str, float, float, str]]:
    measured = {"p50_ms": s.p50_ms, "p95_ms": s.p95_ms, "p99_ms": s.p99_ms, "error_rate": s.error_rate,
                "min_rps": s.rps}
    return [(scope, name, measured[name], limit, ">=" if name == "min_rps" else "<=")
            for name, limit in budgets.model_dump().items() if limit is not None]


def _holds(value: float, threshold: float, operator: str) -> bool:
    return value >= threshold if operator == ">=" else value <= threshold


def _breaches(load: Load, stats: dict[str, EndpointStats]) -> list[tuple[str, str, float, float, str]]:
    return [c for c in _checks(load, stats) if not _holds(c[2], c[3], c[4])]


def _result(load: Load, stats: dict[str, EndpointStats], started: datetime, attempts: int,
            folder: Path) -> StageResult:
    total = stats[AGGREGATED]
    metrics = [Metric(name="requests", value=total.requests), Metric(name="failures", value=total.failures)]
    metrics += [Metric(name=f"{scope}.{name}" if scope != "overall" else name, value=round(value, 4),
                       unit=_unit(name), threshold=limit, operator=op, passed=_holds(value, limit, op))
                for scope, name, value, limit, op in _checks(load, stats)]
    findings = [_finding(load, *check) for check in _breaches(load, stats)]
    missing = [n for n in load.endpoints if n not in stats]
    findings += [_missing_endpoint(load, n) for n in missing]
    empty = total.requests < load.min_requests
    finished = now()
    summary = (f"locust: {total.requests} requests, {total.error_rate:.2%} errors, {total.rps:.1f} req/s, "
               f"p95 {total.p95_ms:.0f} ms, p99 {total.p99_ms:.0f} ms; {len(findings)} budget(s) breached"
               f" (attempt {attempts}); csv: {folder}")
    if empty:
        summary += f" — fewer than the {load.min_requests} requests the policy requires"
    log.info("%s", summary)
    return StageResult(stage=STAGE, kind="load", status=Status.failed if findings else Status.passed,
                       required=load.required, started=started, finished=finished, attempts=attempts,
                       summary=summary, metrics=metrics, findings=findings, evidence_empty=empty,
                       artifacts=[Artifact.of(p) for p in sorted(folder.glob("*")) if p.is_file()])


def _unit(budget: str) -> str:
    return {"error_rate": "ratio", "min_rps": "req/s"}.get(budget, "ms")


def _finding(load: Load, scope: str, budget: str, value: float, threshold: float, operator: str) -> Finding:
    where = "overall" if scope == "overall" else f"endpoint {scope}"
    label = budget.removesuffix("_ms").replace("min_rps", "throughput").replace("error_rate", "error rate")
    return Finding(kind="budget", rule=budget, severity=load.severity, location=scope,
                   title=f"{label} {_fmt(budget, value)} breaks the budget {operator} {_fmt(budget, threshold)} ({where})",
                   fingerprint=fingerprint("budget", scope, budget),
                   data={"value": round(value, 4), "threshold": threshold, "operator": operator, "scope": scope})


def _missing_endpoint(load: Load, name: str) -> Finding:
    return Finding(kind="budget", rule="endpoint-missing", severity=load.severity, location=name,
                   title=f"endpoint {name} has a budget but Locust sent it no request — check the locustfile's names",
                   fingerprint=fingerprint("budget", name, "endpoint-missing"))


def _fmt(budget: str, value: float) -> str:
    if budget == "error_rate":
        return f"{value:.2%}"
    if budget == "min_rps":
        return f"{value:.1f} req/s"
    return f"{value:.0f} ms"
