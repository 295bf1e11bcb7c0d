"""docker-compose.yml (production, not runnable here: no Docker engine) and scripts/cluster.py (the same
topology as real processes, which the real-engine tests run) agree on every setting the verdict depends on."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _cluster():
    spec = importlib.util.spec_from_file_location("cluster", ROOT / "scripts" / "cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dag_constants() -> dict[str, str]:
    text = (ROOT / "dags" / "release_gate.py").read_text()
    return dict(re.findall(r'^(HOST_POOL|HOST_SLOTS) = "?([A-Za-z0-9_]+)"?', text, re.M))


def test_pool_and_queue_are_the_dags():
    cluster, dag = _cluster(), _dag_constants()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    init = " ".join(compose["services"]["airflow-init"]["command"])
    assert (cluster.POOL, str(cluster.POOL_SLOTS)) == (dag["HOST_POOL"], dag["HOST_SLOTS"])
    assert f"pools set {cluster.POOL} {cluster.POOL_SLOTS} " in init
    env = compose["x-airflow"]["environment"]
    assert env["RELEASEGATE_SERVICE_QUEUE"] == cluster.SERVICE_QUEUE


def test_one_worker_serves_the_service_queue_and_the_rest_scale():
    cluster = _cluster()
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    queues = {name: s["command"][s["command"].index("--queues") + 1] for name, s in services.items()
              if "worker" in s.get("command", [])}
    assert queues == {"airflow-worker": "default", "airflow-service-worker": f"default,{cluster.SERVICE_QUEUE}"}


def test_cluster_settings_match_compose(tmp_path):
    cluster = _cluster()
    state = {"executor": "CeleryExecutor", "api_port": 1, "log_port": 2, "jwt_secret": "x", "redis_db": 3,
             "metadata_url": "postgresql+psycopg2://postgres@127.0.0.1:5432/a", "gate_url": "sqlite://"}
    ours = cluster.settings(tmp_path, state)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-airflow"]["environment"]
    shared = ["AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
              "AIRFLOW__CORE__PARALLELISM", "AIRFLOW__CELERY__WORKER_CONCURRENCY", "RELEASEGATE_SERVICE_QUEUE"]
    assert {k: ours[k] for k in shared} == {k: str(compose[k]) for k in shared}
