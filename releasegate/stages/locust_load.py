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
"""

from __future__ import annotations

import csv
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

from releasegate.context import RunContext
from releasegate.environment import Environment
from releasegate.errors import StageError
from releasegate.fingerprint import fingerprint
from releasegate.models import Artifact, Attempt, Finding, Metric, Severity, StageResult, Status
from releasegate.policy import Budgets, Load, Policy, fill
from releasegate.stages import load_profiles as lp
from releasegate.stages.base import ToolRun, find_tool, fresh_folder, guarded, last_error_line, now, run_tool
from releasegate.stages.registry import Planned
from releasegate.stages.service_state import service_gone
from releasegate.telemetry import cross_check, scrape

log = logging.getLogger("releasegate")
STAGE = "locust"
AGGREGATED = "Aggregated"
SHAPES = Path(__file__).resolve().parent / "locust_shapes"
STRESS_SHAPE = SHAPES / "releasegate_stress_shape.py"
PERCENTILE_WINDOW = SHAPES / "releasegate_percentile_window.py"
# Locust runs with --exit-code-on-error 0 (failed requests are measured, not a crash), so 0 is its only status
# for "it ran"; 2 (an unhandled exception in a greenlet), any other status, a signal or a timeout is an error.
LOCUST_OK = (0,)


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


@dataclass(frozen=True)
class Measurement:
    """One Locust run: final stats per request name and the per-second history."""

    stats: dict[str, EndpointStats]
    history: list[lp.HistoryRow]
    scrapes: tuple[str | None, str | None, str] = (None, None, "")  # /metrics before, after, or why not
    completed: tuple[int, int] | None = None  # (requests, failures) from Locust's JSON, stop timeout included


@dataclass(frozen=True)
class Outcome:
    """What a profile adds to the common result: metrics, findings and the words for the summary line."""

    metrics: list[Metric] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    summary: str = ""
    budgets_apply: bool = True
    attempt_log: list[Attempt] = field(default_factory=list)


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
    folder = fresh_folder(ctx.evidence / "locust")
    if load.profile == "stress":
        measured = _measure(load, ctx, env, folder, attempt=1)
        return _result(load, measured, started, 1, folder, _stress(load, measured, folder))
    if load.profile == "soak":
        with RssSampler(env.pid, env.pid_created) as rss:
            measured = _measure(load, ctx, env, folder, attempt=1)
        return _result(load, measured, started, 1, folder, _soak(load, measured, rss.samples, folder))
    return _steady(load, ctx, env, folder, started)


def _steady(load: Load, ctx: RunContext, env: Environment, folder: Path, started: datetime) -> StageResult:
    measured = _measure(load, ctx, env, folder, attempt=1)
    breaches = _breaches(load, measured.stats)
    attempts = [_attempt_row(load, 1, started, measured, breaches, "")]
    if breaches and load.remeasure_cooldown_s >= 0:
        log.info("locust: budget breached; measuring once more after a %.0f s cool-down", load.remeasure_cooldown_s)
        time.sleep(load.remeasure_cooldown_s)
        began = now()
        measured = _measure(load, ctx, env, folder, attempt=2)
        attempts.append(_attempt_row(load, 2, began, measured, _breaches(load, measured.stats),
                                     f"re-measured after a {load.remeasure_cooldown_s:g} s cool-down: "
                                     "a breach blocks only if it holds twice"))
    return _result(load, measured, started, len(attempts), folder, Outcome(attempt_log=attempts))


def _attempt_row(load: Load, number: int, started: datetime, measured: Measurement, breaches: list,
                 remediation: str) -> Attempt:
    total = measured.stats[AGGREGATED]
    return Attempt(attempt=number, started=started, finished=now(), scope=f"{load.users} users, {load.duration_s:g} s",
                   status=Status.failed if breaches else Status.passed, remediation=remediation,
                   summary=f"{total.requests} requests, p95 {total.p95_ms:.0f} ms, {total.error_rate:.2%} errors, "
                           f"{total.rps:.1f} req/s; {len(breaches)} budget(s) breached")


# --- running Locust ----------------------------------------------------------------------------------

def _measure(load: Load, ctx: RunContext, env: Environment, folder: Path, attempt: int) -> Measurement:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / f"run{attempt}"
    locustfile = ctx.source / load.locustfile
    if not locustfile.is_file():
        raise StageError(f"load.locustfile: {locustfile} not found in the service source — check the path")
    for old in folder.glob(f"{prefix.name}[._-]*"):  # this attempt reads only what this attempt's Locust writes
        old.unlink()
    before = _scrape(load, env, folder / f"metrics-before-{attempt}.prom")
    run = run_tool(locust_argv(load, locustfile, env.base_url, prefix), cwd=ctx.source,
                   timeout_s=load.timeout_s + planned_seconds(load), env=locust_env(load),
                   log_to=folder / f"run{attempt}.log", ok=LOCUST_OK)
    after = _scrape(load, env, folder / f"metrics-after-{attempt}.prom")
    stats_csv, history_csv = Path(f"{prefix}_stats.csv"), Path(f"{prefix}_stats_history.csv")
    measured = Measurement(parse_stats_csv(_output(stats_csv, run), str(stats_csv)),
                           lp.parse_stats_history(_output(history_csv, run), str(history_csv)),
                           (before[0], after[0], before[1] or after[1]), locust_json_totals(Path(f"{prefix}.json")))
    _write_json(folder / "series.json", {"profile": load.profile, "attempt": attempt,
                                         **lp.time_series(measured.history)})
    return measured


def _output(path: Path, run: ToolRun) -> str:
    """A file Locust must have written in this attempt, or StageError saying it did not."""
    if not path.is_file():
        raise StageError(_no_output(run, f"wrote no {path.name}"))
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise StageError(_no_output(run, f"{path.name} is empty"))
    return text


def _no_output(run: ToolRun, what: str) -> str:
    return f"{run.ending()} but {what}; last output: {last_error_line(run.stderr, run.stdout)} — see {run.log}"


def _scrape(load: Load, env: Environment, keep: Path) -> tuple[str | None, str]:
    """The service's own metrics, kept as evidence; (None, why) when the endpoint does not answer."""
    if load.telemetry is None:
        return None, ""
    url = fill(load.telemetry.url, {"base_url": env.base_url, "host": env.host, "port": str(env.port)})
    try:
        text = scrape(url, load.telemetry.timeout_s)
    except StageError as exc:
        return None, str(exc)
    keep.write_text(text, encoding="utf-8")
    return text, ""


