"""Whether the provisioned service still runs, and if not, what it last said: the cause behind a stage that lost it.

A service that stops in the middle of a suite or a load test makes every later request fail; the stage names that
cause (how it ended, when known, and the last lines of its log) instead of leaving a page of refused connections.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil

from releasegate.environment import Environment
from releasegate.redact import redact

TAIL_LINES = 5
TAIL_CHARS = 600


def service_gone(env: Environment) -> str | None:
    """Why the service is no longer serving (its process ended: how, when known, and its last log lines); None
    while it runs. A paused process (a chaos experiment's pause) still runs."""
    try:
        proc = psutil.Process(env.pid)
        if abs(proc.create_time() - env.pid_created) > 1:
            ended = ""  # the pid now belongs to another process: ours ended long ago
        elif proc.status() != psutil.STATUS_ZOMBIE:
            return None
        else:
            ended = _how_it_ended(env.pid)
    except psutil.NoSuchProcess:
        ended = ""
    except psutil.AccessDenied:
        return None
    return f"the service (pid {env.pid}) is no longer running{ended}; its last log lines: {log_tail(env.log_path)}"


def _how_it_ended(pid: int) -> str:
    """`, exited 1` or `, killed by SIGKILL` for a child of this process that ended and was not yet collected."""
    try:  # WNOWAIT: read the status and leave the child for whoever collects it
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except (ChildProcessError, OSError):
        return ""
    if info is None:
        return ""
    if info.si_code == os.CLD_EXITED:
        return f", exited {info.si_status}"
    try:
        return f", killed by {signal.Signals(info.si_status).name}"
    except ValueError:
        return ""


def log_tail(path: str, lines: int = TAIL_LINES) -> str:
    """The last non-empty lines of a log, redacted, joined by ` | `; `no log` when there is none."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            handle.seek(max(0, file.stat().st_size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return f"no log at {path}"
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    joined = redact(" | ".join(tail)) if tail else "the log is empty"
    return joined if len(joined) <= TAIL_CHARS else "…" + joined[-(TAIL_CHARS - 1):]
