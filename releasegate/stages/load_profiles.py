"""What the stress and soak profiles make of Locust's stats history: pure functions.

A stress step or a soak window is the traffic between two history rows of one request name (`Window`): the
steps a stress run reached (`stress_steps`) and where an overall or endpoint budget first broke
(`stress_outcome`); the consecutive windows of a soak (`soak_windows`), its p95 drift (`drift_ratio`) and the
service's memory over the run (`memory_summary`). The history itself is read in
releasegate.stages.locust_output; the rows a step or window ends on carry its percentiles (see there).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from releasegate.policy import Budgets
from releasegate.stages.locust_output import (
    AGGREGATED,
    HistoryRow,
    names,
    of_name,
    parse_stats_history,
    time_series,
)

# what the load stage, the report's tests and the profiles' tests read from here, wherever it lives
__all__ = ["AGGREGATED", "Breach", "HistoryRow", "StressOutcome", "Window", "drift_ratio", "memory_summary",
           "names", "of_name", "parse_stats_history", "soak_windows", "stress_outcome", "stress_steps",
           "time_series", "window_between", "window_breaches"]


@dataclass(frozen=True)
class Window:
    """Traffic between two history rows of one request name: a stress step or a soak window."""

    name: str
    users: int
    start_s: float
    end_s: float
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def rps(self) -> float:
        seconds = self.end_s - self.start_s
        return self.requests / seconds if seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "rps": round(self.rps, 3), "error_rate": round(self.error_rate, 5)}


@dataclass(frozen=True)
class Breach:
    scope: str          # "overall" or the request name
    budget: str         # p95_ms, error_rate, ...
    value: float
    threshold: float
    operator: str


@dataclass(frozen=True)
class StressOutcome:
    """Per-step figures of the aggregated traffic; `broke_at` is the index of the first step that broke."""

    steps: list[Window]
    broke_at: int | None
    breaches: list[Breach]

    @property
    def capacity(self) -> Window | None:
        """The last step that held every budget (None: it broke at the first step)."""
        if self.broke_at is None:
            return self.steps[-1] if self.steps else None
        return self.steps[self.broke_at - 1] if self.broke_at > 0 else None


def window_between(before: HistoryRow | None, last: HistoryRow, t0: int) -> Window:
    """The traffic after row `before` (None: from the start) up to and including row `last`."""
    start = before.timestamp if before else t0
    return Window(name=last.name, users=last.users, start_s=start - t0, end_s=last.timestamp - t0,
                  requests=last.requests - (before.requests if before else 0),
                  failures=last.failures - (before.failures if before else 0),
                  p50_ms=last.p50_ms, p95_ms=last.p95_ms, p99_ms=last.p99_ms)


def stress_steps(rows: list[HistoryRow], targets: list[int], name: str = AGGREGATED) -> list[Window]:
    """One window per step that ran: the rows whose user count equals the step's target.

    A step ends at its last row with that user count; it starts where the previous step ended (so rows
    taken while users were still spawning count towards the step they led to). Steps never reached are
    left out.
    """
    series = of_name(rows, name)
    if not series:
        return []
    t0 = series[0].timestamp
    steps: list[Window] = []
    before: HistoryRow | None = None
    for users in targets:
        last = next((r for r in reversed(series) if r.users == users), None)
        if last is None or (before is not None and last.timestamp <= before.timestamp):
            continue
        steps.append(window_between(before, last, t0))
        before = last
    return steps


def soak_windows(rows: list[HistoryRow], window_s: float, name: str = AGGREGATED) -> list[Window]:
    """Consecutive windows of window_s seconds from the first row. Rows are written once a second, so a
    last window that ends at most one second after the last row counts as full; a shorter one is dropped."""
    series = of_name(rows, name)
    if not series:
        return []
    t0 = series[0].timestamp
    windows: list[Window] = []
    before: HistoryRow | None = None
    end = t0 + window_s
    while True:
        last = next((r for r in reversed(series) if r.timestamp <= end), None)
        if last is None or end > series[-1].timestamp + 1 or (before and last.timestamp <= before.timestamp):
            return windows
        windows.append(window_between(before, last, t0))
        before, end = last, end + window_s


def drift_ratio(windows: list[Window]) -> float | None:
    """p95 of the last window over p95 of the first; None when fewer than two windows carry a p95."""
    measured = [w for w in windows if w.p95_ms]
    if len(measured) < 2:
        return None
    return measured[-1].p95_ms / measured[0].p95_ms  # type: ignore[operator]


def window_breaches(scope: str, budgets: Budgets, window: Window, with_throughput: bool = False) -> list[Breach]:
    """The budgets a window breaks. Throughput (min_rps) only when asked: a stress step with few users
    sends little traffic by design, so a throughput floor says nothing about where the service breaks."""
    measured = {"p50_ms": window.p50_ms, "p95_ms": window.p95_ms, "p99_ms": window.p99_ms,
                "error_rate": window.error_rate, "min_rps": window.rps}
    out = []
    for budget, limit in budgets.model_dump().items():
        value = measured[budget]
        if limit is None or value is None or (budget == "min_rps" and not with_throughput):
            continue
        operator = ">=" if budget == "min_rps" else "<="
        if not (value >= limit if operator == ">=" else value <= limit):
            out.append(Breach(scope, budget, value, limit, operator))
    return out


def stress_outcome(rows: list[HistoryRow], targets: list[int], overall: Budgets,
                   endpoints: dict[str, Budgets]) -> StressOutcome:
    """The steps of the aggregated traffic and the first step where an overall or endpoint budget broke."""
    steps = stress_steps(rows, targets)
    per_endpoint = {n: {w.users: w for w in stress_steps(rows, targets, n)} for n in endpoints}
    for index, step in enumerate(steps):
        breaches = window_breaches("overall", overall, step)
        for name, budgets in endpoints.items():
            if step.users in per_endpoint[name]:
                breaches += window_breaches(name, budgets, per_endpoint[name][step.users])
        if breaches:
            return StressOutcome(steps, index, breaches)
    return StressOutcome(steps, None, [])


def memory_summary(samples: list[tuple[float, float]]) -> dict[str, float] | None:
    """First, last and largest RSS (MB) of (seconds, MB) samples, and growth = last - first; None if none."""
    if not samples:
        return None
    first, last = samples[0][1], samples[-1][1]
    return {"first_mb": first, "last_mb": last, "max_mb": max(mb for _, mb in samples),
            "growth_mb": round(last - first, 2), "samples": len(samples)}
