"""The release_gate DAG itself (`airflow dags test`, embedded Airflow on SQLite) reaches the same verdicts
as the CLI on both demo releases."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.demo import ROOT

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "RELEASEGATE_HOME": str(tmp_path_factory.mktemp("dag-home"))}
    env.pop("RELEASEGATE_DB_URL", None)
    migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True,
                             timeout=300, check=False)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    return env


def dag_verdict(env: dict[str, str], version: str) -> tuple[dict, str, int]:
    conf = json.dumps({"service": "inventory", "version": version, "policy": "include/demo/gate.yaml"})
    proc = subprocess.run([str(BIN / "airflow"), "dags", "test", "release_gate", "-c", conf], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
    evidence = Path(env["RELEASEGATE_HOME"]) / "evidence" / "inventory" / version
    runs = sorted(evidence.iterdir(), key=lambda p: p.stat().st_mtime)
    assert runs, f"the DAG run left no evidence under {evidence}"
    return json.loads((runs[-1] / "verdict.json").read_text()), proc.stdout + proc.stderr, proc.returncode


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_dag_and_cli_reach_the_same_verdict(airflow_env, demo_cli_runs, version):
    from_dag, task_log, code = dag_verdict(airflow_env, version)
    cli_code, from_cli = demo_cli_runs[version]
    assert from_dag["decision"] == from_cli["decision"]
    assert code == (0 if from_dag["decision"] == "GO" else 1), "the DAG run's state is the answer: failed unless GO"
    assert {r["fingerprint"] for r in from_dag["reasons"]} == {r["fingerprint"] for r in from_cli["reasons"]}
    assert from_dag["run_id"].startswith("release_gate__")
    assert Path(from_dag["report"]).is_file()
    assert "canary-Zq8v41xT" not in task_log, "a secret printed by a failing test reached the task log"
    suites = operator_view(airflow_env, from_dag["run_id"].removeprefix("release_gate__"))
    assert {"pytest[unit]", "pytest[integration]"} <= suites["map_names"], "mapped suites named by stage"
    if from_dag["decision"] == "GO":
        [extra] = suites["release_ready"]
        assert extra == {**extra, "service": "inventory", "version": version, "decision": "GO",
                         "run_id": from_dag["run_id"]}
    else:
        assert suites["release_ready"] == []
        assert "::group::pytest[unit]: 3 failing test(s)" in task_log and "::endgroup::" in task_log


def operator_view(env: dict[str, str], airflow_run_id: str) -> dict:
    """What the UI shows of a run, from Airflow's own database: mapped suites' names and the asset events."""
    import sqlite3

    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        names = {row[0] for row in db.execute(
            "SELECT rendered_map_index FROM task_instance WHERE run_id = ? AND task_id = 'run_suite'",
            (airflow_run_id,))}
        events = [json.loads(row[0]) for row in db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name = 'releasegate_release_ready' AND e.source_run_id = ?", (airflow_run_id,))]
    return {"map_names": names, "release_ready": events}
