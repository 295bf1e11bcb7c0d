"""The DAG file parses fast and clean: no import errors, no connection lookups, no heavy imports at parse time."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "release_gate.py"

# Modules that must not load when the scheduler parses the DAG file (each costs I/O or seconds).
HEAVY = ("releasegate", "persistence", "locust", "semgrep", "pip_audit", "slack_sdk", "psycopg2", "requests",
         "yaml", "psutil", "alembic", "gevent")

PROBE = r"""
import json, runpy, sys
import pendulum
from airflow.sdk import Asset, Param, dag, setup, task, teardown
import airflow.sdk.definitions.connection as conn_mod
calls = []
def refuse(*args, **kwargs):
    calls.append(args)
    raise AssertionError("connection looked up at parse time")
conn_mod.Connection.get = classmethod(refuse)
before = set(sys.modules)
runpy.run_path(sys.argv[1], run_name="dag_parse_probe")
print(json.dumps({"new": sorted(set(sys.modules) - before), "lookups": len(calls)}))
"""


@pytest.fixture(scope="module")
def parse_probe(tmp_path_factory) -> dict:
    env_home = tmp_path_factory.mktemp("airflow-home")
    out = subprocess.run([sys.executable, "-c", PROBE, str(DAG_FILE)], capture_output=True, text=True, timeout=120, check=False,
                         env={"AIRFLOW_HOME": str(env_home), "PATH": "/usr/bin:/bin",
                              "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_parse_imports_nothing_heavy(parse_probe):
    heavy = [m for m in parse_probe["new"] if m.split(".")[0] in HEAVY]
    assert heavy == []


def test_parse_looks_up_no_connection(parse_probe):
    assert parse_probe["lookups"] == 0


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    import os

    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home-bag")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAG_FILE.parent))


def test_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "release_gate" in dagbag.dag_ids


def test_structure_setup_teardown_branch(dagbag):
    dag = dagbag.dags["release_gate"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert {"open_run", "provision", "run_suite", "load_test", "scan_semgrep", "scan_pip_audit", "alert_thresholds",
            "stop_service", "compile_report", "decide", "notify_go", "notify_no_go", "chaos"} <= set(tasks)
    assert tasks["provision"].is_setup and tasks["stop_service"].is_teardown
    assert tasks["compile_report"].trigger_rule == "all_done"
    assert set(tasks["decide"].downstream_task_ids) == {"notify_go", "notify_no_go"}
    assert tasks["notify_go"].outlets, "GO emits an asset event"
    assert tasks["open_run"].retries == 0, "a bad policy must fail at once, not be retried"


def test_params_have_a_schema(dagbag):
    params = dagbag.dags["release_gate"].params
    assert set(params) == {"service", "version", "policy", "approval_timeout_minutes"}
    assert params.get_param("version").schema["pattern"]
    approval = params.get_param("approval_timeout_minutes")
    assert (approval.value, approval.schema["minimum"], approval.schema["type"]) == (0, 0, "number")


def test_an_inconclusive_run_may_wait_for_a_person_and_the_answer_comes_after_it(dagbag):
    dag = dagbag.dags["release_gate"]
    ask = dag.get_task("ask_approval")

    assert (ask.options, ask.defaults, ask.multiple) == (["Approve", "Reject"], ["Reject"], False)  # silence rejects
    assert dag.get_task("wants_approval").upstream_task_ids == {"notify_no_go", "compile_report"}
    assert dag.get_task("settle_approval").upstream_task_ids >= {"ask_approval"}
    assert dag.get_task("settle_approval").trigger_rule == "all_success"  # only after an answer
    assert "settle_approval" in _upstream_closure(dag, "enforce_verdict")


def _upstream_closure(dag, task_id: str) -> set[str]:
    seen, todo = set(), [task_id]
    while todo:
        for up in dag.get_task(todo.pop()).upstream_task_ids:
            if up not in seen:
                seen.add(up)
                todo.append(up)
    return seen


def test_measurements_run_alone(dagbag):
    """Load and chaos take every slot of the host pool and start only after everything that touches the service
    or loads the host; chaos follows the load test."""
    dag = dagbag.dags["release_gate"]
    tasks = {t.task_id: t for t in dag.tasks}
    pool_size = max(t.pool_slots for t in dag.tasks if t.pool == "releasegate_host")
    for measuring in ("load_test", "chaos"):
        assert (tasks[measuring].pool, tasks[measuring].pool_slots) == ("releasegate_host", pool_size)
        assert {"run_suite", "scan_semgrep", "scan_pip_audit", "alert_thresholds"} <= _upstream_closure(dag, measuring)
    assert "load_test" in _upstream_closure(dag, "chaos")
    for work in ("provision", "run_suite", "scan_semgrep", "scan_pip_audit", "alert_thresholds", "compile_report"):
        assert (tasks[work].pool, tasks[work].pool_slots) == ("releasegate_host", 1)
    service_queue = {tasks[t].queue for t in ("provision", "run_suite", "load_test", "chaos", "stop_service")}
    assert len(service_queue) == 1, "every task that needs the service runs on the service's queue"


def test_the_run_state_and_result_are_the_verdict(dagbag):
    dag = dagbag.dags["release_gate"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert {t.task_id for t in dag.tasks if t.returns_dag_result} == {"verdict"}
    assert tasks["verdict"].trigger_rule == "all_done", "the verdict is read whatever happened before"
    assert tasks["enforce_verdict"].upstream_task_ids == {"verdict"}
    assert not tasks["enforce_verdict"].downstream_task_ids, "a leaf: its failure fails the run"
