"""The load test against a baseline (docs/decisions/0016): this run's latency percentiles compared with the
service's last GO (or a pinned version's last GO), as Kayenta judges a canary. A percentile blocks when it rose by
more than `load.baseline.max_change` and the rise is significant: the one-sided Mann-Whitney U test on the
per-interval percentiles of both runs rejects "no rise" at `alpha` (with fewer than `min_samples` intervals on
either side the rise alone decides). Each run with a baseline policy keeps its own samples in the gate database
for the runs after it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.mann_whitney import UTest, mann_whitney_u
from releasegate.domain.models import Finding, Metric
from releasegate.policy import Load
from releasegate.policy.load import Baseline
from releasegate.stages.locust_output import AGGREGATED, Measurement, of_name

PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")
Samples = dict[str, tuple[float, list[float]]]  # per percentile: the run's overall value, the per-interval values


@dataclass(frozen=True)
class BaselineRun:
    run_id: str
    version: str
    samples: Samples


@dataclass(frozen=True)
class Judged:
    metrics: list[Metric]
    findings: list[Finding]
    summary: str


def samples_of(measured: Measurement) -> Samples:
    """The overall percentiles and the per-interval ones Locust recorded (intervals without requests left out)."""
    total = measured.stats[AGGREGATED]
    rows = [r for r in of_name(measured.history) if r.requests > 0]
    return {name: (float(getattr(total, name)),
                   [float(v) for r in rows if (v := getattr(r, name)) is not None and v > 0]) for name in PERCENTILES}


def find_baseline(service: str, run_id: str, spec: Baseline) -> BaselineRun | None:
    """The run to compare with; None for a service without an earlier GO. A pinned version without one is an
    error: the policy asked for a comparison the gate cannot make."""
    from releasegate.records import store

    def work(uow) -> BaselineRun | None:
        row = uow.load_samples.baseline(service, run_id, spec.version)
        return BaselineRun(row["run_id"], row["version"], uow.load_samples.for_run(row["run_id"])) if row else None

    found = store.transaction(work, what="reading the load baseline")
    if found is None and spec.version is not None:
        raise StageError(f"load.baseline.version is {spec.version}, but the gate database has no GO of {service} "
                         f"{spec.version} with load samples — gate that version first, or drop the pin to compare "
                         f"with the last GO")
    return found


def keep_samples(run_id: str, samples: Samples) -> None:
    from releasegate.records import store

    store.transaction(lambda uow: uow.load_samples.replace(run_id, samples), what="keeping the load samples")


def judge(load: Load, spec: Baseline, current: Samples, baseline: BaselineRun | None) -> Judged:
    if baseline is None:
        return Judged([], [], "no baseline yet (no earlier GO of the service kept load samples)")
    metrics, findings, notes = [], [], []
    for name, allowed in sorted(spec.max_change.items()):
        if name not in baseline.samples:
            notes.append(f"{_label(name)}: the baseline kept none")
            continue
        metric, finding, note = _judge_one(load, spec, name, allowed, current[name], baseline)
        metrics.append(metric)
        findings += [finding] if finding else []
        notes.append(note)
    return Judged(metrics, findings, f"against {baseline.version} (run {baseline.run_id}): " + ", ".join(notes))


def _judge_one(load: Load, spec: Baseline, name: str, allowed: float, now: tuple[float, list[float]],
               baseline: BaselineRun) -> tuple[Metric, Finding | None, str]:
    value, series = now
    base_value, base_series = baseline.samples[name]
    change = _change(value, base_value)
    enough = min(len(series), len(base_series)) >= spec.min_samples
    test = mann_whitney_u(series, base_series, "greater") if enough and series and base_series else None
    significant = test is None or test.p_value < spec.alpha
    breached = change > allowed and significant
    note = f"{_label(name)} {value:.0f} ms vs {base_value:.0f} ms ({_percent(change)}; {_test_note(test, spec)})"
    metric = Metric(name=f"baseline.{name}_change", value=round(change, 4) if math.isfinite(change) else 1e9,
                    unit="ratio", threshold=allowed, operator="<=", passed=not breached)
    if not breached:
        return metric, None, note
    title = (f"{_label(name)} {value:.0f} ms is {_percent(change)} over the baseline {base_value:.0f} ms "
             f"({baseline.version}'s GO, run {baseline.run_id}), more than the allowed +{allowed:.0%} "
             f"({_test_note(test, spec)})")
    return metric, Finding(kind="budget", rule=f"baseline.{name}", severity=load.severity, location="overall",
                           title=title, fingerprint=fingerprint("budget", "baseline", name),
                           data={"value": value, "baseline": base_value, "change": round(change, 4),
                                 "allowed": allowed, "baseline_run": baseline.run_id,
                                 "baseline_version": baseline.version,
                                 "p_value": round(test.p_value, 6) if test else None}), note


def _change(value: float, base: float) -> float:
    if base > 0:
        return value / base - 1
    return math.inf if value > 0 else 0.0


def _percent(change: float) -> str:
    return "no baseline value" if not math.isfinite(change) else f"{change:+.1%}"


def _test_note(test: UTest | None, spec: Baseline) -> str:
    if test is None:
        return f"fewer than {spec.min_samples} intervals a side: the rise alone decides"
    return f"Mann-Whitney U p={test.p_value:.4f} on {test.n1} vs {test.n2} intervals, alpha {spec.alpha:g}"


def _label(name: str) -> str:
    return name.removesuffix("_ms")
