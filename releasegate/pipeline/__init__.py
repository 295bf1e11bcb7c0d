"""The gate run as a sequence of steps. The DAG calls each step from one task; the CLI calls them in order.

Each step reads what it needs from the run's evidence folder and the gate database, so a task that runs
again (retry, clear) finds the same inputs and writes the same rows.

Every run that was recorded ends with a recorded verdict (docs/decisions/0009):
- a fault of the gate itself in a step (the database dropped, the disk full, a crash) becomes an `error`
  result of that step, named after it (a stage's own result, `provision`, or `gate:<step>`), so the verdict
  is INCONCLUSIVE with the fault as its reason; database writes are retried first (store.transaction);
- the service is stopped whatever failed;
- the verdict is kept in the database first, then the evidence files appear (each written whole), the
  manifest last: a folder whose writing stopped half way has no manifest and never verifies;
- every text is redacted (releasegate.redact) before it is stored, written, logged or printed.

This module holds the run's steps (begin, provision, run a stage and save its result, finish, `run_gate`); the
package holds the rest by job: `faults` (a fault of the gate becomes a result), `results` (what the policy
plans, results kept and read back), `defects` (findings become defects, with their audit events),
`conclusion` (decide and keep the verdict and its evidence), `outcome` and `notification` (Slack).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from releasegate.atomic import write_atomic
from releasegate.context import RunContext, close_run, open_run
from releasegate.domain.errors import ProvisionError
from releasegate.domain.models import StageResult, Status
from releasegate.environment import Environment, provision, publish_logs, teardown
from releasegate.pipeline.conclusion import conclude, conclude_failed
from releasegate.pipeline.defects import active_waivers, log_transitions
from releasegate.pipeline.faults import GATE_KIND, PROVISION, RunNotStarted, cause, gate_fault
from releasegate.pipeline.notification import notification_status, notify
from releasegate.pipeline.outcome import Outcome, load_outcome
from releasegate.pipeline.results import (
    IDENTIFIERS,
    expected_stages,
    load_results,
    merge_results,
    policy_of,
    read_results,
    redact_result,
    stage_names,
    write_result,
)
from releasegate.policy import Policy, load_policy
from releasegate.records import store
from releasegate.records.audit import record
from releasegate.redact import protect, redact, remember_env, remember_policy
from releasegate.stages import registry
from releasegate.stages.base import guarded, now

log = logging.getLogger("releasegate")
protect(log)  # every record the gate logs is redacted before any handler (CLI, Airflow task log) sees it

# what the DAG's glue, the CLI and the tests call on the pipeline, wherever it lives
__all__ = ["GATE_KIND", "IDENTIFIERS", "PROVISION", "Outcome", "RunNotStarted", "active_waivers", "begin", "cause",
           "conclude", "conclude_failed", "expected_stages", "finish", "gate_fault", "load_outcome", "load_results",
           "log_transitions", "merge_results", "notification_status", "notify", "policy_of", "provision_service",
           "read_results", "redact_result", "run_gate", "run_stage", "save_result", "stage_names"]


def begin(policy_path: str | Path, version: str, *, run_id: str | None = None, evidence_dir: str | Path | None = None,
          airflow_run_id: str | None = None) -> RunContext:
    """Validate the policy, open the run (evidence folder, workspace) and record it."""
    return _begin(policy_path, version, run_id=run_id, evidence_dir=evidence_dir, airflow_run_id=airflow_run_id)[0]


def _begin(policy_path: str | Path, version: str, *, run_id: str | None = None,
           evidence_dir: str | Path | None = None,
           airflow_run_id: str | None = None) -> tuple[RunContext, StageResult | None]:
    """The run, and the fault of its opening steps after it was recorded (already saved), if any.

    Before the run is recorded nothing can hold a verdict: a fault there raises RunNotStarted (PolicyError for
    the policy itself)."""
    policy = load_policy(policy_path)
    remember_policy(policy)
    try:
        ctx = open_run(policy, version, run_id=run_id, evidence_dir=evidence_dir)
    except OSError as exc:
        raise RunNotStarted(f"the run's evidence folder or workspace could not be created: {cause(exc)}") from None
    try:
        store.transaction(lambda uow: _record_start(uow, ctx, policy, airflow_run_id), what="recording the run")
    except Exception as exc:  # noqa: BLE001 - no run row: the run did not start
        close_run(ctx)
        with contextlib.suppress(OSError):
            ctx.evidence.rmdir()  # only if still empty
        raise RunNotStarted(f"the run could not be recorded: {cause(exc)} — check RELEASEGATE_DB_URL and that the "
                            "gate database is reachable, then run again") from None
    fault = None
    try:  # the evidence keeps the policy as it was, minus its secrets (its digest is of the file itself)
        write_atomic(ctx.evidence / "policy.yaml", redact(policy.path.read_text(encoding="utf-8")))
    except Exception as exc:  # noqa: BLE001 - the run is recorded: the fault becomes its verdict's reason
        fault = save_result(ctx, gate_fault("begin", f"the policy could not be kept as evidence: {cause(exc)}"))
    log.info("run %s: %s %s, policy %s (%s); evidence: %s", ctx.run_id, ctx.service, version, ctx.policy_path,
             policy.digest[:19], ctx.evidence_dir)
    return ctx, fault


def _record_start(uow, ctx: RunContext, policy: Policy, airflow_run_id: str | None) -> None:
    uow.runs.upsert({"run_id": ctx.run_id, "service": ctx.service, "version": ctx.version,
                     "policy_path": ctx.policy_path, "policy_digest": policy.digest,
                     "evidence_dir": ctx.evidence_dir, "started_at": ctx.started, "status": "running",
                     "airflow_dag_run_id": airflow_run_id})
    record(uow, "run.started", f"{ctx.service}@{ctx.version}", {"policy_digest": policy.digest,
           "evidence_dir": ctx.evidence_dir, "airflow_dag_run_id": airflow_run_id}, ctx.started, ctx.run_id)


def provision_service(ctx: RunContext) -> Environment | None:
    """Start the service; its outcome is a stage result like any other (an error makes the verdict INCONCLUSIVE)."""
    return _provision(ctx)[0]


def _provision(ctx: RunContext) -> tuple[Environment | None, StageResult | None]:
    """The running service (None when there is none or it must not be used) and the provision result saved.

    A service whose provision result could not be saved is stopped at once: nothing runs against a service
    the run has no record of, and nothing is left running."""
    try:
        policy = policy_of(ctx)
    except Exception as exc:  # noqa: BLE001 - the policy changed or vanished since the run began
        return None, save_result(ctx, StageResult(stage=PROVISION, kind="environment", status=Status.error,
                                                  started=now(), finished=now(), summary="provision: no policy",
                                                  error=f"provision: the policy could not be read: {cause(exc)}"))
    if policy.environment is None:
        return None, None
    holder: dict[str, Environment] = {}

    def body(started: datetime) -> StageResult:
        try:
            holder["env"] = provision(policy, ctx)
        except ProvisionError as exc:
            return StageResult(stage=PROVISION, kind="environment", status=Status.error, started=started,
                               finished=now(), summary="provision: the service did not start", error=str(exc))
        env = holder["env"]
        remember_env(env.env)
        return StageResult(stage=PROVISION, kind="environment", status=Status.passed, started=started,
                           finished=now(), summary=f"provision: healthy at {env.base_url} (pid {env.pid})")

    try:
        saved = save_result(ctx, guarded(PROVISION, "environment", True, body))
    except BaseException:
        _stop_quietly(holder.get("env"))
        raise
    env = holder.get("env")
    if env is not None and saved.status is Status.error:
        log.error("provision: %s; stopping the service", saved.error)
        _stop_quietly(env)
        return None, saved
    return env, saved


def _stop_quietly(env: Environment | None) -> str | None:
    """Stop the environment; None when it stopped (or there was none), else what went wrong."""
    if env is None:
        return None
    try:
        teardown(env)
        return None
    except Exception as exc:  # noqa: BLE001 - reported by the caller; teardown stops what it can first
        log.error("teardown: %s", cause(exc))
        return cause(exc)


def run_stage(ctx: RunContext, name: str, env: Environment | dict | None) -> StageResult:
    """Run one stage by its name, save its result as evidence and in the database; return what was saved.

    A fault of the gate while running it (not only of its tool) is that stage's `error` result."""
    started = now()
    try:
        policy = policy_of(ctx)
        runner = _runner(policy, name)
        environment = Environment.model_validate(env) if env else None
        if environment is not None:
            remember_env(environment.env)
            environment.require_local(name)
        result = runner(policy, ctx, environment)
    except ProvisionError as exc:
        result = StageResult(stage=name, kind="environment", status=Status.error, started=started, finished=now(),
                             summary=f"{name}: could not reach the service", error=str(exc))
    except KeyError:
        raise
    except Exception as exc:  # noqa: BLE001 - fail closed: the stage has a result, and it is an error
        log.error("%s: the gate failed running it: %s", name, cause(exc))
        result = StageResult(stage=name, kind=_kind(name), status=Status.error, started=started, finished=now(),
                             summary=f"{name}: the gate failed running it",
                             error=f"{name}: the gate failed running the stage: {cause(exc)}")
    return save_result(ctx, result)