def _telemetry(load: Load, measured: Measurement) -> tuple[list[Metric], list[Finding]]:
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


def locust_json_totals(path: Path) -> tuple[int, int] | None:
    """Requests and failures from Locust's --json-file: unlike its CSV, it counts the requests that finished
    during the stop timeout, which the service's own counters also saw."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return sum(int(r["num_requests"]) for r in rows), sum(int(r["num_failures"]) for r in rows)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def locust_argv(load: Load, locustfile: Path, base_url: str, prefix: Path) -> list[str]:
    """Locust's command line for the profile: helper files beside the locustfile, workers if distributed."""
    files = [str(locustfile)] + [str(p) for p in helper_files(load)]
    argv = [find_tool("locust"), "-f", ",".join(files), "--headless", "--host", base_url,
            "--csv", str(prefix), "--csv-full-history", "--html", f"{prefix}-report.html", "--json-file", str(prefix),
            "--only-summary", "--stop-timeout", "5", "--exit-code-on-error", "0", "--loglevel", "WARNING"]
    if load.profile != "stress":  # the stress shape sets users and stops the run itself
        argv += ["-u", str(load.users), "-r", f"{load.spawn_rate:g}", "-t", f"{round(load.duration_s)}s"]
    if load.distributed is not None:
        workers = load.distributed.workers
        argv += ["--processes", "-1" if workers == "auto" else str(workers)]
    return argv


