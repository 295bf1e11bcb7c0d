"""Load test with Locust, headless: percentiles, error rate and throughput from its CSV, against the budgets.

Three profiles (`load.profile`), all bounded in time and sent only to the service on 127.0.0.1:
- `load`: steady users for duration_s. A breached budget is measured once more after a cool-down
  before it blocks (one slow moment is not a verdict).
- `stress`: users step up (a load shape passed beside the locustfile); the breaking point is the first
  step where an overall or endpoint budget breaks, and the capacity is the step before it. Breaking is
  what a stress test is for, so it is a non-blocking finding unless it happens below
  `stress.min_users_before_break`. Whole-run budgets are not checked (the last steps break them by design).
- `soak`: a long steady run cut into windows: p95 drift (last window over first) and the growth of the
  service's memory (RSS of its process and children, sampled every second). Breaches block; the overall
  and endpoint budgets apply to the whole run as in `load`. Neither stress nor soak re-measures.
`load.distributed` runs Locust as a master with worker processes (--processes) for any profile.
Evidence: Locust's CSVs, HTML and JSON, plus series.json (the time series), stress-steps.json, soak.json.

Running Locust: releasegate.stages.locust_run; reading its output: locust_output; the budgets and telemetry
judged: locust_budgets; the stress and soak results: locust_stress, locust_soak (over load_profiles).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Artifact, Attempt, Finding, Metric, Severity, StageResult, Status
from releasegate.environment import Environment
from releasegate.policy import Load, Policy
from releasegate.stages.base import fresh_folder, guarded, now
from releasegate.stages.locust_baseline import (
    BaselineRun,
    Judged,
    find_baseline,
    judge,
    keep_samples,
    samples_of,
)
from releasegate.stages.locust_budgets import (
    Outcome,
    budget_breaches,
    budget_checks,
    budget_finding,
    budget_unit,
    check_telemetry,
    holds,
    missing_endpoint,
)
from releasegate.stages.locust_output import AGGREGATED, Measurement, locust_json_totals, parse_stats_csv
from releasegate.stages.locust_run import locust_argv, locust_env, measure, planned_seconds
from releasegate.stages.locust_soak import RssSampler, soak, soak_checks, soak_finding
from releasegate.stages.locust_stress import capacity_finding, stress, stress_metrics
from releasegate.stages.registry import Planned
from releasegate.stages.service_state import service_gone

log = logging.getLogger("releasegate")
STAGE = "locust"

# what the tests read from the load stage, wherever it lives
__all__ = ["AGGREGATED", "capacity_finding", "locust_argv", "locust_env", "locust_json_totals", "parse_stats_csv",
           "planned_seconds", "run", "run_planned", "soak_checks", "soak_finding", "stress_metrics",
           "with_stopped_service"]


def run(policy: Policy, ctx: RunContext, env: Environment | None) -> StageResult:
    load = policy.load
    assert load is not None
    result = guarded(STAGE, "load", load.required, lambda started: _run(load, ctx, env, started))
    gone = service_gone(env) if env is not None else None
    return with_stopped_service(result, gone, load.severity, env.log_path if env else "") if gone else result


def with_stopped_service(result: StageResult, gone: str, severity: Severity, log_path: str) -> StageResult:
    """The result with its cause named: the service stopped while Locust loaded it (its last log lines)."""
    if result.status is Status.error:
        return result.model_copy(update={"error": f"{result.error}; {gone}"})
    finding = Finding(kind="service", rule="service-stopped", severity=severity, blocking=True, location=log_path,
                      title=f"the service stopped during the load test: {gone}", evidence=gone,
                      fingerprint=fingerprint("service-stopped", STAGE))
    return result.model_copy(update={"status": Status.failed, "findings": [finding, *result.findings],
                                     "summary": f"{result.summary}; {finding.title}"})


def _run(load: Load, ctx: RunContext, env: Environment | None, started: datetime) -> StageResult:
    if env is None:
        raise StageError("the load test needs the running service, but provisioning did not give one — "
                         "see the provision stage")
    # the baseline first: a pinned version the gate has no GO of fails before the load is spent
    versus = Versus(ctx.run_id, find_baseline(ctx.service, ctx.run_id, load.baseline)) if load.baseline else None
    folder = fresh_folder(ctx.evidence / "locust")
    if load.profile == "stress":
        measured = measure(load, ctx, env, folder, attempt=1)
        return _result(load, measured, started, 1, folder, stress(load, measured, folder))
    if load.profile == "soak":
        with RssSampler(env.pid, env.pid_created) as rss:
            measured = measure(load, ctx, env, folder, attempt=1)
        return _result(load, measured, started, 1, folder, soak(load, measured, rss.samples, folder), versus)
    return _steady(load, ctx, env, folder, started, versus)


@dataclass(frozen=True)
class Versus:
    """What this run is compared with (load.baseline), and the run that keeps its samples for later ones."""

    run_id: str
    baseline: BaselineRun | None


def _steady(load: Load, ctx: RunContext, env: Environment, folder: Path, started: datetime,
            versus: Versus | None = None) -> StageResult:
    measured = measure(load, ctx, env, folder, attempt=1)
    breaches = budget_breaches(load, measured.stats)
    attempts = [_attempt_row(load, 1, started, measured, breaches, "")]
    if breaches and load.remeasure_cooldown_s >= 0:
        log.info("locust: budget breached; measuring once more after a %.0f s cool-down", load.remeasure_cooldown_s)
        time.sleep(load.remeasure_cooldown_s)
        began = now()
        measured = measure(load, ctx, env, folder, attempt=2)
        attempts.append(_attempt_row(load, 2, began, measured, budget_breaches(load, measured.stats),
                                     f"re-measured after a {load.remeasure_cooldown_s:g} s cool-down: "
                                     "a breach blocks only if it holds twice"))
    return _result(load, measured, started, len(attempts), folder, Outcome(attempt_log=attempts), versus)


def _attempt_row(load: Load, number: int, started: datetime, measured: Measurement, breaches: list,
                 remediation: str) -> Attempt:
    total = measured.stats[AGGREGATED]
    return Attempt(attempt=number, started=started, finished=now(), scope=f"{load.users} users, {load.duration_s:g} s",
                   status=Status.failed if breaches else Status.passed, remediation=remediation,
                   summary=f"{total.requests} requests, p95 {total.p95_ms:.0f} ms, {total.error_rate:.2%} errors, "
                           f"{total.rps:.1f} req/s; {len(breaches)} budget(s) breached")


def _result(load: Load, measured: Measurement, started: datetime, attempts: int, folder: Path,
            outcome: Outcome, versus: Versus | None = None) -> StageResult:
    stats = measured.stats
    total = stats[AGGREGATED]
    metrics = [Metric(name="requests", value=total.requests), Metric(name="failures", value=total.failures)]
    checks = budget_checks(load, stats) if outcome.budgets_apply else []
    metrics += [Metric(name=f"{scope}.{name}" if scope != "overall" else name, value=round(value, 4),
                       unit=budget_unit(name), threshold=limit, operator=op, passed=holds(value, limit, op))
                for scope, name, value, limit, op in checks] + outcome.metrics
    findings = [budget_finding(load, *c) for c in checks if not holds(c[2], c[3], c[4])] + outcome.findings
    findings += [missing_endpoint(load, n) for n in load.endpoints if n not in stats]
    telemetry_metrics, telemetry_findings = check_telemetry(load, measured)
    metrics += telemetry_metrics
    findings += telemetry_findings
    compared = _against_baseline(load, measured, versus)
    metrics += compared.metrics
    findings += compared.findings
    empty = total.requests < load.min_requests
    blocking = [f for f in findings if f.blocking]
    summary = (f"locust: {total.requests} requests, {total.error_rate:.2%} errors, {total.rps:.1f} req/s, "
               f"p95 {total.p95_ms:.0f} ms, p99 {total.p99_ms:.0f} ms; {len(blocking)} budget(s) breached"
               f" (attempt {attempts})" + (f"; {outcome.summary}" if outcome.summary else "")
               + (f"; baseline {compared.summary}" if compared.summary else "") + f"; csv: {folder}")
    if empty:
        summary += f" — fewer than the {load.min_requests} requests the policy requires"
    log.info("%s", summary)
    return StageResult(stage=STAGE, kind="load", status=Status.failed if blocking else Status.passed,
                       required=load.required, started=started, finished=now(), attempts=attempts,
                       summary=summary, metrics=metrics, findings=findings, evidence_empty=empty,
                       artifacts=[Artifact.of(p) for p in sorted(folder.glob("*")) if p.is_file()],
                       attempt_log=outcome.attempt_log)


def _against_baseline(load: Load, measured: Measurement, versus: Versus | None) -> Judged:
    """The comparison with the baseline (load and soak profiles), after this run's samples are kept."""
    if versus is None or load.baseline is None:
        return Judged([], [], "")
    current = samples_of(measured)
    keep_samples(versus.run_id, current)
    return judge(load, load.baseline, current, versus.baseline)


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    """The stage as the registry runs it (releasegate/stages/registry.py)."""
    return run(policy, ctx, env)