def _kind(name: str) -> str:
    return "environment" if name == PROVISION else registry.kind_of(name)


def _runner(policy: Policy, name: str) -> Callable[[Policy, RunContext, Environment | None], StageResult]:
    plan = registry.find(policy, name)
    return lambda p, c, e: plan.stage.run(p, c, e, plan)


def save_result(ctx: RunContext, result: StageResult) -> StageResult:
    """Redact the result, then keep it: in the database, then as `stages/<stage>.json` (written whole); return
    what was kept.

    Never raises for a fault of the database or the disk: the result then becomes an `error` naming the fault,
    which is kept wherever it still can be, and returned (the caller holds it for the verdict)."""
    result = redact_result(result)
    try:
        store.transaction(lambda uow: _store_result(uow, ctx, result), what=f"saving {result.stage}")
        write_result(ctx, result)
        return result
    except Exception as exc:  # noqa: BLE001 - the fault becomes the stage's result
        failed = result.model_copy(update={
            "status": Status.error, "finished": now(), "summary": f"{result.stage}: its result could not be saved",
            "error": f"{result.stage}: its result ({result.status.value}) could not be saved: {cause(exc)}"})
        log.error("%s", failed.error)
    for keep in (lambda: store.transaction(lambda uow: _store_result(uow, ctx, failed), what=f"saving {result.stage}"),
                 lambda: write_result(ctx, failed)):
        try:
            keep()
        except Exception as exc:  # noqa: BLE001 - kept in memory at least
            log.warning("%s: the error result could not be kept either: %s", result.stage, cause(exc))
    return failed


