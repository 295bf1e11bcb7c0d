"""The values a policy's placeholders take: the run's ({version}, {workdir}, ...), the service's port and URL,
and each dependency's ({dep_NAME_url}); the service's environment variables filled in with them."""

from __future__ import annotations

import socket
import sys

from releasegate.context import RunContext
from releasegate.environment.running import RunningBroker, RunningDependency
from releasegate.policy import Policy, fill

HOST = "127.0.0.1"


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


def broker_values(broker: RunningBroker | None) -> dict[str, str]:
    """{broker_url} and {broker_prefix}: the run's part of the broker (empty without one)."""
    return {"broker_url": broker.url, "broker_prefix": broker.prefix} if broker else {}
