"""What the DAG's tasks call: one function per task, turning XCom dicts into the core's types and back.

Imports airflow only inside functions (the core never needs a scheduler).
"""

from __future__ import annotations

import logging
from pathlib import Path

from releasegate import pipeline
from releasegate.context import RunContext
from releasegate.errors import PolicyError
from releasegate.models import Status

log = logging.getLogger("releasegate")


def open_run(params: dict, dag_id: str, run_id: str, repo_root: Path) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    policy_path = Path(params["policy"])
    if not policy_path.is_absolute():
        policy_path = repo_root / policy_path
    try:
        ctx = pipeline.begin(policy_path, params["version"], run_id=f"{dag_id}__{run_id}", airflow_run_id=run_id)
    except PolicyError as exc:
        raise AirflowFailException(f"policy error (not retried): {exc}") from None
    if ctx.service != params["service"]:
        raise AirflowFailException(f"the trigger names service {params['service']!r} but {policy_path} is the "
                                   f"policy of {ctx.service!r} — pass the matching policy")
    return ctx.model_dump(mode="json")


def planned(ctx: dict, what: str) -> list[str]:
    names = pipeline.stage_names(pipeline.policy_of(RunContext(**ctx)))
    return [n for n in names if n.startswith("pytest[")] if what == "suites" else names


def provision(ctx: dict) -> dict | None:
    from airflow.sdk.exceptions import AirflowException

    env = pipeline.provision_service(RunContext(**ctx))
    result = _saved(ctx, pipeline.PROVISION)
    if result is not None and result.status is Status.error:
        raise AirflowException(f"provision: {result.error}")
    return env.model_dump(mode="json") if env else None


def run_stage(ctx: dict, stage: str, env: dict | None) -> dict:
    """Run a planned stage; a stage the policy does not plan is skipped; a tool error fails the task (retried)."""
    from airflow.sdk.exceptions import AirflowException, AirflowSkipException

    context = RunContext(**ctx)
    if stage not in pipeline.stage_names(pipeline.policy_of(context)):
        raise AirflowSkipException(f"{stage}: not in this service's policy")
    result = pipeline.run_stage(context, stage, env)
    if result.status is Status.error:
        raise AirflowException(f"{stage}: {result.error}")
    return {"stage": result.stage, "status": result.status.value, "summary": result.summary}


def stop(ctx: dict, env: dict | None) -> str:
    return pipeline.finish(RunContext(**ctx), env)


def conclude(ctx: dict) -> dict:
    return pipeline.conclude(RunContext(**ctx)).as_json()


def notify(ctx: dict, outcome: dict) -> str:
    context = RunContext(**ctx)
    return pipeline.notify(context, pipeline.load_outcome(context))


def _saved(ctx: dict, stage: str):
    return next((r for r in pipeline.load_results(RunContext(**ctx)) if r.stage == stage), None)


def verdict_json(ctx: dict) -> dict:
    """The DAG's result: the same object `releasegate run --json` prints, with the notification's outcome."""
    context = RunContext(**ctx)
    outcome = pipeline.load_outcome(context)
    outcome.notification = pipeline.notification_status(context)
    return outcome.as_json()


def enforce(outcome: dict) -> str:
    """GO passes; NO_GO and INCONCLUSIVE fail the task (not retried), so the DAG run's state is the answer."""
    from airflow.sdk.exceptions import AirflowFailException

    decision = outcome["decision"]
    if decision == "GO":
        log.info("GO for %s %s", outcome["service"], outcome["version"])
        return decision
    reasons = outcome.get("reasons", [])
    top = "; ".join(f"[{r['severity']}] {r['stage']}: {r['message']}" for r in reasons[:3])
    more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
    raise AirflowFailException(f"{decision} for {outcome['service']} {outcome['version']}: {top}{more} — "
                               f"report: {outcome.get('report', '')}")
