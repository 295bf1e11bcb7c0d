"""Provision the service under test on its own 127.0.0.1 port, and stop it whatever happened.

The service runs detached (its own session) so that it outlives the provisioning task; teardown stops it
by its process id, after checking the id still belongs to the process this gate started.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests
from pydantic import BaseModel, ConfigDict

from releasegate.context import RunContext
from releasegate.errors import ProvisionError
from releasegate.policy import Policy, fill, fill_command
from releasegate.stages.base import run_tool

log = logging.getLogger("releasegate")
HOST = "127.0.0.1"


class Environment(BaseModel):
    """The running service: small enough for XCom."""

    model_config = ConfigDict(extra="forbid")

    host: str
    port: int
    base_url: str
    pid: int
    pid_created: float
    log_path: str
    env: dict[str, str]
    stop_signal: str = "SIGTERM"
    stop_timeout_s: float = 10


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def placeholders(policy: Policy, ctx: RunContext, port: int | None = None) -> dict[str, str]:
    spec = policy.environment
    values = {"version": ctx.version, "service": ctx.service, "workdir": ctx.workspace, "host": HOST,
              "python": (spec.python if spec and spec.python else sys.executable), "evidence": ctx.evidence_dir,
              "run_id": ctx.run_id}
    if port is not None:
        values.update(port=str(port), base_url=f"http://{HOST}:{port}")
    return values


def service_env(policy: Policy, values: dict[str, str]) -> dict[str, str]:
    spec = policy.environment
    return {k: fill(v, values) for k, v in (spec.env if spec else {}).items()}


def provision(policy: Policy, ctx: RunContext) -> Environment:
    spec = policy.environment
    if spec is None:
        raise ProvisionError(f"{policy.path}: no 'environment' section — nothing to start")
    port = spec.port or free_port()
    values = placeholders(policy, ctx, port)
    env = service_env(policy, values)
    logs = ctx.evidence / "provision"
    _run_setup(policy, ctx, values, env, logs)
    log_path = logs / "service.log"
    proc = _start(fill_command(spec.start, values), ctx.source, env, log_path)
    environment = Environment(host=HOST, port=port, base_url=values["base_url"], pid=proc.pid,
                              pid_created=psutil.Process(proc.pid).create_time(), log_path=str(log_path), env=env,
                              stop_signal=spec.stop_signal, stop_timeout_s=spec.stop_timeout_s)
    try:
        waited = _wait_healthy(fill(spec.health.url, values), spec.health, proc, log_path)
    except ProvisionError:
        teardown(environment)
        raise
    log.info("provision: %s %s healthy at %s in %.1f s (pid %s); log: %s", ctx.service, ctx.version,
             environment.base_url, waited, proc.pid, log_path)
    return environment


def _run_setup(policy: Policy, ctx: RunContext, values: dict, env: dict, logs: Path) -> None:
    for i, command in enumerate(policy.environment.setup if policy.environment else []):
        argv = fill_command(command, values)
        run = run_tool(argv, cwd=ctx.source, timeout_s=600, env=env, log_to=logs / f"setup-{i + 1}.log")
        if run.returncode != 0:
            raise ProvisionError(f"setup command {i + 1} ({' '.join(argv)}) exited {run.returncode}: "
                                 f"{_tail(run.stderr or run.stdout)} — see {logs / f'setup-{i + 1}.log'}")


def _start(argv: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        try:
            return subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise ProvisionError(f"cannot start the service ({' '.join(argv)}): {exc}") from exc


def _wait_healthy(url: str, health, proc: subprocess.Popen, log_path: Path) -> float:
    started = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - started < health.timeout_s:
        if proc.poll() is not None:
            raise ProvisionError(f"the service exited with code {proc.returncode} before it was healthy: "
                                 f"{_tail(log_path.read_text(errors='replace'))} — see {log_path}")
        try:
            answer = requests.get(url, timeout=2)
            if answer.status_code == health.expect_status:
                return time.monotonic() - started
            last = f"HTTP {answer.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(health.interval_s)
    raise ProvisionError(f"the service was not healthy at {url} within {health.timeout_s:g} s (last: {last}) — "
                         f"see {log_path}; raise environment.health.timeout_s if it is just slow")


def teardown(environment: Environment | dict | None) -> str:
    """Stop the service this gate started; a no-op when it is already gone."""
    if environment is None:
        return "nothing to stop"
    env = Environment.model_validate(environment)
    try:
        proc = psutil.Process(env.pid)
        if abs(proc.create_time() - env.pid_created) > 1:
            return f"pid {env.pid} now belongs to another process: left alone"
    except psutil.NoSuchProcess:
        return f"pid {env.pid} already stopped"
    os.killpg(env.pid, getattr(signal, env.stop_signal))
    try:
        proc.wait(timeout=env.stop_timeout_s)
        outcome = f"stopped pid {env.pid} with {env.stop_signal}"
    except psutil.TimeoutExpired:
        os.killpg(env.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        outcome = f"killed pid {env.pid} after {env.stop_timeout_s:g} s"
    _reap_group(env.pid)
    log.info("teardown: %s", outcome)
    return outcome


def _reap_group(pgid: int) -> None:
    """Children the service left in its own process group (started by it, so by us) are stopped too."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[-800:]
