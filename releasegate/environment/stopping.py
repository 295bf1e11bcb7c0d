"""Stop what the gate started, whatever happened: each process by its id, only while the id still belongs to the
process this gate started, its process group with it, and every other one even when stopping one fails."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

import psutil

from releasegate.domain.errors import ProvisionError
from releasegate.environment.running import Environment, RunningDependency, RunningWorker

log = logging.getLogger("releasegate")


def teardown(environment: Environment | dict | None) -> str:
    """Stop the service and its dependencies (and their proxies) this gate started; a no-op when they are gone."""
    if environment is None:
        return "nothing to stop"
    env = Environment.model_validate(environment)
    env.require_local("teardown")
    failures: list[str] = []
    outcomes = [_stop_one("service", failures, env.pid, env.pid_created, env.stop_signal, env.stop_timeout_s)]
    outcomes += stop_workers(env.workers, failures)
    if env.broker is not None:  # before the dependencies: the broker may be one the gate started
        outcomes.append(_close_broker(env, failures))
    outcomes += stop_dependencies(env.dependencies, failures)
    outcome = "; ".join(outcomes)
    log.info("teardown: %s", outcome)
    if failures:
        raise ProvisionError(f"teardown: could not stop {'; '.join(failures)} — stop them by hand")
    return outcome


def stop_workers(workers: list[RunningWorker], failures: list[str] | None = None) -> list[str]:
    """Stop each background worker, last started first (one that cannot be stopped is added to `failures`)."""
    failures = [] if failures is None else failures
    return [_stop_one(f"worker {w.name}", failures, w.pid, w.pid_created, w.stop_signal, w.stop_timeout_s)
            for w in reversed(workers)]


def _close_broker(env: Environment, failures: list[str]) -> str:
    from releasegate.environment.brokers import close_broker

    assert env.broker is not None
    try:
        return close_broker(env.broker)
    except Exception as exc:  # noqa: BLE001 - reported with the others
        failures.append(f"the run's part of the broker ({exc})")
        return f"broker: NOT cleaned ({exc})"


def stop_dependencies(deps: list[RunningDependency], failures: list[str] | None = None) -> list[str]:
    """Stop each dependency and its proxy, last started first; one that cannot be stopped does not keep the
    others running (it is added to `failures`)."""
    failures = [] if failures is None else failures
    outcomes = []
    for dep in reversed(deps):
        if dep.proxy:
            proxy = dep.proxy
            outcomes.append(_stop_one(f"{dep.name} proxy", failures, proxy.pid, proxy.pid_created, "SIGTERM", 5))
        outcomes.append(_stop_one(dep.name, failures, dep.pid, dep.pid_created, dep.stop_signal, dep.stop_timeout_s))
    return outcomes


def _stop_one(what: str, failures: list[str], pid: int, created: float, stop_signal: str, timeout_s: float) -> str:
    try:
        return f"{what}: {stop_process(pid, created, stop_signal, timeout_s)}"
    except Exception as exc:  # noqa: BLE001 - reported after the others were stopped
        failures.append(f"{what} (pid {pid}: {type(exc).__name__}: {exc})")
        return f"{what}: NOT stopped ({type(exc).__name__}: {exc})"


def stop_process(pid: int, created: float, stop_signal: str, timeout_s: float) -> str:
    """Stop one process this gate started (and its group), by pid, only if the pid is still that process."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) > 1:
            return f"pid {pid} now belongs to another process: left alone"
    except psutil.NoSuchProcess:
        return f"pid {pid} already stopped"
    _signal_group(pid, getattr(signal, stop_signal))
    _signal_group(pid, signal.SIGCONT)  # a process a chaos experiment paused must be able to act on the signal
    if ended(proc, timeout_s):
        outcome = f"stopped pid {pid} with {stop_signal}"
    else:
        _signal_group(pid, signal.SIGKILL)
        if not ended(proc, 5):
            raise ProvisionError(f"pid {pid} did not end 5 s after SIGKILL")
        outcome = f"killed pid {pid} after {timeout_s:g} s"
    _reap_group(pid)
    return outcome


def ended(proc: psutil.Process, timeout_s: float) -> bool:
    """Whether the process ended within the timeout. A process the gate started in another task has the
    system's init as its parent, which reaps it when it gets round to it: an exited (zombie) process has
    ended, so waiting for its pid to vanish (psutil's wait for a non-child) would only add the reaper's delay."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(proc.pid, os.WNOHANG)  # our own child: reap it
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_group(pgid: int) -> None:
    """Children the service left in its own process group (started by it, so by us) are stopped too."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
