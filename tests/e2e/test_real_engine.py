"""The verdict on Airflow's real engine: `scripts/cluster.py` starts the topology as real processes on loopback
(PostgreSQL metadata, LocalExecutor; CeleryExecutor on Redis with two workers), `releasegate trigger --wait`
asks it for the verdict, and both demo releases get the decision and the reasons `releasegate run` gets.
The DAG run's state is the answer (success for GO only), measurements never overlap any other task of any
gate run, and nothing started is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
import requests

from tests.support.demo import ROOT, processes_under

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
CLUSTER = ROOT / "scripts" / "cluster.py"
MEASURING = {"load_test", "chaos"}


def _exports(text: str) -> dict[str, str]:
    import shlex

    pairs = (shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in text.splitlines()
             if line.startswith("export "))
    return dict(pairs)




@pytest.fixture(scope="module", params=["local", "celery"])
def cluster(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(f"cluster-{request.param}")
    args = ["--executor", request.param, "--home", str(home)] + (["--workers", "2"] if request.param == "celery" else [])
    up = subprocess.run([sys.executable, str(CLUSTER), "up", *args], capture_output=True, text=True, timeout=600,
                        check=False)
    try:
        assert up.returncode == 0, up.stderr[-4000:]
        yield {"executor": request.param, "home": home, "env": {**os.environ, **_exports(up.stdout)}}
    finally:
        state = json.loads((home / "cluster.json").read_text()) if (home / "cluster.json").is_file() else {}
        down = subprocess.run([sys.executable, str(CLUSTER), "down", "--home", str(home)], capture_output=True,
                              text=True, timeout=300, check=False)
        assert down.returncode == 0, down.stderr[-3000:]
        assert not [p for p in state.get("processes", []) if psutil.pid_exists(p["pid"])
                    and abs(psutil.Process(p["pid"]).create_time() - p["created"]) < 1]
        assert processes_under(home) == []


def trigger(env: dict[str, str], version: str, policy: str = "include/demo/gate.yaml") -> tuple[int, dict]:
    proc = subprocess.run([str(BIN / "releasegate"), "trigger", "--service", "inventory", "--version", version,
                           "--policy", policy, "--wait", "--json", "--timeout", "900"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1000, check=False)
    assert proc.stdout.strip(), f"no JSON (exit {proc.returncode}): {proc.stderr[-3000:]}"
    return proc.returncode, json.loads(proc.stdout)


def task_instances(env: dict[str, str], run_id: str = "~") -> list[dict]:
    url = env["RELEASEGATE_AIRFLOW_URL"]
    token = requests.post(f"{url}/auth/token", json={"username": env["RELEASEGATE_AIRFLOW_USERNAME"],
                                                     "password": env["RELEASEGATE_AIRFLOW_PASSWORD"]},
                          timeout=60).json()["access_token"]
    response = requests.get(f"{url}/api/v2/dags/release_gate/dagRuns/{quote(run_id, safe='~')}/taskInstances",
                            params={"limit": 1000}, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    response.raise_for_status()
    return response.json()["task_instances"]


def _window(ti: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"])


def overlaps_with_measurements(tis: list[dict]) -> list[str]:
    """Every pair (measuring task, other task of the host pool) whose run times overlap, across all runs."""
    ran = [ti for ti in tis if ti["start_date"] and ti["end_date"] and ti["pool"] == "releasegate_host"]
    clashes = []
    for measuring in (ti for ti in ran if ti["task_id"] in MEASURING):
        start, end = _window(measuring)
        for other in ran:
            if other is measuring:
                continue
            other_start, other_end = _window(other)
            if other_start < end and start < other_end:
                clashes.append(f"{measuring['dag_run_id']}/{measuring['task_id']} with "
                               f"{other['dag_run_id']}/{other['task_id']}[{other['map_index']}]")
    return clashes


def test_both_demo_releases_get_the_cli_verdict_and_measurements_run_alone(cluster, demo_cli_runs):
    versions = ["1.0.0", "1.1.0"]
    if cluster["executor"] == "celery":  # two runs at once on one host
        with ThreadPoolExecutor(2) as pool:
            answers = dict(zip(versions, pool.map(lambda v: trigger(cluster["env"], v), versions)))
    else:
        answers = {v: trigger(cluster["env"], v) for v in versions}

    for version, expected_exit, expected_state in (("1.0.0", 0, "success"), ("1.1.0", 1, "failed")):
        code, data = answers[version]
        cli_code, cli = demo_cli_runs[version]
        assert (code, data["decision"], data["dag_run_state"]) == (expected_exit, cli["decision"], expected_state)
        assert cli_code == expected_exit
        assert {r["fingerprint"] for r in data["reasons"]} == {r["fingerprint"] for r in cli["reasons"]}
        assert data["dag_run_id"] and Path(data["report"]).is_file()
    assert overlaps_with_measurements(task_instances(cluster["env"])) == []


def test_a_run_that_cannot_start_or_a_refused_login_exits_2_with_the_cause(cluster, tmp_path):
    bad = tmp_path / "gate.yaml"
    bad.write_text("service: inventory\nsuites_typo: []\n")
    code, data = trigger(cluster["env"], "1.0.0", policy=str(bad))
    assert (code, data["decision"]) == (2, None)
    assert "could not start" in data["error"] and "suites_typo" in data["error"], data["error"]

    code, data = trigger({**cluster["env"], "RELEASEGATE_AIRFLOW_PASSWORD": "not-the-password"}, "1.0.0")
    assert (code, data["decision"]) == (2, None)
    assert "/auth/token" in data["error"] and "HTTP 401" in data["error"], data["error"]


def _api(env: dict[str, str], user: str, password: str):
    url = env["RELEASEGATE_AIRFLOW_URL"]
    token = requests.post(f"{url}/auth/token", json={"username": user, "password": password},
                          timeout=60).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return url, session


def _state(url: str, api, run_id: str, task_id: str | None = None) -> str:
    path = f"{url}/api/v2/dags/release_gate/dagRuns/{quote(run_id, safe='')}"
    response = api.get(path + (f"/taskInstances/{task_id}" if task_id else ""), timeout=60)
    response.raise_for_status()
    return response.json()["state"]


def test_an_inconclusive_run_waits_for_a_person_who_did_not_trigger_it(cluster, tmp_path):
    """Three INCONCLUSIVE runs at once, each waiting in Airflow's approval step: another user approves (GO), the
    user who triggered it approves (refused: INCONCLUSIVE), nobody answers (the deadline rejects: INCONCLUSIVE).
    The answers go through Airflow's own HITL API; the audit trail names the Airflow users."""
    from sqlalchemy import create_engine, text

    from tests.support.faults import tiny_policy

    env = cluster["env"]
    policy = tiny_policy(tmp_path, environment=False, extra={
        "service": "inventory", "suites": [{"name": "unit", "paths": ["tests"]}, {"name": "gone", "paths": ["nope"]}]})
    url, admin = _api(env, env["RELEASEGATE_AIRFLOW_USERNAME"], env["RELEASEGATE_AIRFLOW_PASSWORD"])
    _, approver = _api(env, env["RELEASEGATE_CLUSTER_APPROVER"], env["RELEASEGATE_CLUSTER_APPROVER_PASSWORD"])
    runs = {}
    for case, minutes in (("approved", 10), ("self", 10), ("silence", 0.1)):  # as the release train triggers
        proc = subprocess.run([str(BIN / "releasegate"), "trigger", "--service", "inventory", "--version", "1.0.0",
                               "--policy", str(policy), "--json", "--approval-timeout-minutes", str(minutes)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[case] = json.loads(proc.stdout)["dag_run_id"]

    deadline = time.monotonic() + 600
    answered, waiting_since = set(), {}
    while len(answered) < 2:
        assert time.monotonic() < deadline, {c: _state(url, admin, r) for c, r in runs.items()}
        for case, who in (("approved", approver), ("self", admin)):
            if case not in answered and _state(url, admin, runs[case], "ask_approval") == "awaiting_input":
                # answer as a person would, not within the second the step parks: Airflow 3.3 fails a task whose
                # answer lands before its executor has reported the park (decision 0018)
                if time.monotonic() - waiting_since.setdefault(case, time.monotonic()) < 5:
                    continue
                hitl = f"{url}/api/v2/dags/release_gate/dagRuns/{quote(runs[case], safe='')}/taskInstances/ask_approval/-1/hitlDetails"
                response = who.patch(hitl, json={"chosen_options": ["Approve"], "params_input": {}}, timeout=60)
                assert response.status_code == 200, response.text
                answered.add(case)
        time.sleep(1)
    while {_state(url, admin, r) for r in runs.values()} - {"success", "failed"}:
        assert time.monotonic() < deadline, {c: _state(url, admin, r) for c, r in runs.items()}
        time.sleep(2)

    assert {case: _state(url, admin, run) for case, run in runs.items()} == {
        "approved": "success", "self": "failed", "silence": "failed"}
    engine = create_engine(env["RELEASEGATE_DB_URL"])
    with engine.connect() as connection:
        verdicts = dict(connection.execute(text("SELECT run_id, decision FROM verdicts")).all())
        events = connection.execute(text("SELECT run_id, kind, actor FROM audit_events WHERE kind LIKE 'run.approv%'"
                                         " ORDER BY id")).all()
    engine.dispose()
    gate = {case: f"release_gate__{run}" for case, run in runs.items()}
    assert [verdicts[gate[c]] for c in ("approved", "self", "silence")] == ["GO", "INCONCLUSIVE", "INCONCLUSIVE"]
    assert sorted((kind, actor) for run_id, kind, actor in events if run_id in gate.values()) == [
        ("run.approval_refused", env["RELEASEGATE_AIRFLOW_USERNAME"]), ("run.approval_rejected", None),
        ("run.approved", env["RELEASEGATE_CLUSTER_APPROVER"])]


def test_down_while_a_run_measures_leaves_nothing_running(cluster):
    """Last in the module: it ends the cluster (the fixture's own `down` then finds nothing to do)."""
    env = cluster["env"]
    proc = subprocess.run([str(BIN / "releasegate"), "trigger", "--service", "inventory", "--version", "1.0.0",
                           "--policy", "include/demo/gate.yaml", "--json"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    run_id = json.loads(proc.stdout)["dag_run_id"]
    deadline = time.monotonic() + 600
    while not any(ti["task_id"] == "load_test" and ti["state"] == "running" for ti in task_instances(env, run_id)):
        assert time.monotonic() < deadline, "the load test never started"
        time.sleep(1)
    down = subprocess.run([sys.executable, str(CLUSTER), "down", "--home", str(cluster["home"])],
                          capture_output=True, text=True, timeout=300, check=False)
    assert down.returncode == 0, down.stderr[-3000:]
    assert processes_under(cluster["home"]) == []
