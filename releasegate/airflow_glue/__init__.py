"""Where the gate meets Airflow: what the DAG's tasks call (one function per task, turning XCom dicts into the
core's types and back), and the one place the gate asks Airflow for a connection (one function per connection,
through the Task SDK's ``Connection.get``, which asks every configured secrets backend).

Imports airflow and the pipeline only inside functions: the core never needs a scheduler, and the gate database
and Slack can ask for their connections without loading the gate.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from releasegate.context import RunContext
from releasegate.domain.errors import PolicyError
from releasegate.domain.models import Status

if TYPE_CHECKING:
    from airflow.sdk import Connection

log = logging.getLogger("releasegate")

GATE_DB_CONNECTION = "releasegate_db"


def open_run(params: dict, dag_id: str, run_id: str, repo_root: Path, stage_timeout: timedelta | None = None) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from releasegate import pipeline
    from releasegate.airflow_glue.timeouts import over_ceiling

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
    too_long = over_ceiling(pipeline.policy_of(ctx), stage_timeout) if stage_timeout else []
    if too_long:
        raise AirflowFailException(f"policy error (not retried): {'; '.join(too_long)}")
    return ctx.model_dump(mode="json")


def planned(ctx: dict, what: str) -> list[str]:
    """The stages of this run one of the DAG's planning tasks maps over (releasegate/stages/registry.py):
    ``suites`` (run_suite), ``checks`` (run_check: registered stages without a task of their own that do not
    measure) and ``measures`` (measure: those that do, one at a time after chaos); anything else: every stage."""
    from releasegate import pipeline
    from releasegate.stages import registry

    plans = registry.planned(pipeline.policy_of(RunContext(**ctx)))
    chosen = {"suites": [p for p in plans if p.stage.task_id == "run_suite"],
              "checks": [p for p in plans if not p.stage.task_id and not p.stage.measures],
              "measures": [p for p in plans if not p.stage.task_id and p.stage.measures]}.get(what, plans)
    return [p.name for p in chosen]


def provision(ctx: dict) -> dict | None:
    from airflow.sdk.exceptions import AirflowException

    from releasegate import pipeline

    env = pipeline.provision_service(RunContext(**ctx))
    result = _saved(ctx, pipeline.PROVISION)
    if result is not None and result.status is Status.error:
        raise AirflowException(f"provision: {result.error}")
    return for_xcom(env) if env else None


def for_xcom(env) -> dict:
    """The environment as the next tasks get it, through Airflow's database: without its secret values (the
    stages fill the service's environment in again from the policy; teardown needs only the pids)."""
    from releasegate.redact import redact, remember_env

    remember_env(env.env)
    data = env.model_dump(mode="json")
    data["env"] = {name: redact(value) for name, value in data["env"].items()}
    return data


def run_stage(ctx: dict, stage: str, env: dict | None) -> dict:
    """Run a planned stage; a stage the policy does not plan is skipped; a tool error fails the task (retried)."""
    from airflow.sdk.exceptions import AirflowException, AirflowSkipException

    from releasegate import pipeline
    from releasegate.airflow_glue.log_groups import emit, log_groups

    _name_map_index(stage)
    context = RunContext(**ctx)
    if stage not in pipeline.stage_names(pipeline.policy_of(context)):
        raise AirflowSkipException(f"{stage}: not in this service's policy")
    result = pipeline.run_stage(context, stage, env)
    emit(log_groups(result), log)
    if result.status is Status.error:
        raise AirflowException(f"{stage}: {result.error}")
    return {"stage": result.stage, "status": result.status.value, "summary": result.summary}


def _name_map_index(stage: str) -> None:
    """The mapped tasks' `map_index_template` ("{{ stage }}") reads the stage's name from the task's context."""
    from airflow.sdk import get_current_context

    try:
        get_current_context()["stage"] = stage  # type: ignore[typeddict-unknown-key]
    except RuntimeError:  # called outside a running task (a test of the glue): nothing to name
        pass


def release_ready(ctx: dict, outcome: dict, airflow_run_id: str) -> dict:
    """The `releasegate_release_ready` asset event's extra: what a consumer needs to act on a GO (plain strings:
    an asset event's extra is JSON)."""
    return {"service": str(outcome.get("service", ctx["service"])),
            "version": str(outcome.get("version", ctx["version"])),
            "run_id": str(outcome.get("run_id", ctx["run_id"])), "airflow_run_id": airflow_run_id,
            "decision": str(outcome["decision"]), "report": str(outcome.get("report", ""))}


