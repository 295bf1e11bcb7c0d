"""An opt-in record of every external command the gate runs, for replaying a run's work without the gate.

Set RELEASEGATE_TRACE_COMMANDS to a file: each tool run and each background process appends one JSON line
(kind, command, cwd, the environment it added, its port for a process, when it started and how long it
took). `bench/time_to_verdict.py` turns it into a plain sequential shell script. Off by default; the file
may hold what the policy passes to the service's environment, so it belongs in a private folder.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ENV = "RELEASEGATE_TRACE_COMMANDS"


def record(kind: str, command: list[str], cwd: Path | str, env: dict[str, str] | None = None, *,
           port: int | None = None, started: float | None = None, seconds: float | None = None) -> None:
    target = os.environ.get(ENV)
    if not target:
        return
    line = {"kind": kind, "command": [str(c) for c in command], "cwd": str(cwd), "env": dict(env or {}),
            "port": port, "started": started if started is not None else time.time(), "seconds": seconds}
    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
