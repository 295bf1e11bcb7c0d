"""The `source` and `environment` sections: where the code is, how the service and its dependencies start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from releasegate.policy.messaging import Broker, Worker
from releasegate.policy.spec import MAX_INTERVAL_S, MAX_TIMEOUT_S, Command, Env, _Spec


class Source(_Spec):
    """Where the service's code for a version lives, and how the gate gets a private copy of it."""

    path: str = Field(".", description="Folder with the service code, relative to the policy; may use {version}.")
    copy_to_workspace: bool = Field(
        True, description="Copy the code into the run's own workspace first (for apps that write into their tree).")
    exclude: list[str] = Field(default_factory=lambda: [".git", ".venv", "__pycache__", "node_modules", "*.pyc"])


class HealthCheck(_Spec):
    url: str = Field(description="URL that answers when the service is ready, e.g. http://{host}:{port}/healthz")
    expect_status: int = 200
    timeout_s: float = Field(60, gt=0, le=MAX_TIMEOUT_S, description="How long to wait for health before provisioning fails.")
    interval_s: float = Field(0.5, gt=0, le=MAX_INTERVAL_S)


class DependencyHealth(_Spec):
    """How the gate knows a dependency is ready: an HTTP URL or a TCP connect (both may use its own {port})."""

    url: str | None = Field(None, description="e.g. http://{host}:{port}/healthz")
    tcp: str | None = Field(None, description="host:port that accepts connections, e.g. {host}:{port}")
    expect_status: int = 200
    timeout_s: float = Field(30, gt=0, le=MAX_TIMEOUT_S)
    interval_s: float = Field(0.25, gt=0, le=MAX_INTERVAL_S)

    @model_validator(mode="after")
    def _one_check(self) -> DependencyHealth:
        if bool(self.url) == bool(self.tcp):
            raise ValueError("set exactly one of url (an HTTP health URL) or tcp (host:port)")
        return self


class Dependency(_Spec):
    """A service the one under test calls, started by the gate before it (and stopped after it)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Short id; the service's placeholders use it.")
    path: str | None = Field(None, description="Folder to start in, relative to the policy; default: the workspace.")
    start: Command = Field(description="Command serving the dependency on its own {port}.")
    env: Env = Field(default_factory=dict)
    health: DependencyHealth
    proxy: bool = Field(False, description="Put the gate's fault-injecting TCP proxy in front (for chaos).")
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT"] = "SIGTERM"
    stop_timeout_s: float = Field(10, gt=0, le=MAX_TIMEOUT_S)


class EnvironmentSpec(_Spec):
    """How to start the service on its own port, check it is healthy and stop it."""

    python: str | None = Field(None, description="Interpreter for {python} (setup, start and the suites' default "
                               "'{python} -m pytest'); default: the gate's own. Needs pytest and the service's "
                               "dependencies.")
    setup: list[Command] = Field(
        default_factory=list, description="Commands run in the workspace before start (migrations, fixtures); "
                                          "split into arguments, not run by a shell.")
    start: Command = Field(description="Command that serves the app on {port}, e.g. '{python} -m flask run -p {port}'; "
                                       "split into arguments, not run by a shell.")
    env: Env = Field(
        default_factory=dict, description="Environment for setup, start and the suites (e.g. DATABASE_URL).")
    port: int | None = Field(None, ge=1, le=65535, description="Fixed port; default: a free 127.0.0.1 port.")
    health: HealthCheck
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT"] = "SIGTERM"
    stop_timeout_s: float = Field(10, gt=0, le=MAX_TIMEOUT_S, description="Grace period before the gate kills the service.")
    dependencies: list[Dependency] = Field(
        default_factory=list, description="Services started first, each on its own free port; the service finds "
        "one through {dep_NAME_url} / {dep_NAME_port} (the proxy's address when proxy is true).")
    broker: Broker | None = Field(None, description="Redis or RabbitMQ for background jobs: the run gets its own key "
                                  "prefix or virtual host ({broker_url}, {broker_prefix}), removed at teardown.")
    workers: list[Worker] = Field(default_factory=list, description="Background workers started after the broker, "
                                  "before the service, and stopped with it.")

    @model_validator(mode="after")
    def _unique_workers(self) -> EnvironmentSpec:
        names = [w.name for w in self.workers]
        if len(set(names)) != len(names):
            raise ValueError(f"worker names must be unique: {', '.join(names)}")
        return self