def helper_files(load: Load) -> list[Path]:
    return {"stress": [STRESS_SHAPE, PERCENTILE_WINDOW], "soak": [PERCENTILE_WINDOW]}.get(load.profile, [])


def locust_env(load: Load) -> dict[str, str]:
    """Parameters for the helper files (they read the environment, not the gate)."""
    if load.profile == "stress":
        s = load.stress_spec()
        return {"RELEASEGATE_STRESS_START_USERS": str(s.start_users), "RELEASEGATE_STRESS_STEP_USERS": str(s.step_users),
                "RELEASEGATE_STRESS_STEP_DURATION_S": f"{s.step_duration_s:g}",
                "RELEASEGATE_STRESS_MAX_USERS": str(s.max_users), "RELEASEGATE_STRESS_SPAWN_RATE": f"{load.spawn_rate:g}",
                "RELEASEGATE_PERCENTILE_WINDOW_S": f"{s.step_duration_s:g}"}
    if load.profile == "soak":
        return {"RELEASEGATE_PERCENTILE_WINDOW_S": f"{load.soak_spec().window_s:g}"}
    return {}


def planned_seconds(load: Load) -> float:
    if load.profile == "stress":
        s = load.stress_spec()
        return len(s.targets()) * s.step_duration_s
    return load.duration_s


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


# --- the service's memory during a soak --------------------------------------------------------------

class RssSampler:
    """Samples the resident memory (MB) of the service process and its children every second, in a thread.

    The process is checked against its creation time, so a recycled pid is never sampled.
    """

    def __init__(self, pid: int, created: float, interval_s: float = 1.0) -> None:
        self.pid, self.created, self.interval_s = pid, created, interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="releasegate-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            mb = service_rss_mb(self.pid, self.created)
            if mb is not None:
                self.samples.append((round(time.monotonic() - self._started, 2), mb))
            if self._stop.wait(self.interval_s):
                return


