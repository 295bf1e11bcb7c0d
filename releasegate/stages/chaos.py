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
The journal's findings, metrics and timeline: releasegate.stages.chaos_journal.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.domain.models import Artifact, StageResult, Status
from releasegate.environment import Environment, child_pythonpath
from releasegate.policy import Chaos, ChaosExperiment, Policy
from releasegate.stages.base import ToolRun, find_tool, fresh_folder, guarded, last_error_line, now, run_tool
from releasegate.stages.chaos_journal import (
    ExperimentOutcome,
    fault_window,
    findings_for,
    metrics_for,
    parse_journal,
    timeline,
)
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

# what the tests read from the chaos stage, wherever it lives
__all__ = ["ExperimentOutcome", "fault_window", "findings_for", "metrics_for", "parse_journal", "run", "run_planned",
           "timeline", "var_args"]

STAGE = "chaos"
KIND = "chaos"
# `chaos run` exits 0 when the experiment completed and its steady state held, 1 when it failed or deviated (or the
# experiment did not load, with no journal). Any other status, a signal or a timeout is an error; so is a journal
# that says otherwise than the status.
CHAOS_OK = (0, 1)


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
