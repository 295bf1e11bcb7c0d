"""release_gate: proves, with evidence, whether a service version is ready to ship (GO / NO-GO).

Trigger with conf {"service": ..., "version": ..., "policy": ...}. Each task is one call into the
`releasegate` core; nothing heavy is imported, read or connected when this file is parsed.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset, Param, dag, result, setup, task, teardown

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE_READY = Asset("releasegate_release_ready")
TOOL_RETRIES = {"retries": 1, "retry_delay": timedelta(seconds=5), "retry_exponential_backoff": True}

# Measurement isolation (docs/decisions/0007): every task that loads the host takes slots of one pool that
# `scripts/cluster.py` (and the compose init) creates with HOST_SLOTS slots. A task that measures the
# service takes all of them, so while it measures nothing else of this run, nor of another gate run, runs.
HOST_POOL = "releasegate_host"
HOST_SLOTS = 4
WORK = {"pool": HOST_POOL, "pool_slots": 1}
MEASURE = {"pool": HOST_POOL, "pool_slots": HOST_SLOTS, "priority_weight": 100, "weight_rule": "absolute"}
# Tasks that need the provisioned service run where it runs: a queue one worker per host serves (Celery);
# LocalExecutor ignores queues. Read from the environment, which costs nothing at parse time.
SERVICE_QUEUE = {"queue": os.environ.get("RELEASEGATE_SERVICE_QUEUE", "default")}
# execution_timeout (docs/decisions/0016): the policy is read only when a run starts, so a task's ceiling cannot
# come from it. Stage tasks get one generous ceiling (RELEASEGATE_STAGE_TIMEOUT_MINUTES, default 4 h): the policy's
# own tool timeouts stop a tool inside the task (an INCONCLUSIVE naming it), and open_run refuses a policy whose
# timeouts add up to more than the ceiling for some stage. The gate's own steps get short ceilings.
STAGE_TIMEOUT = timedelta(minutes=float(os.environ.get("RELEASEGATE_STAGE_TIMEOUT_MINUTES", "240")))
STAGE = {"execution_timeout": STAGE_TIMEOUT}
STEP = {"execution_timeout": timedelta(minutes=10)}
REPORT = {"execution_timeout": timedelta(minutes=30)}

DOC = """
### release_gate
Runs a service's suites, load test, scans and alert-rule tests against its `gate.yaml` and decides
**GO**, **NO_GO** or **INCONCLUSIVE** (the gate could not decide: fix its inputs). Evidence, the HTML
report and `evidence.json` land in the folder the `open_run` task logs. Tool errors are retried once;
test failures never are (failing tests are rerun inside the suite task to tell flaky from real).

The run ends **success** for GO only: NO_GO and INCONCLUSIVE fail the `enforce_verdict` task, whose log
names the decision and its top reasons. The `verdict` task is the DAG's result: the verdict JSON that
`GET /api/v2/dags/release_gate/dagRuns/{run_id}/wait` returns. Suites and scans run first, side by side;
the load test and then chaos measure alone (pool `releasegate_host`).
"""


class GateApproval(HITLOperator):
    """Airflow's human-in-the-loop step, asked only when a run needs it: its text and deadline come from the run
    (releasegate/airflow_glue/approval.py). No answer by the deadline picks Reject."""

    def __init__(self, **kwargs) -> None:
        super().__init__(subject="Release gate approval", options=["Approve", "Reject"], defaults=["Reject"],
                         multiple=False, response_timeout=timedelta(minutes=1), **kwargs)

    def execute(self, context):
        from releasegate.airflow_glue.approval import request

        outcome = context["ti"].xcom_pull(task_ids="compile_report")
        self.subject, self.body, self.response_timeout = request(outcome, context["params"], context["dag_run"])
        return super().execute(context)


def tell_slack_the_gate_broke(context) -> None:
    """on_failure_callback: a run that broke before it could tell its verdict (open_run, compile_report) still tells
    Slack, through the Slack provider's notifier (releasegate/notify/failure.py); imported only when called."""
    from releasegate.notify.failure import on_gate_failure

    on_gate_failure(context, REPO_ROOT)