def service_rss_mb(pid: int, created: float) -> float | None:
    """RSS of the process and its children in MB; None when it is gone or is not the one the gate started."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) > 1:
            return None
        procs = [proc, *proc.children(recursive=True)]
        return round(sum(p.memory_info().rss for p in procs) / 2**20, 2)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


# --- stress ------------------------------------------------------------------------------------------

def _stress(load: Load, measured: Measurement, folder: Path) -> Outcome:
    spec = load.stress_spec()
    outcome = lp.stress_outcome(measured.history, spec.targets(), load.budgets, load.endpoints)
    if not outcome.steps:
        raise StageError(f"the stress run completed no step (targets {spec.targets()} users) — "
                         f"see {folder / 'run1.log'}")
    _write_json(folder / "stress-steps.json", stress_document(outcome, spec.targets()))
    return Outcome(metrics=stress_metrics(outcome, spec.min_users_before_break),
                   findings=[capacity_finding(load, outcome)], summary=capacity_words(outcome),
                   budgets_apply=False)


def stress_document(outcome: lp.StressOutcome, targets: list[int]) -> dict:
    broke = outcome.steps[outcome.broke_at] if outcome.broke_at is not None else None
    return {"targets": targets, "steps": [s.as_dict() for s in outcome.steps],
            "breaking_users": broke.users if broke else None,
            "capacity": outcome.capacity.as_dict() if outcome.capacity else None,
            "breaches": [vars(b) for b in outcome.breaches]}


def stress_metrics(outcome: lp.StressOutcome, min_users: int | None) -> list[Metric]:
    metrics = [Metric(name="stress.steps", value=len(outcome.steps)),
               Metric(name="stress.max_users_reached", value=outcome.steps[-1].users, unit="users")]
    cap = outcome.capacity
    if cap is not None:
        metrics += [Metric(name="stress.capacity_users", value=cap.users, unit="users"),
                    Metric(name="stress.capacity_rps", value=round(cap.rps, 2), unit="req/s"),
                    Metric(name="stress.capacity_p95_ms", value=cap.p95_ms or 0, unit="ms")]
    if outcome.broke_at is not None:
        users = outcome.steps[outcome.broke_at].users
        metrics.append(Metric(name="stress.breaking_users", value=users, unit="users", threshold=min_users,
                              operator=">=" if min_users else None,
                              passed=(users >= min_users) if min_users else None))
    return metrics


def capacity_finding(load: Load, outcome: lp.StressOutcome) -> Finding:
    """Where the service broke (low, or load.severity and blocking below min_users_before_break), or that it
    held every budget up to max_users (info)."""
    min_users = load.stress_spec().min_users_before_break
    if outcome.broke_at is None:
        return Finding(kind="capacity", rule="stress-held", severity=Severity.info, location="overall",
                       title=capacity_words(outcome), blocking=False,
                       fingerprint=fingerprint("capacity", "overall", "stress-held"),
                       data={"max_users": outcome.steps[-1].users})
    users = outcome.steps[outcome.broke_at].users
    blocking = min_users is not None and users < min_users
    title = capacity_words(outcome) + (f" — below the {min_users} users the policy requires" if blocking else "")
    return Finding(kind="capacity", rule="stress-breaking-point", severity=load.severity if blocking else Severity.low,
                   location="overall", title=title, blocking=blocking,
                   fingerprint=fingerprint("capacity", "overall", "stress-breaking-point"),
                   data={"breaking_users": users, "min_users_before_break": min_users,
                         "breaches": [vars(b) for b in outcome.breaches]})


def capacity_words(outcome: lp.StressOutcome) -> str:
    cap = outcome.capacity
    held = (f"held every budget up to {cap.users} users ({cap.rps:.1f} req/s, p95 {cap.p95_ms or 0:.0f} ms)"
            if cap else "no step held every budget")
    if outcome.broke_at is None:
        return f"stress: {held}; max_users reached without a breach"
    broke = outcome.steps[outcome.broke_at]
    first = outcome.breaches[0]
    return (f"stress: {held}; breaks at {broke.users} users: {first.scope} {first.budget} "
            f"{_fmt(first.budget, first.value)} vs {first.operator} {_fmt(first.budget, first.threshold)}")


# --- soak --------------------------------------------------------------------------------------------

def _soak(load: Load, measured: Measurement, samples: list[tuple[float, float]], folder: Path) -> Outcome:
    spec = load.soak_spec()
    windows = lp.soak_windows(measured.history, spec.window_s)
    drift = lp.drift_ratio(windows)
    if drift is None:
        raise StageError(f"the soak gave fewer than two {spec.window_s:g} s windows with traffic — "
                         f"see {folder / 'run1.log'}")
    memory = lp.memory_summary(samples)
    if spec.max_memory_growth_mb is not None and memory is None:
        raise StageError("the service's memory could not be sampled (pid gone?) — see the provision log")
    _write_json(folder / "soak.json", {"window_s": spec.window_s, "windows": [w.as_dict() for w in windows],
                                       "p95_drift_ratio": round(drift, 4), "memory": memory,
                                       "rss_samples": [list(s) for s in samples]})
    checks = soak_checks(spec, windows, drift, memory)
    metrics = [Metric(name="soak.windows", value=len(windows)),
               Metric(name="soak.p95_first_window_ms", value=windows[0].p95_ms or 0, unit="ms"),
               Metric(name="soak.p95_last_window_ms", value=windows[-1].p95_ms or 0, unit="ms")]
    metrics += [_metric(f"soak.{name}", value, limit, "<=", unit) for name, value, limit, unit in checks]
    metrics += [Metric(name=f"soak.rss_{k}_mb", value=memory[f"{k}_mb"], unit="MB") for k in ("first", "last", "max")
                ] if memory else []
    findings = [soak_finding(load, name, value, limit, unit) for name, value, limit, unit in checks
                if limit is not None and value > limit]
    words = f"soak: p95 drift ×{drift:.2f} over {len(windows)} windows"
    words += f", RSS +{memory['growth_mb']:.1f} MB" if memory else ""
    return Outcome(metrics=metrics, findings=findings, summary=words)


def soak_checks(spec, windows: list[lp.Window], drift: float,
                memory: dict | None) -> list[tuple[str, float, float | None, str]]:
    checks = [("p95_drift_ratio", round(drift, 4), spec.max_p95_drift_ratio, "ratio")]
    if memory is not None:
        checks.append(("rss_growth_mb", memory["growth_mb"], spec.max_memory_growth_mb, "MB"))
    return checks


def soak_finding(load: Load, name: str, value: float, limit: float, unit: str) -> Finding:
    what = {"p95_drift_ratio": f"p95 drifted ×{value:.2f} from the first window to the last",
            "rss_growth_mb": f"the service's memory grew by {value:.1f} MB during the soak"}[name]
    return Finding(kind="budget", rule=name, severity=load.severity, location="overall",
                   title=f"{what} (limit {limit:g} {unit})", fingerprint=fingerprint("budget", "soak", name),
                   data={"value": value, "threshold": limit, "operator": "<="})


def _metric(name: str, value: float, limit: float | None, operator: str, unit: str) -> Metric:
    if limit is None:
        return Metric(name=name, value=value, unit=unit)
    return Metric(name=name, value=value, unit=unit, threshold=limit, operator=operator,
                  passed=_holds(value, limit, operator))


def parse_stats_csv(text: str, source: str = "stats.csv") -> dict[str, EndpointStats]:
    """Locust's <prefix>_stats.csv into stats per request name; the row 'Aggregated' is the whole run."""
    try:
        rows = list(csv.DictReader(text.splitlines()))
        stats = {row["Name"]: _row(row) for row in rows}
    except (KeyError, ValueError, TypeError, csv.Error) as exc:
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


