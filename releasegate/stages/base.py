"""Running a tool as a subprocess: found on purpose, bounded in time, output kept as evidence.

"Could not run" (missing binary, crash, timeout) raises StageError; the caller turns it into a
StageResult with status `error`, which the verdict never reads as a pass.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from releasegate.errors import StageError
from releasegate.models import StageResult, Status

log = logging.getLogger("releasegate")

INSTALL_HINTS = {
    "semgrep": "pip install semgrep (it is in the gate's own dependencies: run `make install`)",
    "pip-audit": "pip install pip-audit (it is in the gate's own dependencies: run `make install`)",
    "locust": "pip install locust (it is in the gate's own dependencies: run `make install`)",
    "chaos": "pip install chaostoolkit (it is in the gate's own dependencies: run `make install`)",
    "promtool": "apt-get install prometheus (or run scripts/install-system-deps.sh)",
    "amtool": "apt-get install prometheus-alertmanager (or run scripts/install-system-deps.sh)",
}


@dataclass(frozen=True)
class ToolRun:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def find_tool(name: str) -> str:
    """The tool's path: $RELEASEGATE_<NAME>_BIN, else beside the gate's interpreter, else on PATH."""
    override = os.environ.get(f"RELEASEGATE_{name.upper().replace('-', '_')}_BIN")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise StageError(f"{name}: RELEASEGATE_{name.upper().replace('-', '_')}_BIN={override} "
                             "is not an executable file — fix or unset it")
        return override
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise StageError(f"{name} not found — {INSTALL_HINTS.get(name, f'install {name}')}")
    return found


def run_tool(command: list[str], *, cwd: Path, timeout_s: float, env: dict[str, str] | None = None,
             log_to: Path | None = None) -> ToolRun:
    """Run to completion or kill the whole process group at the timeout (then StageError)."""
    full_env = {**os.environ, **(env or {})}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    except (FileNotFoundError, PermissionError) as exc:
        raise StageError(f"{command[0]}: cannot start ({exc.strerror}) — is it installed and executable?") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise StageError(f"{Path(command[0]).name} timed out after {timeout_s:g} s and was stopped — "
                         "raise the stage's timeout_s in the policy or find what hangs") from None
    run = ToolRun(command, proc.returncode, stdout, stderr, time.monotonic() - started)
    if log_to is not None:
        log_to.parent.mkdir(parents=True, exist_ok=True)
        from releasegate.redact import redact

        log_to.write_text(redact(f"$ {' '.join(command)}\n# exit {run.returncode} in {run.seconds:.1f} s\n"
                                 f"--- stdout\n{stdout}\n--- stderr\n{stderr}\n"), encoding="utf-8")
    return run


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the process group this gate started (by its id), TERM first, then KILL."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def stage_errors(stage: str, kind: str, required: bool, holder: list[StageResult]) -> Iterator[datetime]:
    """Turn StageError (and any crash of the stage itself) into an `error` StageResult in holder."""
    started = now()
    try:
        yield started
    except Exception as exc:  # noqa: BLE001 - a crashed stage must still yield a result: fail closed
        message = str(exc) if isinstance(exc, StageError) else f"stage crashed: {type(exc).__name__}: {exc}"
        log.error("%s: error: %s", stage, message)
        holder.append(StageResult(stage=stage, kind=kind, status=Status.error, required=required, started=started,
                                  finished=now(), summary=f"{stage}: could not run", error=message))


def guarded(stage: str, kind: str, required: bool, body: Callable[[datetime], StageResult]) -> StageResult:
    """Run a stage body; any error becomes an `error` StageResult instead of an exception."""
    holder: list[StageResult] = []
    with stage_errors(stage, kind, required, holder) as started:
        holder.append(body(started))
    return holder[-1]