@dag(
    dag_id="release_gate",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=4,
    tags=["release", "quality-gate"],
    doc_md=DOC,
    on_failure_callback=tell_slack_the_gate_broke,
    params={
        "service": Param("inventory", type="string", minLength=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                         examples=["inventory"],
                         description="The service to gate; must match the policy's `service`."),
        "version": Param("1.0.0", type="string", minLength=1, pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$",
                         examples=["1.0.0", "1.1.0", "1.2.0"],
                         description="The version to gate, e.g. 1.4.2."),
        "policy": Param("include/demo/gate.yaml", type="string", minLength=1,
                        examples=["include/demo/gate.yaml", "/srv/releases/inventory/gate.yaml"],
                        description="The service's gate.yaml: absolute, or relative to the gate's repository."),
        "approval_timeout_minutes": Param(0, type="number", minimum=0, maximum=10080, examples=[0, 60, 240],
                                          description="0: an INCONCLUSIVE run ends INCONCLUSIVE. Otherwise it waits "
                                                      "this long in `ask_approval` for an Airflow user other than "
                                                      "the one who triggered it to accept the missing evidence "
                                                      "(no answer rejects)."),
    },
)
def release_gate():
    @task(retries=0, **STEP)
    def open_run(params=None, dag_run=None) -> dict:
        from releasegate.airflow_glue import open_run as begin

        return begin(params, dag_run.dag_id, dag_run.run_id, REPO_ROOT, STAGE_TIMEOUT)

    @task(**STEP)
    def plan_suites(ctx: dict) -> list[str]:
        from releasegate.airflow_glue import planned

        return planned(ctx, "suites")

    @setup
    @task(**TOOL_RETRIES, **WORK, **SERVICE_QUEUE, **STAGE)
    def provision(ctx: dict) -> dict | None:
        from releasegate.airflow_glue import provision as start

        return start(ctx)

    @task(**TOOL_RETRIES, **WORK, **SERVICE_QUEUE, **STAGE, map_index_template="{{ stage }}")
    def run_suite(ctx: dict, env: dict | None, stage: str) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, stage, env)

    @task(**STEP)
    def plan_checks(ctx: dict) -> list[str]:
        from releasegate.airflow_glue import planned

        return planned(ctx, "checks")

    @task(**STEP)
    def plan_measures(ctx: dict) -> list[str]:
        from releasegate.airflow_glue import planned

        return planned(ctx, "measures")

    # A registered stage without a task of its own (releasegate/stages/registry.py) runs in one of these two
    # mapped tasks: checks beside the suites and scans, measurements alone and one at a time after chaos.
    @task(**TOOL_RETRIES, **WORK, **SERVICE_QUEUE, **STAGE, map_index_template="{{ stage }}")
    def run_check(ctx: dict, env: dict | None, stage: str) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, stage, env)

    @task(**TOOL_RETRIES, **MEASURE, **SERVICE_QUEUE, **STAGE, max_active_tis_per_dagrun=1,
          map_index_template="{{ stage }}")
    def measure(ctx: dict, env: dict | None, stage: str) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, stage, env)

    @task(**TOOL_RETRIES, **MEASURE, **SERVICE_QUEUE, **STAGE)
    def load_test(ctx: dict, env: dict | None) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, "locust", env)

    @task(**TOOL_RETRIES, **MEASURE, **SERVICE_QUEUE, **STAGE)
    def chaos(ctx: dict, env: dict | None) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, "chaos", env)

    @task(**TOOL_RETRIES, **WORK, **STAGE)
    def scan_semgrep(ctx: dict) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, "semgrep", None)

    @task(**TOOL_RETRIES, **WORK, **STAGE)
    def scan_pip_audit(ctx: dict) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, "pip-audit", None)

    @task(**TOOL_RETRIES, **WORK, **STAGE)
    def alert_thresholds(ctx: dict) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, "alerts", None)

    @teardown
    @task(**SERVICE_QUEUE, **STAGE)
    def stop_service(ctx: dict, env: dict | None) -> str:
        from releasegate.airflow_glue import stop

        return stop(ctx, env)

    @task(trigger_rule="all_done", retries=1, retry_delay=timedelta(seconds=5), **WORK, **REPORT)
    def compile_report(ctx: dict) -> dict:
        from releasegate.airflow_glue import conclude

        return conclude(ctx)

    @task.branch(**STEP)
    def decide(outcome: dict) -> str:
        return "notify_go" if outcome["decision"] == "GO" else "notify_no_go"

    @task(outlets=[RELEASE_READY], **STEP)
    def notify_go(ctx: dict, outcome: dict, outlet_events=None, dag_run=None) -> str:
        from releasegate.airflow_glue import notify, release_ready

        outlet_events[RELEASE_READY].extra = release_ready(ctx, outcome, dag_run.run_id)
        return notify(ctx, outcome)

    @task(**STEP)
    def notify_no_go(ctx: dict, outcome: dict) -> str:
        from releasegate.airflow_glue import notify

        return notify(ctx, outcome)

    @task.short_circuit(ignore_downstream_trigger_rules=False, **STEP)
    def wants_approval(outcome: dict, params=None) -> bool:
        from releasegate.airflow_glue.approval import wanted

        return wanted(outcome, params)

    @task(**REPORT)
    def settle_approval(ctx: dict, outcome: dict, ti=None, dag_run=None) -> dict:
        from releasegate.airflow_glue.approval import settle

        return settle(ctx, outcome, ti.xcom_pull(task_ids="ask_approval"), dag_run)

    @result
    @task(trigger_rule="all_done", **STEP)
    def verdict(ctx: dict) -> dict:
        from releasegate.airflow_glue import verdict_json

        return verdict_json(ctx)

    @task(**STEP)
    def enforce_verdict(outcome: dict) -> str:
        from releasegate.airflow_glue import enforce

        return enforce(outcome)

    ctx = open_run()
    env = provision(ctx)
    suites = run_suite.partial(ctx=ctx, env=env).expand(stage=plan_suites(ctx))
    scans = [scan_semgrep(ctx), scan_pip_audit(ctx), alert_thresholds(ctx),
             run_check.partial(ctx=ctx, env=env).expand(stage=plan_checks(ctx))]
    load = load_test(ctx, env)
    faults = chaos(ctx, env)
    more = measure.partial(ctx=ctx, env=env).expand(stage=plan_measures(ctx))
    # Measurements run alone: suites call the service and scans load the host, so both finish first;
    # chaos would distort the load test, so it comes after it (docs/decisions/0007).
    # A suite or scan that could not run must not cost the run its load evidence, yet the load test follows
    # them (and a setup's work tasks keep all_success): an empty marker (run by the scheduler itself) waits.
    [suites, *scans] >> EmptyOperator(task_id="before_load", trigger_rule="all_done", **STEP) >> load
    load >> EmptyOperator(task_id="before_chaos", trigger_rule="all_done", **STEP) >> faults
    faults >> EmptyOperator(task_id="before_more_measures", trigger_rule="all_done", **STEP) >> more
    stopped = stop_service(ctx, env)
    [suites, load, faults, scans[-1], more] >> stopped
    outcome = compile_report(ctx)
    [suites, load, faults, *scans, more] >> outcome
    stopped >> outcome
    told = [notify_go(ctx, outcome), notify_no_go(ctx, outcome)]
    decide(outcome) >> told
    # An INCONCLUSIVE run, told as such, may wait for a person (approval_timeout_minutes); settled, it is concluded
    # again. Skipped (not asked for, not needed) it changes nothing downstream: the verdict is read all_done.
    settled = settle_approval(ctx, outcome)
    told[1] >> wants_approval(outcome) >> GateApproval(task_id="ask_approval", **STEP) >> settled
    answer = verdict(ctx)
    [outcome, *told, settled] >> answer  # after the report's last attempt, whatever the notification did
    enforce_verdict(answer)


release_gate()
