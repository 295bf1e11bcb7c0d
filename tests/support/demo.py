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
