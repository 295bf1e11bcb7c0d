"""A Chaos Toolkit journal read once, and what it gives the chaos stage: pure functions.

`parse_journal` reads a journal (chaostoolkit-lib 1.4x) into an `ExperimentOutcome`: its status, whether the
steady state held before and after the fault, and every probe and action in the phase it ran in. From that,
`findings_for` (a steady state that deviated or never held, a rollback that failed), `metrics_for` (what the
experiment's probes measured under the fault, the recovery time) and `timeline` (what happened when).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Finding, Metric
from releasegate.policy import ChaosExperiment

FINDING_KIND = "chaos"
STATUSES = ("completed", "failed", "aborted", "interrupted")
EVIDENCE_CHARS = 600


@dataclass(frozen=True)
class Activity:
    """One probe or action as the journal recorded it, in the phase it ran in."""

    name: str
    phase: str            # steady-state-before, method, steady-state-after, rollback
    type: str             # probe or action
    status: str           # succeeded or failed
    start: datetime
    end: datetime
    output: Any = None
    error: str = ""


@dataclass(frozen=True)
class ExperimentOutcome:
    title: str
    status: str                              # completed, failed, aborted, interrupted
    deviated: bool
    steady_before: bool | None               # None: the hypothesis did not run
    steady_after: bool | None
    start: datetime
    end: datetime
    activities: list[Activity] = field(default_factory=list)

    @property
    def rollbacks(self) -> list[Activity]:
        return [a for a in self.activities if a.phase == "rollback"]

    @property
    def measurements(self) -> list[dict]:
        return [a.output for a in self.activities if _marked(a.output, "measurement")]

    @property
    def recovery_s(self) -> float | None:
        found = [a.output["recovery_s"] for a in self.rollbacks if _marked(a.output, "recovery")]
        return float(found[-1]) if found else None


def parse_journal(doc: Any) -> ExperimentOutcome:
    """A Chaos Toolkit journal (chaostoolkit-lib 1.4x) as an ExperimentOutcome; StageError if it is not one."""
    if not isinstance(doc, dict) or doc.get("status") not in STATUSES:
        raise StageError(f"not a Chaos Toolkit journal (status {_get(doc, 'status')!r}, expected one of {STATUSES})")
    try:
        steady = doc.get("steady_states") or {}
        activities = (_phase(steady.get("before"), "steady-state-before") + _runs(doc.get("run"), "method")
                      + _phase(steady.get("after"), "steady-state-after") + _runs(doc.get("rollbacks"), "rollback"))
        return ExperimentOutcome(
            title=doc["experiment"].get("title", ""), status=doc["status"], deviated=bool(doc.get("deviated")),
            steady_before=_met(steady.get("before")), steady_after=_met(steady.get("after")),
            start=_time(doc["start"]), end=_time(doc["end"]), activities=activities)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StageError(f"Chaos Toolkit journal is missing or has a malformed field: {exc!r}") from None


def _get(doc: Any, key: str) -> Any:
    return doc.get(key) if isinstance(doc, dict) else type(doc).__name__


def _met(state: dict | None) -> bool | None:
    return None if not state else bool(state.get("steady_state_met"))


def _phase(state: dict | None, phase: str) -> list[Activity]:
    return _runs((state or {}).get("probes"), phase)


def _runs(runs: list | None, phase: str) -> list[Activity]:
    return [_activity(run, phase) for run in runs or []]


def _activity(run: dict, phase: str) -> Activity:
    spec = run["activity"]
    return Activity(name=spec.get("name", "?"), phase=phase, type=spec.get("type", "?"), status=run["status"],
                    start=_time(run["start"]), end=_time(run["end"]), output=run.get("output"),
                    error=str(run.get("exception") and "".join(run["exception"])[-EVIDENCE_CHARS:] or ""))


def _time(text: str) -> datetime:
    stamp = datetime.fromisoformat(text)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _marked(output: Any, kind: str) -> bool:
    return isinstance(output, dict) and output.get("releasegate") == kind


def timeline(name: str, outcome: ExperimentOutcome, origin: datetime) -> list[dict]:
    """What happened when, in seconds from origin: the experiment, each activity and the fault window."""
    def span(start: datetime, end: datetime, label: str, kind: str) -> dict:
        return {"start_s": round((start - origin).total_seconds(), 3), "end_s": round((end - origin).total_seconds(), 3),
                "label": label, "kind": kind, "experiment": name}

    entries = [span(outcome.start, outcome.end, f"{name}: {outcome.status}", "experiment")]
    for act in outcome.activities:
        kind = "rollback" if act.phase == "rollback" else act.type
        entries.append(span(act.start, act.end, f"{name}: {act.name} ({act.phase}, {act.status})", kind))
    window = fault_window(outcome)
    if window:
        entries.append(span(*window, f"{name}: fault active", "fault"))
    return sorted(entries, key=lambda e: (e["start_s"], e["kind"] != "experiment"))


def fault_window(outcome: ExperimentOutcome) -> tuple[datetime, datetime] | None:
    """From the first method action to the end of the first rollback (which clears the fault)."""
    actions = [a for a in outcome.activities if a.phase == "method" and a.type == "action"]
    if not actions:
        return None
    rollbacks = outcome.rollbacks
    return actions[0].start, (rollbacks[0].end if rollbacks else outcome.end)


def findings_for(name: str, spec: ChaosExperiment, outcome: ExperimentOutcome) -> list[Finding]:
    found = []
    if outcome.steady_before is False:
        found.append(_finding(name, spec, "steady-state-before", "steady state did not hold before the fault "
                              "(the service was not healthy to begin with)", _failed(outcome, "steady-state-before")))
    if outcome.deviated or outcome.steady_after is False:
        found.append(_finding(name, spec, "steady-state-deviated", "steady state deviated under the fault",
                              _failed(outcome, "steady-state-after")))
    for act in outcome.rollbacks:
        if act.status != "succeeded":
            found.append(_finding(name, spec, f"rollback:{act.name}", f"rollback {act.name} failed "
                                  "(the service did not recover)", act.error))
    if outcome.status == "failed" and not found:
        found.append(_finding(name, spec, "experiment-failed", "experiment failed", _failed(outcome, "method")))
    return found


def _failed(outcome: ExperimentOutcome, phase: str) -> str:
    lines = [f"{a.name}: {a.error.strip().splitlines()[-1] if a.error.strip() else _short(a.output)}"
             for a in outcome.activities if a.phase == phase and a.status != "succeeded"]
    if not lines:
        lines = [f"{a.name}: {_short(a.output)}" for a in outcome.activities if a.phase == phase]
    return "\n".join(lines)[:EVIDENCE_CHARS]


def _short(output: Any) -> str:
    if isinstance(output, dict) and "status" in output:
        return f"HTTP {output['status']}"
    return json.dumps(output, default=str)[:200]


def _finding(name: str, spec: ChaosExperiment, rule: str, title: str, evidence: str) -> Finding:
    return Finding(kind=FINDING_KIND, rule=f"{name}:{rule}", severity=spec.severity, title=f"chaos {name}: {title}",
                   location=spec.file, evidence=evidence, fingerprint=fingerprint(FINDING_KIND, name, rule),
                   blocking=spec.required)


def metrics_for(name: str, outcome: ExperimentOutcome) -> list[Metric]:
    metrics = [Metric(name=f"chaos.{name}.duration_s", value=round((outcome.end - outcome.start).total_seconds(), 3),
                      unit="s")]
    measured = outcome.measurements
    if measured:
        requests_n = sum(m["requests"] for m in measured)
        errors = sum(m["errors"] for m in measured)
        metrics += [Metric(name=f"chaos.{name}.fault_requests", value=requests_n),
                    Metric(name=f"chaos.{name}.fault_error_rate", value=errors / requests_n if requests_n else 1.0),
                    Metric(name=f"chaos.{name}.fault_p50_ms", value=max(m["p50_ms"] for m in measured), unit="ms"),
                    Metric(name=f"chaos.{name}.fault_max_ms", value=max(m["max_ms"] for m in measured), unit="ms")]
    if outcome.recovery_s is not None:
        metrics.append(Metric(name=f"chaos.{name}.recovery_s", value=outcome.recovery_s, unit="s"))
    return metrics