def stop(ctx: dict, env: dict | None) -> str:
    from releasegate import pipeline

    return pipeline.finish(RunContext(**ctx), env)


def conclude(ctx: dict) -> dict:
    """compile_report; safe to run again. A crash first records an INCONCLUSIVE verdict naming it, then fails the
    task; a verdict the gate database could not keep fails it too (Airflow retries both, and a retry that gets
    through replaces that verdict). The `verdict` task answers with what was kept either way."""
    from airflow.sdk.exceptions import AirflowException

    from releasegate import pipeline

    context = RunContext(**ctx)
    try:
        outcome = pipeline.conclude(context)
    except Exception as exc:
        pipeline.conclude_failed(context, exc)
        raise
    if not outcome.recorded:
        reasons = "; ".join(r.message for r in outcome.verdict.reasons if r.stage.startswith("gate:"))
        raise AirflowException(f"{outcome.verdict.decision.value} for {context.service} {context.version}, not "
                               f"recorded in the gate database: {reasons}")
    return outcome.as_json()


def notify(ctx: dict, outcome: dict) -> str:
    from releasegate import pipeline

    context = RunContext(**ctx)
    return pipeline.notify(context, pipeline.load_outcome(context))


def _saved(ctx: dict, stage: str):
    from releasegate import pipeline

    return next((r for r in pipeline.load_results(RunContext(**ctx)) if r.stage == stage), None)


def verdict_json(ctx: dict) -> dict:
    """The DAG's result: the same object `releasegate run --json` prints, with the notification's outcome.

    When compile_report left no verdict (it failed, or was stopped, before writing one) the answer is an
    INCONCLUSIVE verdict naming that, recorded where it still can be: the run never ends without one. A run whose
    open_run failed never started: there is nothing to answer for, and the task fails saying so."""
    from releasegate import pipeline

    if not ctx:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("no gate run to answer for: open_run failed before the run started (a policy "
                                   "error or an unreachable gate database) — its log names the cause")

    context = RunContext(**ctx)
    try:
        outcome = pipeline.load_outcome(context)
    except Exception as exc:  # noqa: BLE001 - no readable verdict.json: missing evidence is never a pass
        outcome = pipeline.conclude_failed(context, f"compile_report left no verdict (its task failed or was "
                                                    f"stopped: see its log); verdict.json: {pipeline.cause(exc)}")
    try:
        outcome.notification = pipeline.notification_status(context)
    except Exception as exc:  # noqa: BLE001 - the answer matters more than its notification's status
        outcome.notification = f"unknown: {pipeline.cause(exc)}"
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


def gate_database_connection() -> Connection | None:
    """The Airflow connection ``releasegate_db`` (the gate database), or None when there is none (see
    ``_connection_if_airflow``)."""
    return _connection_if_airflow(GATE_DB_CONNECTION)


def signing_key_connection() -> Connection | None:
    """The Airflow connection ``releasegate_signing_key`` (its password: the PEM key that signs the verdict's
    attestation), or None; asked as the gate database's is."""
    return _connection_if_airflow("releasegate_signing_key")


def _connection_if_airflow(conn_id: str) -> Connection | None:
    """The Airflow connection ``conn_id``, asked only inside an Airflow process (airflow already imported: a task,
    ``dag.test()``, a plugin) or when ``AIRFLOW_CONN_<CONN_ID>`` is set: a plain CLI process does not pay for
    importing Airflow (~3 s) just to find nothing. A connection that does not exist is None; a secrets backend
    that fails raises."""
    if "airflow" not in sys.modules and not os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        return None
    try:
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:
        return None
    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def slack_connection(conn_id: str) -> Connection | None:
    """The Airflow connection ``conn_id`` that holds the Slack bot token, or None.

    Asked only inside an Airflow task (Airflow exports ``AIRFLOW_CTX_*`` into a running task's environment).
    A connection that cannot be read (not found, no API server, a secrets backend down) is None, logged:
    Slack then counts as not configured.
    """
    if not os.environ.get("AIRFLOW_CTX_DAG_ID"):
        return None
    try:
        from airflow.sdk import Connection

        return Connection.get(conn_id)
    except Exception as exc:  # noqa: BLE001 (not found, no API server, backend down: "not configured")
        log.info("Slack: connection %r not usable (%s); treating Slack as not configured",
                 conn_id, type(exc).__name__)
        return None
