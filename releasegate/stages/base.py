"""Running a tool as a subprocess: found on purpose, bounded in time, output kept as evidence.

"Could not run" (missing binary, crash, timeout) raises StageError; the caller turns it into a
StageResult with status `error`, which the verdict never reads as a pass. A tool's ending is evidence
too: stopped at the timeout, killed by a signal, or an exit status outside what the tool documents for
"it ran" is an error whatever it printed (`require_ran`), and each stage reads only what this attempt
wrote (`fresh_folder`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from releasegate import trace
from releasegate.domain.errors import StageError
from releasegate.domain.models import StageResult, Status

log = logging.getLogger("releasegate")

INSTALL_HINTS = {
    "semgrep": "pip install semgrep (it is in the gate's own dependencies: run `make install`)",
    "pip-audit": "pip install pip-audit (it is in the gate's own dependencies: run `make install`)",
    "detect-secrets": "pip install detect-secrets (it is in the gate's own dependencies: run `make install`)",
    "schemathesis": "pip install schemathesis (it is in the gate's own dependencies: run `make install`)",
    "locust": "pip install locust (it is in the gate's own dependencies: run `make install`)",
    "chaos": "pip install chaostoolkit (it is in the gate's own dependencies: run `make install`)",
    "promtool": "apt-get install prometheus (or run scripts/install-system-deps.sh)",
    "amtool": "apt-get install prometheus-alertmanager (or run scripts/install-system-deps.sh)",
}


# A shell reports a child killed by signal N as exit status 128 + N (137 = SIGKILL, 143 = SIGTERM).
SHELL_SIGNAL_BASE = 128
OUTPUT_LINE_CHARS = 200
# Words a tool uses when it says what went wrong; the last line with one is its last word on the matter.
_ERROR_WORDS = re.compile(r"error|fatal|fail|exception|traceback|killed|denied|not found|no such|cannot|unable|invalid",
                          re.IGNORECASE)


@dataclass(frozen=True)
class ToolRun:
    """How one run of a tool ended: exit status, the signal that killed it, whether it was stopped at the timeout.

    `returncode` is Popen's: negative when a signal killed the tool itself.
    """

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    timeout_s: float | None = None
    log: Path | None = None

    @property
    def tool(self) -> str:
        return tool_name(self.command)

    @property
    def signal(self) -> signal.Signals | None:
        """The signal that ended the tool (itself, or a child a wrapper reports as 128 + N), else None."""
        return killed_by(self.returncode)

    def ending(self) -> str:
        """How it ended, in words: `semgrep was killed by SIGKILL (exit 137) after 12.3 s`."""
        if self.timed_out:
            return f"{self.tool} timed out after {self.timeout_s or self.seconds:g} s and was stopped"
        sig = self.signal
        if sig is not None:
            how = f"signal {sig.value}" if self.returncode < 0 else f"exit {self.returncode}"
            return f"{self.tool} was killed by {sig.name} ({how}) after {self.seconds:.1f} s"
        return f"{self.tool} exited {self.returncode} after {self.seconds:.1f} s"


def tool_name(command: list[str]) -> str:
    """What to call the tool in a message: the program's name (`python -m pytest` for a module run)."""
    name = Path(command[0]).name if command else "?"
    return f"{name} -m {command[2]}" if len(command) > 2 and command[1] == "-m" else name


def killed_by(returncode: int) -> signal.Signals | None:
    """The signal behind an exit status: a negative returncode, or 128 + N as a shell reports it."""
    number = -returncode if returncode < 0 else returncode - SHELL_SIGNAL_BASE
    if number <= 0:
        return None
    try:
        return signal.Signals(number)
    except ValueError:
        return None


def last_error_line(stderr: str, stdout: str = "") -> str:
    """The tool's own last word on what went wrong: the last line of stderr that says so (banners such as pytest's
    `=== 1 error in 0.1s ===` passed over), else its last line; then the same on stdout, where machine output (JSON,
    XML) is skipped; `no output` when there is none."""
    for text in (stderr, stdout):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("{", "[", "<"))]
        if lines:
            said = [ln for ln in lines if _ERROR_WORDS.search(ln) and not ln.startswith(("=", "!"))]
            line = (said or lines)[-1]
            return line if len(line) <= OUTPUT_LINE_CHARS else line[: OUTPUT_LINE_CHARS - 1] + "…"
    return "no output"


def failure(run: ToolRun, ok: Collection[int]) -> str | None:
    """Why this run cannot be believed, whatever it printed: stopped at the timeout, killed by a signal, or an exit
    status outside `ok` (the tool's documented statuses for "it ran"). None when it ended as the tool says it does."""
    if run.timed_out:
        advice = "raise the stage's timeout_s in the policy or find what hangs"
    elif run.signal is not None:
        advice = ("its output is not used, however complete it looks: find what killed it "
                  "(a memory limit, the OOM killer, a supervisor) and rerun")
    elif run.returncode not in ok:
        expected = " or ".join(str(code) for code in sorted(ok))
        advice = f"{run.tool} exits {expected} when it ran: run the command in the log by hand to see why"
    else:
        return None
    where = f"; log: {run.log}" if run.log is not None else ""
    return f"{run.ending()}; last output: {last_error_line(run.stderr, run.stdout)} — {advice}{where}"


def require_ran(run: ToolRun, ok: Collection[int]) -> ToolRun:
    """The run, if it ended as the tool says it does when it ran; else StageError saying how it ended (see failure)."""
    reason = failure(run, ok)
    if reason is not None:
        raise StageError(reason)
    return run


def fresh_folder(folder: Path) -> Path:
    """The stage's evidence folder, emptied: this attempt reads only what this attempt's tools write."""
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


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
             log_to: Path | None = None, ok: Collection[int] | None = None) -> ToolRun:
    """Run to completion, or stop the whole process group at the timeout; the ToolRun says how it ended.

    `ok`: the tool's documented exit statuses for "it ran" (results included, e.g. 1 = findings). Any other
    ending raises StageError (require_ran). Without `ok` only a timeout raises, and the caller judges the rest.
    """
    full_env = {**os.environ, **(env or {})}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    except (FileNotFoundError, PermissionError) as exc:
        raise StageError(f"{command[0]}: cannot start ({exc.strerror}) — is it installed and executable?") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        stdout, stderr = _stop_group(proc)
        timed_out = True
    returncode = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    run = ToolRun(command, returncode, stdout, stderr, time.monotonic() - started, timed_out, timeout_s, log_to)
    trace.record("tool", command, cwd, env, started=time.time() - run.seconds, seconds=run.seconds)
    if log_to is not None:
        _write_log(run, log_to)
    if timed_out:
        require_ran(run, ())
    return require_ran(run, ok) if ok is not None else run


def _write_log(run: ToolRun, path: Path) -> None:
    from releasegate.redact import redact

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(f"$ {' '.join(run.command)}\n# {run.ending()}\n"
                           f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}\n"), encoding="utf-8")


def _stop_group(proc: subprocess.Popen) -> tuple[str, str]:
    """Stop the process group this gate started (by its id), TERM first, then KILL; what it printed until then."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass  # the group is gone already: collect what it printed
        try:
            return proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            continue
    try:  # a process outside the group still holds the pipes: the output is lost, the tool is not
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    return "", ""


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
