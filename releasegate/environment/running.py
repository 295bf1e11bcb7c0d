"""The running service and the dependencies (and proxies) the gate started for it: small enough for XCom."""

from __future__ import annotations

import socket

from pydantic import BaseModel, ConfigDict

from releasegate.domain.errors import ProvisionError


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


class RunningBroker(BaseModel):
    """The run's part of the broker: {broker_url} (RabbitMQ: the run's virtual host) and {broker_prefix} (Redis)."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    server_url: str
    url: str
    prefix: str = ""
    vhost: str = ""
    node: str = ""


class RunningWorker(BaseModel):
    """A background worker the gate started beside the service."""

    model_config = ConfigDict(extra="forbid")

    name: str
    pid: int
    pid_created: float
    log_path: str
    stop_signal: str = "SIGTERM"
    stop_timeout_s: float = 10


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
    broker: RunningBroker | None = None
    workers: list[RunningWorker] = []
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
