"""The chaos stage end to end on the demo: the gate starts the warehouse behind its fault proxy, inventory
in front of it, runs the Chaos Toolkit experiments and leaves no process behind.

1.0.0 times out after 300 ms and serves the last known stock: its steady state holds. 1.1.0 has no timeout
and no fallback: its steady state deviates. Rollbacks run in both.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest

from releasegate.context import close_run, open_run
from releasegate.domain.models import Status
from releasegate.environment import Environment, provision, teardown
from releasegate.policy import load_policy
from releasegate.stages import chaos

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "include" / "demo"
EXPERIMENTS = ("warehouse-down", "warehouse-slow")


def write_policy(folder: Path, experiments: dict[str, str] | None = None) -> Path:
    experiments = experiments or {name: str(DEMO / "chaos" / f"{name}.yaml") for name in EXPERIMENTS}
    listed = "\n".join(f"    - {{name: {name}, file: '{file}'}}" for name, file in experiments.items())
    policy = folder / "gate.yaml"
    policy.write_text(f"""\
service: inventory
source: {{path: "{DEMO}/releases/{{version}}"}}
environment:
  setup: ["{{python}} -m inventory.migrate"]
  start: "{{python}} -m flask --app inventory:create_app run --host {{host}} --port {{port}} --no-reload"
  env: {{DATABASE_URL: "sqlite:///{{workdir}}/inventory.db", WAREHOUSE_URL: "{{dep_warehouse_url}}"}}
  health: {{url: "http://{{host}}:{{port}}/healthz", timeout_s: 30}}
  dependencies:
    - name: warehouse
      path: "{DEMO}/warehouse"
      start: "{{python}} -m flask --app warehouse:create_app run --host {{host}} --port {{port}} --no-reload"
      health: {{url: "http://{{host}}:{{port}}/healthz"}}
      proxy: true
chaos:
  timeout_s: 60
  experiments:
{listed}
""", encoding="utf-8")
    return policy


def gate_pids(env: Environment) -> list[tuple[int, float]]:
    pids = [(env.pid, env.pid_created)]
    for dep in env.dependencies:
        pids.append((dep.pid, dep.pid_created))
        if dep.proxy:
            pids.append((dep.proxy.pid, dep.proxy.pid_created))
    return pids


def alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - created) <= 1 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RELEASEGATE_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.mark.parametrize("version, holds", [("1.0.0", True), ("1.1.0", False)])
def test_steady_state_under_dependency_faults(home: Path, version: str, holds: bool):
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    policy = load_policy(write_policy(home))
    ctx = open_run(policy, version)
    env = provision(policy, ctx)
    pids = gate_pids(env)
    try:
        assert len(pids) == 3 and all(alive(*p) for p in pids)
        assert env.env["WAREHOUSE_URL"] == f"http://127.0.0.1:{env.dependencies[0].proxy.port}"
        started = time.monotonic()
        result = chaos.run(policy, ctx, env)
        seconds = time.monotonic() - started
    finally:
        teardown(env)
        close_run(ctx)

    outcomes = {name: chaos.parse_journal(json.loads((ctx.evidence / "chaos" / f"{name}.journal.json").read_text()))
                for name in EXPERIMENTS}
    timeline = json.loads((ctx.evidence / "chaos" / "timeline.json").read_text())
    assert result.status is (Status.passed if holds else Status.failed), result.error or result.summary
    assert all(o.steady_before for o in outcomes.values())
    assert all(o.steady_after is holds for o in outcomes.values())
    assert {f.rule for f in result.findings} == ({f"{n}:steady-state-deviated" for n in EXPERIMENTS} if not holds else set())
    assert all(f.blocking and f.severity.value == "high" for f in result.findings)
    assert all([a.status for a in o.rollbacks] == ["succeeded", "succeeded"] for o in outcomes.values())
    metrics = {m.name: m.value for m in result.metrics}
    assert metrics["chaos.warehouse-down.fault_error_rate"] == (0.0 if holds else 1.0)
    assert metrics["chaos.warehouse-slow.recovery_s"] < 5
    assert {e["kind"] for e in timeline} >= {"fault", "probe", "rollback"}
    assert seconds < 25
    assert not [p for p in pids if alive(*p)], "a process the gate started is still running after teardown"
    leftover = [p for p in psutil.Process().children(recursive=True) if p.pid not in children_before
                and p.status() != psutil.STATUS_ZOMBIE]
    assert not leftover, f"child processes left behind: {[(p.pid, p.cmdline()) for p in leftover]}"


def _idle_env() -> Environment:
    return Environment(host="127.0.0.1", port=9, base_url="http://127.0.0.1:9", pid=1, pid_created=0, log_path="-",
                       env={})


def test_an_experiment_that_does_not_parse_is_an_error(home: Path):
    broken = home / "broken.yaml"
    broken.write_text("method: [unclosed\n", encoding="utf-8")
    policy = load_policy(write_policy(home, {"broken": str(broken)}))
    ctx = open_run(policy, "1.0.0")

    result = chaos.run(policy, ctx, _idle_env())

    assert result.status is Status.error and "cannot be read" in result.error


def test_a_missing_chaos_binary_is_an_error(home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RELEASEGATE_CHAOS_BIN", str(home / "no-such-chaos"))
    policy = load_policy(write_policy(home))
    ctx = open_run(policy, "1.0.0")

    result = chaos.run(policy, ctx, _idle_env())

    assert result.status is Status.error and "no-such-chaos" in result.error


def test_without_a_running_service_it_is_an_error(home: Path):
    policy = load_policy(write_policy(home))
    result = chaos.run(policy, open_run(policy, "1.0.0"), None)
    assert result.status is Status.error and "running service" in result.error
