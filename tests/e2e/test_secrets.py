"""A canary secret printed by a failing demo test appears nowhere: database, report, evidence, Slack payload, log."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from releasegate import store

pytestmark = pytest.mark.slow
CANARY = "canary-Zq8v41xT"


def test_canary_secret_is_redacted_everywhere(quick_policy):
    proc = subprocess.run([str(Path(sys.executable).parent / "releasegate"), "run", "--policy", str(quick_policy),
                           "--version", "1.1.0"], capture_output=True, text=True, timeout=600, env=os.environ,
                          check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert CANARY not in proc.stdout + proc.stderr

    metadata = MetaData()
    metadata.reflect(store.engine())
    with store.engine().connect() as connection:
        dumped = [str(row) for table in metadata.sorted_tables for row in connection.execute(select(table))]
    assert dumped and not [row for row in dumped if CANARY in row]
    assert any("[REDACTED]" in row for row in dumped), "the failing test's message was stored, masked"

    evidence = Path(os.environ["RELEASEGATE_HOME"]) / "evidence" / "inventory" / "1.1.0"
    files = [p for p in evidence.rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files) and any(p.name == "slack-payload.json" for p in files)
    leaking = [str(p) for p in files if CANARY in p.read_text(errors="replace")]
    assert leaking == []
