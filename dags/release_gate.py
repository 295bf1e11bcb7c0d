"""release_gate: proves, with evidence, whether a service version is ready to ship (GO / NO-GO).

Trigger with conf {"service": ..., "version": ..., "policy": ...}. Each task is one call into the
`releasegate` core; nothing heavy is imported, read or connected when this file is parsed.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Asset, Param, dag, setup, task, teardown

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE_READY = Asset("releasegate_release_ready")
TOOL_RETRIES = {"retries": 1, "retry_delay": timedelta(seconds=5), "retry_exponential_backoff": True}

DOC = """
### release_gate
Runs a service's suites, load test, scans and alert-rule tests against its `gate.yaml` and decides
**GO**, **NO_GO** or **INCONCLUSIVE** (the gate could not decide: fix its inputs). Evidence, the HTML
report and `evidence.json` land in the folder the `open_run` task logs. Tool errors are retried once;
test failures never are (failing tests are rerun inside the suite task to tell flaky from real).
"""


@dag(
    dag_id="release_gate",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=4,
    tags=["release", "quality-gate"],
    doc_md=DOC,
    params={
        "service": Param("inventory", type="string", minLength=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                         description="The service to gate; must match the policy's `service`."),
        "version": Param("1.0.0", type="string", minLength=1, pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$",
                         description="The version to gate, e.g. 1.4.2."),
        "policy": Param("include/demo/gate.yaml", type="string", minLength=1,
                        description="The service's gate.yaml: absolute, or relative to the gate's repository."),
    },
)
def release_gate():
    @task(retries=0)
    def open_run(params=None, dag_run=None) -> dict:
        from releasegate.airflow_glue import open_run as begin

        return begin(params, dag_run.dag_id, dag_run.run_id, REPO_ROOT)

    @task
    def plan_suites(ctx: dict) -> list[str]:
        from releasegate.airflow_glue import planned

        return planned(ctx, "suites")

    @setup
    @task(**TOOL_RETRIES)
    def provision(ctx: dict) -> dict | None:
        from releasegate.airflow_glue import provision as start

        return start(ctx)

    @task(**TOOL_RETRIES)
    def run_suite(ctx: dict, env: dict | None, stage: str) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, stage, env)

    @task(**TOOL_RETRIES)
    def load_test(ctx: dict, env: dict | None) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, "locust", env)

    @task(**TOOL_RETRIES)
    def chaos(ctx: dict, env: dict | None) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, "chaos", env)

    @task(**TOOL_RETRIES)
    def scan_semgrep(ctx: dict) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, "semgrep", None)

    @task(**TOOL_RETRIES)
    def scan_pip_audit(ctx: dict) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, "pip-audit", None)

    @task(**TOOL_RETRIES)
    def alert_thresholds(ctx: dict) -> dict:
        from releasegate.airflow_glue import run_stage

        return run_stage(ctx, "alerts", None)

    @teardown
    @task
    def stop_service(ctx: dict, env: dict | None) -> str:
        from releasegate.airflow_glue import stop

        return stop(ctx, env)

    @task(trigger_rule="all_done")
    def compile_report(ctx: dict) -> dict:
        from releasegate.airflow_glue import conclude

        return conclude(ctx)

    @task.branch
    def decide(outcome: dict) -> str:
        return "notify_go" if outcome["decision"] == "GO" else "notify_no_go"

    @task(outlets=[RELEASE_READY])
    def notify_go(ctx: dict, outcome: dict) -> str:
        from releasegate.airflow_glue import notify

        return notify(ctx, outcome)

    @task
    def notify_no_go(ctx: dict, outcome: dict) -> str:
        from releasegate.airflow_glue import notify

        return notify(ctx, outcome)

    ctx = open_run()
    env = provision(ctx)
    suites = run_suite.partial(ctx=ctx, env=env).expand(stage=plan_suites(ctx))
    load = load_test(ctx, env)
    faults = chaos(ctx, env)
    [suites, load] >> faults  # faults would distort measurements and tests: never at the same time
    scans = [scan_semgrep(ctx), scan_pip_audit(ctx), alert_thresholds(ctx)]
    stopped = stop_service(ctx, env)
    [suites, load, faults] >> stopped
    outcome = compile_report(ctx)
    [suites, load, faults, *scans] >> outcome
    stopped >> outcome
    decide(outcome) >> [notify_go(ctx, outcome), notify_no_go(ctx, outcome)]


release_gate()