def _store_result(uow, ctx: RunContext, result: StageResult) -> None:
    from releasegate.stages.suite_tally import read_spool

    spool = Path(result.cases_file) if result.cases_file else None
    cases = read_spool(spool) if spool is not None and spool.is_file() else ()
    uow.stages.upsert(ctx.run_id, result.model_dump(mode="json", exclude={"test_groups"}), cases=cases)
    record(uow, "stage.result", result.stage, {"status": result.status.value, "error": result.error,
           "evidence_empty": result.evidence_empty, "findings": sorted(f.fingerprint for f in result.findings)},
           result.finished, ctx.run_id)


def finish(ctx: RunContext, env: Environment | dict | None) -> str:
    """Stop the service, keep its logs (redacted) as evidence and drop the workspace copy; always safe to call
    again. Each part runs whatever the one before did; the first fault is raised at the end."""
    outcome = "nothing stopped"
    errors: list[BaseException] = []
    for part in (lambda: teardown(Environment.model_validate(env) if env else None),
                 lambda: publish_logs(ctx), lambda: close_run(ctx)):
        try:
            value = part()
        except Exception as exc:  # noqa: BLE001 - the next part still runs
            log.error("finish: %s", cause(exc))
            errors.append(exc)
        else:
            outcome = value if isinstance(value, str) else outcome
    if errors:
        raise errors[0]
    return outcome


def run_gate(policy_path: str | Path, version: str, evidence_dir: str | Path | None = None,
             progress: Callable[[str], None] = lambda _m: None) -> Outcome:
    """The whole gate in this process, in the DAG's order: the CLI's entry point.

    Raises PolicyError or RunNotStarted when the run could not start; once it has, it returns an Outcome
    whatever failed (the service stopped in any case)."""
    say = lambda message: progress(redact(message))  # noqa: E731
    ctx, fault = _begin(policy_path, version, evidence_dir=evidence_dir)
    known = [fault] if fault else []
    env = None
    try:
        say(f"run {ctx.run_id}: provisioning {ctx.service} {version}")
        env, provisioned = _provision(ctx)
        known += [provisioned] if provisioned else []
        for name in stage_names(policy_of(ctx)):
            say(f"stage {name}")
            result = run_stage(ctx, name, env)
            known.append(result)
            say(f"  {result.status.value}: {result.summary if result.status is not Status.error else result.error}")
    except Exception as exc:  # noqa: BLE001 - a fault between steps: the run still concludes
        log.error("run: %s", cause(exc))
        known.append(save_result(ctx, gate_fault("run", exc)))
    finally:
        try:
            finish(ctx, env)
        except Exception as exc:  # noqa: BLE001 - the verdict notes it; it does not decide on it
            known.append(save_result(ctx, gate_fault("teardown", exc, required=False)))
    outcome = conclude(ctx, known)
    try:
        notify(ctx, outcome)
    except Exception as exc:  # noqa: BLE001 - the verdict stands; the notification's fate is logged
        log.error("notify: %s", cause(exc))
        outcome.notification = f"failed: {cause(exc)}"
    return outcome
