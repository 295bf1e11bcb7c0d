"""Time to verdict on the real scheduler against a sequential script of the same tool commands.

    .venv/bin/python bench/time_to_verdict.py [--version 1.1.0] [--executor local|celery]

1. Starts the LocalExecutor topology (scripts/cluster.py) with RELEASEGATE_TRACE_COMMANDS set, so every
   tool run and background process of the gate is recorded (releasegate/trace.py).
2. Triggers demo 1.0.0 once to warm the workers up (a release train meets a running cluster), then the
   release under test with `releasegate trigger --wait`, and times that: the release train's wait.
3. Reads the task instances: the critical path is the longest chain of task durations through the DAG's
   dependencies (mapped instances run side by side, so a mapped task counts as its longest instance);
   Airflow's per-task overhead is what the run took beyond its tasks' own work.
4. Replays the recorded commands as a plain bash script, one after the other, with the same arguments,
   working folders and environment (the service and its dependency started in the background and
   waited for on their ports, as the gate does), and times it.
Prints the three times and the ratios. Goal: the scheduler no slower than the sequential script.
Version queries (`--version`) are left out of the script: they are the gate's bookkeeping, not stage work.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))


def cluster(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "cluster.py"), *args], env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return proc.stdout


def exports(text: str) -> dict[str, str]:
    return dict(shlex.split(line.removeprefix("export "))[0].split("=", 1)
                for line in text.splitlines() if line.startswith("export "))


def trigger(env: dict[str, str], version: str) -> dict:
    proc = subprocess.run([str(BIN / "releasegate"), "trigger", "--service", "inventory", "--version", version,
                           "--policy", "include/demo/gate.yaml", "--wait", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)
    if not proc.stdout.strip():
        raise SystemExit(f"trigger {version} printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def api_get(env: dict[str, str], path: str, **params) -> dict:
    import requests

    url = env["RELEASEGATE_AIRFLOW_URL"]
    token = requests.post(f"{url}/auth/token", json={"username": env["RELEASEGATE_AIRFLOW_USERNAME"],
                                                     "password": env["RELEASEGATE_AIRFLOW_PASSWORD"]},
                          timeout=10).json()["access_token"]
    response = requests.get(f"{url}/api/v2{path}", params=params, headers={"Authorization": f"Bearer {token}"},
                            timeout=30)
    response.raise_for_status()
    return response.json()


def critical_path(tasks: list[dict], tis: list[dict]) -> tuple[float, list[str]]:
    """The longest chain of task durations through the DAG (a mapped task: its longest instance)."""
    spans: dict[str, float] = {}
    for ti in tis:
        if ti["start_date"] and ti["end_date"]:
            seconds = (datetime.fromisoformat(ti["end_date"]) - datetime.fromisoformat(ti["start_date"])).total_seconds()
            spans[ti["task_id"]] = max(spans.get(ti["task_id"], 0.0), seconds)
    downstream = {t["task_id"]: t["downstream_task_ids"] for t in tasks}
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(task_id: str) -> tuple[float, list[str]]:
        if task_id not in best:
            tails = [longest(d) for d in downstream.get(task_id, [])]
            tail = max(tails, default=(0.0, []))
            best[task_id] = (spans.get(task_id, 0.0) + tail[0], [task_id, *tail[1]])
        return best[task_id]

    return max(longest(t) for t in downstream)


def per_task(tis: list[dict], trace: Path) -> list[tuple[str, float, float]]:
    """Each task instance's duration and the recorded tools' own seconds inside its window."""
    records = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    rows = []
    for ti in sorted((t for t in tis if t["start_date"] and t["end_date"]), key=lambda t: t["start_date"]):
        start = datetime.fromisoformat(ti["start_date"]).timestamp()
        end = datetime.fromisoformat(ti["end_date"]).timestamp()
        tools = sum(r["seconds"] or 0 for r in records if r["kind"] == "tool" and start <= r["started"] <= end)
        name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
        rows.append((name, end - start, tools))
    return rows


def script_from_trace(trace: Path) -> tuple[str, float]:
    """A bash script of the recorded work in the order it ran, and the tools' own total seconds."""
    records = sorted((json.loads(line) for line in trace.read_text().splitlines() if line.strip()),
                     key=lambda r: r["started"])
    lines = ["#!/usr/bin/env bash", "set -u", "pids=()", "trap 'for p in \"${pids[@]}\"; do kill -TERM -- -$p "
             "2>/dev/null; kill -CONT -- -$p 2>/dev/null; done; wait' EXIT"]
    tool_seconds = 0.0
    for record in records:
        command = record["command"]
        if command[-1:] == ["--version"] or command[-1:] == ["version"]:
            continue
        env = " ".join(shlex.quote(f"{k}={v}") for k, v in record["env"].items())
        run = f"cd {shlex.quote(record['cwd'])} && env {env} {shlex.join(command)}"
        if record["kind"] == "start":
            lines.append(f"setsid bash -c {shlex.quote(run)} >/dev/null 2>&1 & pids+=($!)")
            if record["port"]:
                lines.append(f"until (exec 3<>/dev/tcp/127.0.0.1/{record['port']}) 2>/dev/null; do sleep 0.05; done")
        else:
            tool_seconds += record["seconds"] or 0.0
            lines.append(f"( {run} ) >/dev/null 2>&1 || true")
    return "\n".join(lines) + "\n", tool_seconds


