"""`policy check`: the service and each dependency are told their port, and their health check asks it."""

from __future__ import annotations

from releasegate.policy.check_placeholders import PORT_PLACEHOLDERS
from releasegate.policy.model import Policy
from releasegate.policy.placeholders import _PLACEHOLDER
from releasegate.policy.spec import Command


def _check_ports(policy: Policy, add) -> None:
    env = policy.environment
    if env is None:
        return
    fixed = f":{env.port}" if env.port is not None else None
    told = " ".join([_text(env.start), *env.env.values()])
    if fixed is None and not _uses_port(told):
        add(("environment", "start"), "neither start nor environment.env uses {port} (or {base_url}): the service "
                                      "would not listen on the port the gate checks — e.g. '--port {port}', or "
                                      "env PORT: '{port}'; or set environment.port")
    url = env.health.url
    if not (_uses_port(url) or (fixed is not None and fixed in url)):
        add(("environment", "health", "url"), f"{url!r} does not ask the service's port — write e.g. "
                                              "'http://{host}:{port}/healthz'")
    for i, dep in enumerate(env.dependencies):
        loc = ("environment", "dependencies", i)
        if not _uses_port(" ".join([_text(dep.start), *dep.env.values()])):
            add(loc + ("start",), "neither start nor env uses {port}: the dependency gets a free port of its own — "
                                  "pass it, e.g. '--port {port}'")
        check = dep.health.url or dep.health.tcp or ""
        if not _uses_port(check):
            add(loc + ("health", "url" if dep.health.url else "tcp"),
                f"{check!r} does not ask the dependency's port — write e.g. '{{host}}:{{port}}'")


def _text(command: Command) -> str:
    return command if isinstance(command, str) else " ".join(command)


def _uses_port(text: str) -> bool:
    return bool(PORT_PLACEHOLDERS & set(_PLACEHOLDER.findall(text)))