def _result(load: Load, measured: Measurement, started: datetime, attempts: int, folder: Path,
            outcome: Outcome) -> StageResult:
    stats = measured.stats
    total = stats[AGGREGATED]
    metrics = [Metric(name="requests", value=total.requests), Metric(name="failures", value=total.failures)]
    checks = _checks(load, stats) if outcome.budgets_apply else []
    metrics += [Metric(name=f"{scope}.{name}" if scope != "overall" else name, value=round(value, 4),
                       unit=_unit(name), threshold=limit, operator=op, passed=_holds(value, limit, op))
                for scope, name, value, limit, op in checks] + outcome.metrics
    findings = [_finding(load, *c) for c in checks if not _holds(c[2], c[3], c[4])] + outcome.findings
    findings += [_missing_endpoint(load, n) for n in load.endpoints if n not in stats]
    telemetry_metrics, telemetry_findings = _telemetry(load, measured)
    metrics += telemetry_metrics
    findings += telemetry_findings
    empty = total.requests < load.min_requests
    blocking = [f for f in findings if f.blocking]
    summary = (f"locust: {total.requests} requests, {total.error_rate:.2%} errors, {total.rps:.1f} req/s, "
               f"p95 {total.p95_ms:.0f} ms, p99 {total.p99_ms:.0f} ms; {len(blocking)} budget(s) breached"
               f" (attempt {attempts})" + (f"; {outcome.summary}" if outcome.summary else "") + f"; csv: {folder}")
    if empty:
        summary += f" — fewer than the {load.min_requests} requests the policy requires"
    log.info("%s", summary)
    return StageResult(stage=STAGE, kind="load", status=Status.failed if blocking else Status.passed,
                       required=load.required, started=started, finished=now(), attempts=attempts,
                       summary=summary, metrics=metrics, findings=findings, evidence_empty=empty,
                       artifacts=[Artifact.of(p) for p in sorted(folder.glob("*")) if p.is_file()],
                       attempt_log=outcome.attempt_log)


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


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    """The stage as the registry runs it (releasegate/stages/registry.py)."""
    return run(policy, ctx, env)
