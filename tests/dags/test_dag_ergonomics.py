"""What operators meet in the Airflow UI: every task has a ceiling, mapped tasks are named after their stage, the
trigger form offers examples, a GO's asset event says what is ready, and the documented consumer DAG parses."""

import re
from datetime import timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "release_gate.py"
CONSUMER_DOC = ROOT / "docs" / "airflow.md"
STAGE_TASKS = {"provision", "run_suite", "run_check", "measure", "load_test", "chaos", "scan_semgrep",
               "scan_pip_audit", "alert_thresholds", "stop_service"}


@pytest.fixture(scope="module")
def dag(tmp_path_factory):
    import os

    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home-ergonomics")))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["release_gate"]


def test_every_task_has_an_execution_timeout_and_stages_get_the_generous_one(dag):
    timeouts = {t.task_id: t.execution_timeout for t in dag.tasks}
    assert all(isinstance(t, timedelta) and t > timedelta(0) for t in timeouts.values()), timeouts
    stage_ceiling = {timeouts[t] for t in STAGE_TASKS}
    assert stage_ceiling == {timedelta(hours=4)}
    assert all(timeouts[t] < timedelta(hours=4) for t in timeouts if t not in STAGE_TASKS)


def test_mapped_tasks_are_named_after_their_stage(dag):
    for task_id in ("run_suite", "run_check", "measure"):
        assert dag.get_task(task_id).map_index_template == "{{ stage }}"


def test_the_trigger_form_offers_examples(dag):
    for name in ("service", "version", "policy"):
        examples = dag.params.get_param(name).schema["examples"]
        assert examples and all(isinstance(e, str) for e in examples)
    assert "include/demo/gate.yaml" in dag.params.get_param("policy").schema["examples"]


def test_a_go_emits_the_release_ready_asset(dag):
    [asset] = dag.get_task("notify_go").outlets
    assert asset.name == "releasegate_release_ready"
    assert not dag.get_task("notify_no_go").outlets


def consumer_dag_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", CONSUMER_DOC.read_text(), flags=re.S)
    return next(b for b in blocks if "releasegate_release_ready" in b)


def test_the_documented_consumer_dag_parses_and_is_scheduled_on_the_asset(tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "deploy_on_release_ready.py").write_text(consumer_dag_source())
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    [consumer] = bag.dags.values()
    assert [asset.name for asset in consumer.timetable.asset_condition.objects] == ["releasegate_release_ready"]
