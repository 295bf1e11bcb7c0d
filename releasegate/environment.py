"""Provision the service under test on its own 127.0.0.1 port, and stop it whatever happened.

Dependencies (environment.dependencies) start first, each on its own free port and, with `proxy: true`,
behind the gate's fault-injecting TCP proxy (releasegate.faultproxy); the service reaches one through
{dep_NAME_url}. Every process runs detached (its own session) so that it outlives the provisioning task;
teardown stops each by its process id, after checking the id still belongs to the process this gate started,
and stops every other one even when stopping one fails.

Logs: what the service, its dependencies and the proxies print goes to a private file under the gate's home
(`private_log`), never straight into the evidence, since a service may print a secret at startup. The gate
copies each log into `provision/` in the evidence redacted (`publish_logs`, when the run's processes have been
stopped; a message quoting a log's tail is redacted too), then deletes the private file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import site
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests
from pydantic import BaseModel, ConfigDict

import releasegate
from releasegate import trace
from releasegate.context import RunContext, gate_home
from releasegate.errors import ProvisionError
from releasegate.policy import Dependency, EnvironmentSpec, HealthCheck, Policy, fill, fill_command
from releasegate.stages.base import run_tool

log = logging.getLogger("releasegate")
HOST = "127.0.0.1"


class RunningProxy(BaseModel):
    """The fault-injecting proxy in front of one dependency."""

    model_config = ConfigDict(extra="forbid")

    port: int
    control_url: str
    pid: int
    pid_created: float
    log_path: str


class RunningDependency(BaseModel):
    """A dependency the gate started; `url` is what the service uses (the proxy's address when there is one)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    host: str
    port: int
    url: str
    direct_url: str
    pid: int
    pid_created: float
    log_path: str
    stop_signal: str = "SIGTERM"
    stop_timeout_s: float = 10
    proxy: RunningProxy | None = None


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
    dependencies: list[RunningDependency] = []
    node: str = ""  # the host the processes run on: only tasks on that host can reach or stop them

    def dependency(self, name: str) -> RunningDependency:
        return next(d for d in self.dependencies if d.name == name)

    def require_local(self, what: str) -> None:
        """Refuse to act on a service that lives on another host (its 127.0.0.1 and pids are not ours)."""
        here = socket.gethostname()
        if self.node and self.node != here:
            raise ProvisionError(f"{what}: the service runs on host {self.node!r} but this task runs on {here!r} — "
                                 "route the tasks that need the service to one worker per host: set "
                                 "RELEASEGATE_SERVICE_QUEUE for the DAG and serve that queue on one worker only")


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


def dependency_values(deps: list[RunningDependency]) -> dict[str, str]:
    """{dep_NAME_url} {dep_NAME_host} {dep_NAME_port} for the service's own placeholders."""
    values: dict[str, str] = {}
    for dep in deps:
        port = dep.proxy.port if dep.proxy else dep.port
        values.update({f"dep_{dep.name}_url": dep.url, f"dep_{dep.name}_host": dep.host,
                       f"dep_{dep.name}_port": str(port)})
    return values


def provision(policy: Policy, ctx: RunContext) -> Environment:
    spec = policy.environment
    if spec is None:
        raise ProvisionError(f"{policy.path}: no 'environment' section — nothing to start")
    deps = start_dependencies(policy, ctx)
    try:
        return _provision_service(policy, spec, ctx, deps)
    except BaseException:
        stop_dependencies(deps)
        raise


def _provision_service(policy: Policy, spec: EnvironmentSpec, ctx: RunContext,
                       deps: list[RunningDependency]) -> Environment:
    port = spec.port or free_port()
    values = {**placeholders(policy, ctx, port), **dependency_values(deps)}
    env = service_env(policy, values)
    logs = ctx.evidence / "provision"
    _run_setup(policy, ctx, values, env, logs)
    log_path = logs / "service.log"
    proc = _start(fill_command(spec.start, values), ctx.source, env, log_path, port)
    environment = Environment(host=HOST, port=port, base_url=values["base_url"], pid=proc.pid, node=socket.gethostname(),
                              pid_created=psutil.Process(proc.pid).create_time(), log_path=str(log_path), env=env,
                              stop_signal=spec.stop_signal, stop_timeout_s=spec.stop_timeout_s, dependencies=deps)
    try:
        waited = _wait_healthy(fill(spec.health.url, values), spec.health, proc, log_path)
    except BaseException:
        stop_process(environment.pid, environment.pid_created, environment.stop_signal, environment.stop_timeout_s)
        raise
    log.info("provision: %s %s healthy at %s in %.1f s (pid %s); log: %s", ctx.service, ctx.version,
             environment.base_url, waited, proc.pid, log_path)
    return environment


def start_dependencies(policy: Policy, ctx: RunContext) -> list[RunningDependency]:
    """Start each dependency in order and wait for its health; on any failure stop the ones started."""
    started: list[RunningDependency] = []
    try:
        for dep in policy.environment.dependencies if policy.environment else []:
            started.append(_start_dependency(policy, ctx, dep))
    except BaseException:
        stop_dependencies(started)
        raise
    return started


def _start_dependency(policy: Policy, ctx: RunContext, dep: Dependency) -> RunningDependency:
    port = free_port()
    values = placeholders(policy, ctx, port)
    cwd = policy.resolve(dep.path) if dep.path else ctx.source
    log_path = ctx.evidence / "provision" / f"dep-{dep.name}.log"
    proc = _start(fill_command(dep.start, values), cwd, {k: fill(v, values) for k, v in dep.env.items()}, log_path,
                  port)
    running = RunningDependency(name=dep.name, host=HOST, port=port, url=values["base_url"],
                                direct_url=values["base_url"], pid=proc.pid,
                                pid_created=psutil.Process(proc.pid).create_time(), log_path=str(log_path),
                                stop_signal=dep.stop_signal, stop_timeout_s=dep.stop_timeout_s)
    try:
        waited = _wait_dependency(dep, values, proc, log_path)
        if dep.proxy:
            running.proxy = _start_proxy(ctx, dep.name, port)
            running.url = f"http://{HOST}:{running.proxy.port}"
    except BaseException:
        stop_dependencies([running])
        raise
    log.info("provision: dependency %s healthy at %s in %.1f s (pid %s%s); log: %s", dep.name, running.direct_url,
             waited, proc.pid, f", proxy {running.url}" if running.proxy else "", log_path)
    return running


def _wait_dependency(dep: Dependency, values: dict, proc: subprocess.Popen, log_path: Path) -> float:
    health = dep.health
    if health.url:
        return _wait_healthy(fill(health.url, values), health, proc, log_path)
    return _wait_tcp(fill(health.tcp or "", values), health, proc, log_path)


def _wait_tcp(address: str, health, proc: subprocess.Popen, log_path: Path) -> float:
    host, _, port = address.rpartition(":")
    started = time.monotonic()
    while time.monotonic() - started < health.timeout_s:
        if proc.poll() is not None:
            raise ProvisionError(f"{log_path.stem} exited with code {proc.returncode} before it accepted "
                                 f"connections: {_tail(read_log(log_path))} — see {log_path}")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return time.monotonic() - started
        except OSError:
            time.sleep(health.interval_s)
    raise ProvisionError(f"nothing accepted connections at {address} within {health.timeout_s:g} s — see {log_path}")


def _start_proxy(ctx: RunContext, name: str, upstream_port: int) -> RunningProxy:
    port, control = free_port(), free_port()
    argv = [sys.executable, "-m", "releasegate.faultproxy", "--listen", f"{HOST}:{port}",
            "--upstream", f"{HOST}:{upstream_port}", "--control", f"{HOST}:{control}"]
    log_path = ctx.evidence / "provision" / f"proxy-{name}.log"
    proc = _start(argv, ctx.evidence, child_pythonpath(), log_path, port)
    proxy = RunningProxy(port=port, control_url=f"http://{HOST}:{control}", pid=proc.pid,
                         pid_created=psutil.Process(proc.pid).create_time(), log_path=str(log_path))
    try:
        _wait_healthy(f"{proxy.control_url}/healthz", HealthCheck(url="-", timeout_s=15, interval_s=0.1), proc,
                      log_path)
    except BaseException:
        stop_process(proxy.pid, proxy.pid_created, "SIGTERM", 5)
        raise
    return proxy


def _run_setup(policy: Policy, ctx: RunContext, values: dict, env: dict, logs: Path) -> None:
    for i, command in enumerate(policy.environment.setup if policy.environment else []):
        argv = fill_command(command, values)
        run = run_tool(argv, cwd=ctx.source, timeout_s=600, env=env, log_to=logs / f"setup-{i + 1}.log")
        if run.returncode != 0:
            raise ProvisionError(f"setup command {i + 1} ({' '.join(argv)}) exited {run.returncode}: "
                                 f"{_tail(run.stderr or run.stdout)} — see {logs / f'setup-{i + 1}.log'}")


def child_pythonpath() -> dict[str, str]:
    """The PYTHONPATH a child Python needs to import the releasegate this process imported.

    Installed (a wheel in site-packages, or editable), the gate's interpreter finds it unaided; a checkout that is
    only on sys.path (PYTHONPATH, a DAG folder) is not found, so the folder holding the package goes first. A
    site-packages folder is never put on PYTHONPATH, where it would come before the standard library.
    """
    root = Path(releasegate.__file__).resolve().parent.parent
    if root in {Path(p).resolve() for p in site.getsitepackages()}:
        return {}
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}


