"""Chaos stage: run each Chaos Toolkit experiment against the provisioned service, read its journal.

Experiment files are relative to the policy file (they describe the gate's faults, not one release's code).
The gate runs, per experiment,
    chaos --no-version-check --settings <evidence>/chaos/settings.yaml --log-file ... run
          --journal-path <evidence>/chaos/<name>.journal.json --rollback-strategy always --var base_url=... FILE
with an empty settings file (no extensions, no controls, nothing fetched) and rollbacks that always run.
The --var names: base_url, and per dependency dep_NAME_url, dep_NAME_direct_url, dep_NAME_pid (int),
dep_NAME_pid_created (float), dep_NAME_proxy_control (when proxied); an experiment declares the ones it uses
in its `configuration`.

A steady state that deviated (or never held), or a rollback that failed, is a finding; a missing `chaos`
binary, an experiment file that does not parse, a journal that cannot be read, or an experiment that was
aborted or interrupted is an error; so is `chaos` killed, stopped at the timeout, or exiting other than 0 / 1 or
contrary to its journal. `chaos/timeline.json` lists what happened when, relative to the stage start.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from releasegate.context import RunContext
from releasegate.environment import Environment, child_pythonpath
from releasegate.errors import StageError
from releasegate.fingerprint import fingerprint
from releasegate.models import Artifact, Finding, Metric, StageResult, Status
from releasegate.policy import Chaos, ChaosExperiment, Policy
from releasegate.stages.base import ToolRun, find_tool, fresh_folder, guarded, last_error_line, now, run_tool
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

STAGE = "chaos"
KIND = "chaos"
FINDING_KIND = "chaos"
STATUSES = ("completed", "failed", "aborted", "interrupted")
EVIDENCE_CHARS = 600
# `chaos run` exits 0 when the experiment completed and its steady state held, 1 when it failed or deviated (or the
# experiment did not load, with no journal). Any other status, a signal or a timeout is an error; so is a journal
# that says otherwise than the status.
CHAOS_OK = (0, 1)


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


# --- parsing (pure) -------------------------------------------------------------------------------------------

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


# --- running --------------------------------------------------------------------------------------------------

def run(policy: Policy, ctx: RunContext, env: Environment | None) -> StageResult:
    spec = policy.chaos
    if spec is None:
        raise StageError(f"{policy.path}: no 'chaos' section — nothing to run")
    return guarded(STAGE, KIND, spec.required, lambda started: _run(policy, spec, ctx, env, started))


def _run(policy: Policy, spec: Chaos, ctx: RunContext, env: Environment | None, started: datetime) -> StageResult:
    if env is None:
        raise StageError("chaos needs the running service: provisioning did not start it (see the provision stage)")
    binary = find_tool("chaos")
    folder = fresh_folder(ctx.evidence / "chaos")
    files = {exp.name: load_experiment(policy.resolve(exp.file)) for exp in spec.experiments}
    outcomes = {exp.name: run_experiment(binary, policy, spec, exp, files[exp.name], env, folder)
                for exp in spec.experiments}
    entries = [e for name, o in outcomes.items() for e in timeline(name, o, started)]
    (folder / "timeline.json").write_text(json.dumps(entries, indent=2), encoding="utf-8")
    return _result(spec, outcomes, folder, started)


def load_experiment(path: Path) -> dict:
    """The experiment as data, or StageError if it is missing or does not parse."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise StageError(f"chaos experiment {path} cannot be read: {exc} — fix the file or chaos.experiments[].file "
                         "(relative to the policy)") from None
    if not isinstance(doc, dict) or "method" not in doc:
        raise StageError(f"chaos experiment {path} is not a Chaos Toolkit experiment (no 'method')")
    return doc