def restore_workspaces(trace: Path, version: str) -> None:
    """The gate removed its workspace copies at teardown; the script needs them where the commands ran."""
    from releasegate.context import prepare_workspace
    from releasegate.policy import load_policy

    policy = load_policy(ROOT / "include" / "demo" / "gate.yaml")
    folders = {json.loads(line)["cwd"] for line in trace.read_text().splitlines() if line.strip()}
    for folder in sorted(folders):
        if "/work/" in folder and not Path(folder).exists():
            prepare_workspace(policy, version, Path(folder))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="1.1.0")
    parser.add_argument("--executor", choices=["local", "celery"], default="local")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rg-bench-") as tmp:
        home, trace = Path(tmp) / "cluster", Path(tmp) / "trace.jsonl"
        env = {**os.environ, "RELEASEGATE_TRACE_COMMANDS": str(trace)}
        env.update(exports(cluster("up", "--executor", args.executor, "--home", str(home), env=env)))
        try:
            # A release train meets a running cluster: one warm-up run first (its commands are not replayed).
            trigger(env, "1.0.0")
            trace.unlink(missing_ok=True)
            started = time.monotonic()
            verdict = trigger(env, args.version)
            to_verdict = time.monotonic() - started
            tasks = api_get(env, "/dags/release_gate/tasks")["tasks"]
            tis = api_get(env, f"/dags/release_gate/dagRuns/{verdict['dag_run_id']}/taskInstances")["task_instances"]
        finally:
            cluster("down", "--home", str(home), env=env)
        path_s, path = critical_path(tasks, tis)
        script, tool_seconds = script_from_trace(trace)
        restore_workspaces(trace, args.version)
        (Path(tmp) / "sequential.sh").write_text(script)
        trace_copy = Path(tempfile.mkstemp(prefix="rg-trace-", suffix=".jsonl")[1])
        trace_copy.write_text(trace.read_text())
        started = time.monotonic()
        subprocess.run(["bash", str(Path(tmp) / "sequential.sh")], env={**os.environ, "RELEASEGATE_TRACE_COMMANDS": ""},
                       timeout=1200, check=False, capture_output=True)
        sequential = time.monotonic() - started
    ran = [t for t in tis if t["start_date"]]
    print("task                   took    tools   the gate and Airflow")
    for name, took, tools in per_task(tis, trace_copy):
        print(f"  {name:20s} {took:5.1f} s {tools:5.1f} s {took - tools:5.1f} s")
    print(f"time to verdict, demo {args.version} ({verdict['decision']}, {args.executor} executor, "
          f"{len(ran)} task instances)")
    print(f"  real scheduler (trigger --wait):  {to_verdict:6.1f} s")
    print(f"  sequential script, same commands: {sequential:6.1f} s   (tools' own time {tool_seconds:.1f} s, "
          f"{script.count(chr(10))} lines)")
    print(f"  critical path of task durations:  {path_s:6.1f} s   ({' > '.join(path)})")
    print(f"  ratio scheduler / sequential script: {to_verdict / sequential:.2f}")
    print(f"  ratio scheduler / critical path:     {to_verdict / path_s:.2f}")
    print(f"  Airflow overhead beyond the critical path: {to_verdict - path_s:.1f} s over {len(path)} chained tasks "
          f"= {(to_verdict - path_s) / len(path):.2f} s per task")
    return 0


if __name__ == "__main__":
    sys.exit(main())
