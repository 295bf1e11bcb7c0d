"""Start the service under test on its own 127.0.0.1 port, after its setup commands and its dependencies (each
behind the fault-injecting proxy when the policy asks), and wait until each is healthy.

Every process runs detached (its own session) so that it outlives the provisioning task; what it prints goes to a
private log (releasegate.environment.logs). A start that fails stops whatever it had started.
"""

from __future__ import annotations

import logging
import os
import site
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

import releasegate
from releasegate import trace
from releasegate.context import RunContext
from releasegate.domain.errors import ProvisionError, StageError
from releasegate.environment.brokers import close_broker_quietly, open_broker
from releasegate.environment.health import wait_dependency, wait_healthy
from releasegate.environment.logs import private_log, read_log, tail
from releasegate.environment.running import (
    Environment,
    RunningBroker,
    RunningDependency,
    RunningProxy,
    RunningWorker,
)
from releasegate.environment.stopping import stop_dependencies, stop_process, stop_workers
from releasegate.environment.values import (
    HOST,
    broker_values,
    dependency_values,
    free_port,
    placeholders,
    service_env,
)
from releasegate.policy import Dependency, EnvironmentSpec, HealthCheck, Policy, Worker, fill, fill_command
from releasegate.stages.base import run_tool

log = logging.getLogger("releasegate")


def provision(policy: Policy, ctx: RunContext) -> Environment:
    spec = policy.environment
    if spec is None:
        raise ProvisionError(f"{policy.path}: no 'environment' section — nothing to start")
    deps = start_dependencies(policy, ctx)
    broker: RunningBroker | None = None
    workers: list[RunningWorker] = []
    try:
        broker = _open_broker(spec, deps)
        return _provision_service(policy, spec, ctx, deps, broker, workers)
    except BaseException:
        stop_workers(workers)
        if broker is not None:
            close_broker_quietly(broker)
        stop_dependencies(deps)
        raise


def _open_broker(spec: EnvironmentSpec, deps: list[RunningDependency]) -> RunningBroker | None:
    if spec.broker is None:
        return None
    try:  # its url may name a dependency the gate started ({dep_redis_port}, say)
        broker = open_broker(spec.broker.model_copy(update={"url": fill(spec.broker.url, dependency_values(deps))}))
    except StageError as exc:
        raise ProvisionError(f"environment.broker: {exc}") from None
    log.info("provision: broker %s, the run's %s", spec.broker.kind,
             f"virtual host {broker.vhost}" if broker.vhost else f"key prefix {broker.prefix}")
    return broker


def _provision_service(policy: Policy, spec: EnvironmentSpec, ctx: RunContext, deps: list[RunningDependency],
                       broker: RunningBroker | None, workers: list[RunningWorker]) -> Environment:
    port = spec.port or free_port()
    values = {**placeholders(policy, ctx, port), **dependency_values(deps), **broker_values(broker)}
    env = service_env(policy, values)
    logs = ctx.evidence / "provision"
    _run_setup(policy, ctx, values, env, logs)
    for worker in spec.workers:
        workers.append(_start_worker(ctx, worker, values, env))
    grace_until = time.monotonic() + max((w.start_grace_s for w in spec.workers), default=0.0)
    log_path = logs / "service.log"
    proc = _start(fill_command(spec.start, values), ctx.source, env, log_path, port)
    environment = Environment(host=HOST, port=port, base_url=values["base_url"], pid=proc.pid, node=socket.gethostname(),
                              pid_created=psutil.Process(proc.pid).create_time(), log_path=str(log_path), env=env,
                              stop_signal=spec.stop_signal, stop_timeout_s=spec.stop_timeout_s, dependencies=deps,
                              broker=broker, workers=workers)
    try:
        waited = wait_healthy(fill(spec.health.url, values), spec.health, proc, log_path)
    except BaseException:
        stop_process(environment.pid, environment.pid_created, environment.stop_signal, environment.stop_timeout_s)
        raise
    time.sleep(max(0.0, grace_until - time.monotonic()))  # usually past already: the service took longer
    _check_workers_running(workers, environment)
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
        waited = wait_dependency(dep, values, proc, log_path)
        if dep.proxy:
            running.proxy = _start_proxy(ctx, dep.name, port)
            running.url = f"http://{HOST}:{running.proxy.port}"
    except BaseException:
        stop_dependencies([running])
        raise
    log.info("provision: dependency %s healthy at %s in %.1f s (pid %s%s); log: %s", dep.name, running.direct_url,
             waited, proc.pid, f", proxy {running.url}" if running.proxy else "", log_path)
    return running


def _check_workers_running(workers: list[RunningWorker], environment: Environment) -> None:
    """A worker that ended while the service started or within its start_grace_s (an import error, a broker it cannot
    reach) fails provisioning."""
    for worker in workers:
        if not _alive(worker.pid, worker.pid_created):
            stop_process(environment.pid, environment.pid_created, environment.stop_signal, environment.stop_timeout_s)
            raise ProvisionError(f"worker {worker.name} (pid {worker.pid}) ended before the service was healthy; "
                                 f"its last log lines: {tail(read_log(Path(worker.log_path)))} — see {worker.log_path}")


def _alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - created) <= 1 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_worker(ctx: RunContext, worker: Worker, values: dict[str, str], env: dict[str, str]) -> RunningWorker:
    """Start one background worker in the workspace with the service's environment and its own."""
    log_path = ctx.evidence / "provision" / f"worker-{worker.name}.log"
    own = {k: fill(v, values) for k, v in worker.env.items()}
    proc = _start(fill_command(worker.start, values), ctx.source, {**env, **own}, log_path)
    log.info("provision: worker %s started (pid %s); log: %s", worker.name, proc.pid, log_path)
    return RunningWorker(name=worker.name, pid=proc.pid, pid_created=psutil.Process(proc.pid).create_time(),
                         log_path=str(log_path), stop_signal=worker.stop_signal, stop_timeout_s=worker.stop_timeout_s)


def _start_proxy(ctx: RunContext, name: str, upstream_port: int) -> RunningProxy:
    port, control = free_port(), free_port()
    argv = [sys.executable, "-m", "releasegate.servers.faultproxy", "--listen", f"{HOST}:{port}",
            "--upstream", f"{HOST}:{upstream_port}", "--control", f"{HOST}:{control}"]
    log_path = ctx.evidence / "provision" / f"proxy-{name}.log"
    proc = _start(argv, ctx.evidence, child_pythonpath(), log_path, port)
    proxy = RunningProxy(port=port, control_url=f"http://{HOST}:{control}", pid=proc.pid,
                         pid_created=psutil.Process(proc.pid).create_time(), log_path=str(log_path))
    try:
        wait_healthy(f"{proxy.control_url}/healthz", HealthCheck(url="-", timeout_s=15, interval_s=0.1), proc,
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
                                 f"{tail(run.stderr or run.stdout)} — see {logs / f'setup-{i + 1}.log'}")


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