def _start(argv: list[str], cwd: Path, env: dict[str, str], log_path: Path, port: int | None = None) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    trace.record("start", argv, cwd, env, port=port)
    with open(private_log(log_path), "ab") as out:
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
                                 f"{_tail(read_log(log_path))} — see {log_path}")
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
    """Stop the service and its dependencies (and their proxies) this gate started; a no-op when they are gone."""
    if environment is None:
        return "nothing to stop"
    env = Environment.model_validate(environment)
    env.require_local("teardown")
    failures: list[str] = []
    outcomes = [_stop_one("service", failures, env.pid, env.pid_created, env.stop_signal, env.stop_timeout_s)]
    outcomes += stop_dependencies(env.dependencies, failures)
    outcome = "; ".join(outcomes)
    log.info("teardown: %s", outcome)
    if failures:
        raise ProvisionError(f"teardown: could not stop {'; '.join(failures)} — stop them by hand")
    return outcome


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


def private_log(evidence_log: Path) -> Path:
    """Where a process's raw output goes: a private folder under the gate's home, one per evidence folder."""
    folder = Path(evidence_log).parent.resolve()
    private = gate_home() / "logs" / hashlib.sha256(str(folder).encode("utf-8")).hexdigest()[:16]
    private.mkdir(parents=True, exist_ok=True, mode=0o700)
    return private / Path(evidence_log).name


def read_log(evidence_log: Path) -> str:
    """A process's output so far, redacted (from its private file while the run is on, else the evidence copy)."""
    from releasegate.redact import redact

    for path in (private_log(evidence_log), Path(evidence_log)):
        if path.is_file():
            return redact(path.read_text(encoding="utf-8", errors="replace"))
    return ""


def publish_logs(ctx: RunContext) -> list[Path]:
    """Copy every private log of the run into `provision/` in the evidence, redacted; then delete the private file.

    Call it once the processes are stopped (teardown); a later call finds nothing new and changes nothing."""
    from releasegate.redact import redact_file

    folder = ctx.evidence / "provision"
    private = private_log(folder / "-").parent
    published = []
    for raw in sorted(private.iterdir()):
        redact_file(raw, folder / raw.name)
        raw.unlink()
        published.append(folder / raw.name)
    private.rmdir()
    return published


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[-800:]