def run_experiment(binary: str, policy: Policy, spec: Chaos, exp: ChaosExperiment, doc: dict, env: Environment,
                   folder: Path) -> ExperimentOutcome:
    journal = folder / f"{exp.name}.journal.json"
    journal.unlink(missing_ok=True)
    settings = folder / "settings.yaml"
    settings.write_text("", encoding="utf-8")
    declared = set(doc.get("configuration") or {})
    argv = [binary, "--no-version-check", "--settings", str(settings), "--log-file", str(folder / f"{exp.name}.log"),
            "run", "--journal-path", str(journal), "--rollback-strategy", "always",
            *var_args(chaos_vars(env), declared), str(policy.resolve(exp.file))]
    result = run_tool(argv, cwd=folder, timeout_s=spec.timeout_s, env=chaos_env(),
                      log_to=folder / f"{exp.name}.output.log", ok=CHAOS_OK)
    outcome = parse_journal(read_journal(journal, last_error_line(result.stderr, result.stdout)))
    check_status(result, outcome, journal)
    log.info("chaos[%s]: %s, steady state before %s, after %s, rollbacks %s in %.1f s", exp.name, outcome.status,
             outcome.steady_before, outcome.steady_after, [a.status for a in outcome.rollbacks], result.seconds)
    return outcome


def chaos_vars(env: Environment) -> dict[str, Any]:
    """The values an experiment may ask for (in its configuration) about the running environment."""
    values: dict[str, Any] = {"base_url": env.base_url}
    for dep in env.dependencies:
        values.update({f"dep_{dep.name}_url": dep.url, f"dep_{dep.name}_direct_url": dep.direct_url,
                       f"dep_{dep.name}_pid": dep.pid, f"dep_{dep.name}_pid_created": dep.pid_created})
        if dep.proxy:
            values[f"dep_{dep.name}_proxy_control"] = dep.proxy.control_url
    return values


def var_args(values: dict[str, Any], declared: set[str]) -> list[str]:
    """--var key=value (key:int= / key:float= for numbers) for the keys the experiment declares."""
    args = []
    for key, value in values.items():
        if key in declared:
            typed = {int: ":int", float: ":float"}.get(type(value), "")
            args += ["--var", f"{key}{typed}={value}"]
    return args


def chaos_env() -> dict[str, str]:
    """The experiment's python providers import releasegate; loopback calls never go through an HTTP proxy."""
    return {**child_pythonpath(), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def check_status(result: ToolRun, outcome: ExperimentOutcome, journal: Path) -> None:
    """chaos exits 1 exactly when the journal says the experiment failed or deviated; otherwise neither is believed."""
    failed = outcome.status != "completed" or outcome.deviated
    if result.returncode != (1 if failed else 0):
        raise StageError(f"{result.ending()} but its journal says {outcome.status}"
                         f"{', deviated' if outcome.deviated else ''}: the exit status and the journal disagree, "
                         f"so neither is believed — see {journal} and {result.log}")


def read_journal(path: Path, output: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"chaos wrote no journal at {path}; last output: {output}") from None
    except (OSError, ValueError) as exc:
        raise StageError(f"chaos journal {path} cannot be read: {exc}") from None


def _result(spec: Chaos, outcomes: dict[str, ExperimentOutcome], folder: Path, started: datetime) -> StageResult:
    specs = {exp.name: exp for exp in spec.experiments}
    findings = [f for name, o in outcomes.items() for f in findings_for(name, specs[name], o)]
    metrics = [m for name, o in outcomes.items() for m in metrics_for(name, o)]
    broken = [name for name, o in outcomes.items() if o.status in ("aborted", "interrupted") and specs[name].required]
    artifacts = [Artifact.of(p) for p in sorted(folder.glob("*.journal.json"))] + [Artifact.of(folder / "timeline.json")]
    held = sum(1 for o in outcomes.values() if o.steady_before and o.steady_after and not o.deviated)
    summary = (f"chaos: {held}/{len(outcomes)} experiment(s) held their steady state, {len(findings)} finding(s); "
               f"timeline: {folder / 'timeline.json'}")
    status = Status.error if broken else (Status.failed if findings else Status.passed)
    log.info("%s", summary)
    return StageResult(stage=STAGE, kind=KIND, status=status, required=spec.required, started=started,
                       finished=now(), summary=summary, metrics=metrics, findings=findings, artifacts=artifacts,
                       error=f"experiment(s) {', '.join(broken)} were aborted or interrupted: the evidence is "
                             "incomplete — see their journals" if broken else None)


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    """The stage as the registry runs it (releasegate/stages/registry.py)."""
    return run(policy, ctx, env)
