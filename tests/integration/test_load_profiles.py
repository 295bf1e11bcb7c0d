"""Each load profile against the real demo service (1.0.0) with real Locust, small and bounded in time.

The figures the gate parsed are checked against what Locust itself wrote: its final stats CSV and its
JSON report (per-second request counts).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import requests

from releasegate.context import RunContext
from releasegate.domain.models import Status
from releasegate.environment import Environment, free_port
from releasegate.policy import Policy
from releasegate.stages import load_profiles as lp
from releasegate.stages import locust_load

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "include" / "demo" / "releases" / "1.0.0"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    """The demo service on a free 127.0.0.1 port, started from a private copy and stopped by its pid."""
    work = tmp_path_factory.mktemp("demo")
    source = shutil.copytree(RELEASE, work / "svc")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{work / 'inventory.db'}"}
    subprocess.run([sys.executable, "-m", "inventory.migrate"], cwd=source, env=env, check=True, capture_output=True)
    port = free_port()
    log = open(work / "service.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "inventory:create_app", "run", "--host",
                             "127.0.0.1", "--port", str(port), "--no-reload"], cwd=source, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        yield source, Environment(host="127.0.0.1", port=port, base_url=f"http://127.0.0.1:{port}", pid=proc.pid,
                                  pid_created=psutil.Process(proc.pid).create_time(), log_path=str(log.name),
                                  env={})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    pytest.fail(f"the demo service did not become healthy at {url}")


def run_profile(service, tmp_path: Path, **load) -> tuple:
    source, env = service
    policy = Policy.model_validate({
        "service": "inventory", "environment": {"start": "unused", "health": {"url": "http://{host}:{port}/"}},
        "load": {"locustfile": "locustfile.py", "spawn_rate": 10, "min_requests": 20,
                 "budgets": {"p95_ms": 2000, "error_rate": 0.05}, **load}})
    ctx = RunContext(run_id="rg-test", service="inventory", version="1.0.0", policy_path=str(tmp_path / "gate.yaml"),
                     evidence_dir=str(tmp_path / "evidence"), workspace=str(source), started=datetime.now(UTC))
    result = locust_load.run(policy, ctx, env)
    assert result.status is not Status.error, result.error
    return result, ctx.evidence / "locust"


def locust_json(folder: Path) -> list[dict]:
    return json.loads((folder / "run1.json").read_text())


def locust_total(folder: Path) -> int:
    stats = locust_load.parse_stats_csv((folder / "run1_stats.csv").read_text())
    return stats[lp.AGGREGATED].requests


def assert_totals_match_locust(result, folder: Path) -> list[lp.HistoryRow]:
    """The gate's figures equal Locust's CSVs; its JSON (written at exit) may add the requests still in
    flight when the CSVs were written, never more than one second's worth."""
    rows = lp.parse_stats_history((folder / "run1_stats_history.csv").read_text())
    assert result.metric("requests").value == locust_total(folder) == lp.of_name(rows)[-1].requests
    per_second: dict[int, int] = {}
    for entry in locust_json(folder):
        for second, count in entry["num_reqs_per_sec"].items():
            per_second[int(second)] = per_second.get(int(second), 0) + count
    assert sum(per_second.values()) == sum(e["num_requests"] for e in locust_json(folder))
    assert 0 <= sum(per_second.values()) - locust_total(folder) <= max(per_second.values())
    return rows


def test_stress_steps_users_up_and_finds_the_breaking_point(service, tmp_path):
    result, folder = run_profile(service, tmp_path, profile="stress", budgets={"p95_ms": 1},
                                 stress={"start_users": 2, "step_users": 2, "step_duration_s": 3, "max_users": 6,
                                         "min_users_before_break": 4})
    doc = json.loads((folder / "stress-steps.json").read_text())
    rows = assert_totals_match_locust(result, folder)
    # p95 of 1 ms cannot hold: the service breaks at the first step, below the 4 users required
    assert doc["breaking_users"] == 2 and doc["capacity"] is None
    finding = next(f for f in result.findings if f.rule == "stress-breaking-point")
    assert finding.blocking and result.status is Status.failed
    assert [s["users"] for s in doc["steps"]] == [2, 4, 6]
    # against Locust's own numbers: the total, and each step within its rows of the history
    assert sum(s["requests"] for s in doc["steps"]) <= locust_total(folder)
    for step in doc["steps"]:
        mine = [r for r in lp.of_name(rows) if r.users == step["users"]]
        assert min(r.p95_ms for r in mine) <= step["p95_ms"] <= max(r.p95_ms for r in mine)
        assert mine[-1].timestamp - rows[0].timestamp == step["end_s"]
    assert (folder / "run1-report.html").stat().st_size > 0 and (folder / "series.json").is_file()


def test_soak_measures_drift_and_the_service_memory(service, tmp_path):
    result, folder = run_profile(service, tmp_path, profile="soak", users=4, duration_s=12,
                                 soak={"window_s": 4, "max_p95_drift_ratio": 20, "max_memory_growth_mb": 500})
    doc = json.loads((folder / "soak.json").read_text())
    assert result.status is Status.passed, result.summary
    assert len(doc["windows"]) >= 2 and result.metric("soak.p95_drift_ratio").passed is True
    assert doc["memory"]["first_mb"] > 5 and doc["memory"]["samples"] >= 8  # sampled every second for ~12 s
    assert doc["memory"]["max_mb"] >= max(doc["memory"]["first_mb"], doc["memory"]["last_mb"])
    assert_totals_match_locust(result, folder)
    assert sum(w["requests"] for w in doc["windows"]) <= locust_total(folder)


def test_distributed_load_runs_workers_and_still_writes_its_reports(service, tmp_path):
    result, folder = run_profile(service, tmp_path, users=4, duration_s=5, distributed={"workers": 2})
    assert result.status is Status.passed and result.attempts == 1, result.summary
    assert "--processes 2" in (folder / "run1.log").read_text()
    assert_totals_match_locust(result, folder)
    assert (folder / "run1-report.html").stat().st_size > 0
    series = json.loads((folder / "series.json").read_text())
    assert series["requests"][-1] <= locust_total(folder) and max(series["users"]) == 4
