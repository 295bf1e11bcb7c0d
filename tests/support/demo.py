"""Helpers for end-to-end runs of the bundled demo service through the real CLI and the real DAG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_POLICY = ROOT / "include" / "demo" / "gate.yaml"
BIN = Path(sys.executable).parent


def run_cli(policy: Path, version: str, env: dict[str, str] | None = None, timeout: float = 600) -> tuple[int, dict]:
    """`releasegate run --json` as a release train would call it: exit code and the JSON it printed."""
    proc = subprocess.run([str(BIN / "releasegate"), "run", "--policy", str(policy), "--version", version, "--json"],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
                          check=False)
    assert proc.stdout.strip(), f"no JSON on stdout (exit {proc.returncode}): {proc.stderr[-3000:]}"
    return proc.returncode, json.loads(proc.stdout)


def reason_stages(data: dict) -> set[str]:
    return {r["stage"] for r in data["reasons"]}


def write_quick_policy(folder: Path) -> Path:
    """The demo policy with absolute paths, a 3 s load test and 5 DAST examples per operation: the same stages and
    tools, for the many short runs."""
    import yaml

    policy = yaml.safe_load(DEMO_POLICY.read_text())
    policy["source"]["path"] = str(DEMO_POLICY.parent / "releases" / "{version}")
    policy["scans"]["pip_audit"]["osv_data"] = str(DEMO_POLICY.parent / "advisories.osv.jsonl")
    policy["load"].update(duration_s=3, min_requests=20, remeasure_cooldown_s=0)
    policy["dast"]["max_examples"] = 5
    for dependency in policy["environment"].get("dependencies", []):
        if "path" in dependency:  # a dependency without one (the demo's redis-server) runs in the workspace
            dependency["path"] = str(DEMO_POLICY.parent / dependency["path"])
    for experiment in policy.get("chaos", {}).get("experiments", []):
        experiment["file"] = str(DEMO_POLICY.parent / experiment["file"])
    path = folder / "gate.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def processes_under(folder: Path) -> list[str]:
    """Processes whose command line or working folder lies under `folder` (services, tools, Airflow): what a
    run or a cluster there left behind."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
            home = proc.environ().get("RELEASEGATE_HOME", "")  # a dependency runs in its own folder
        except psutil.Error:
            continue
        if (str(folder) in text or home.startswith(str(folder))) and proc.pid != os.getpid():
            found.append(f"{proc.pid}: {text[:200]}")
    return found
