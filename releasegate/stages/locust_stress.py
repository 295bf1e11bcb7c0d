"""The stress profile's result: users step up until an overall or endpoint budget breaks (releasegate.stages.
load_profiles finds where); the breaking point is that step and the capacity the step before it. Breaking is
what a stress test is for, so it is a non-blocking finding unless it happens below
`stress.min_users_before_break`. Evidence: stress-steps.json.
"""

from __future__ import annotations

from pathlib import Path

from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Finding, Metric, Severity
from releasegate.policy import Load
from releasegate.stages import load_profiles as lp
from releasegate.stages.locust_budgets import Outcome, fmt_value
from releasegate.stages.locust_output import Measurement
from releasegate.stages.locust_run import write_json


def stress(load: Load, measured: Measurement, folder: Path) -> Outcome:
    spec = load.stress_spec()
    outcome = lp.stress_outcome(measured.history, spec.targets(), load.budgets, load.endpoints)
    if not outcome.steps:
        raise StageError(f"the stress run completed no step (targets {spec.targets()} users) — "
                         f"see {folder / 'run1.log'}")
    write_json(folder / "stress-steps.json", stress_document(outcome, spec.targets()))
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
            f"{fmt_value(first.budget, first.value)} vs {first.operator} "
            f"{fmt_value(first.budget, first.threshold)}")
