"""`policy check`: every placeholder is one the gate fills in where it is written."""

from __future__ import annotations

from collections.abc import Iterator

from releasegate.policy.model import Policy
from releasegate.policy.placeholders import (
    _PLACEHOLDER,
    BROKER_PLACEHOLDERS,
    MIGRATION_PLACEHOLDERS,
    PLACEHOLDERS,
    dependency_placeholders,
)
from releasegate.policy.spec import Command

PORT_PLACEHOLDERS = frozenset({"port", "base_url"})
NO_PORT = frozenset(PLACEHOLDERS) - PORT_PLACEHOLDERS


def _check_placeholders_in_place(policy: Policy, add) -> None:
    for loc, text, allowed in _placeholder_scopes(policy):
        for name in dict.fromkeys(_PLACEHOLDER.findall(text)):
            if name in allowed:
                continue
            if not allowed:
                why = "the gate reads this value as written (no placeholder is filled in here)"
            elif name in PORT_PLACEHOLDERS:
                why = ("no port is known here" + ("" if policy.environment else ": the policy has no environment")
                       + f" — here the gate fills in {_names(allowed)}")
            elif name.startswith("dep_"):
                why = (f"dependencies are filled in only in environment.setup, start, env, health and broker.url — here: "
                       f"{_names(allowed)}")
            else:
                why = f"here the gate fills in {_names(allowed)} only"
            add(loc, f"{{{name}}} is not filled in: {why}")


def _names(names: frozenset[str]) -> str:
    return " ".join("{" + n + "}" for n in sorted(names))


def _placeholder_scopes(policy: Policy) -> Iterator[tuple[tuple, str, frozenset[str]]]:
    """(field, text, the placeholders the run fills in there) for every text the policy may template."""
    everything = frozenset(PLACEHOLDERS)
    deps = frozenset(dependency_placeholders(policy))
    none: frozenset[str] = frozenset()
    yield ("source", "path"), policy.source.path, frozenset({"version"})
    yield from _each(("source", "exclude"), policy.source.exclude, none)
    env = policy.environment
    if env is not None:
        if env.broker is not None:  # its url may name a dependency the gate starts (e.g. its own redis-server)
            yield ("environment", "broker", "url"), env.broker.url, deps
            deps = deps | frozenset(BROKER_PLACEHOLDERS)
        for i, worker in enumerate(env.workers):
            yield from _command(("environment", "workers", i, "start"), worker.start, everything | deps)
            yield from ((("environment", "workers", i, "env", k), v, everything | deps) for k, v in worker.env.items())
        yield from _commands(("environment", "setup"), env.setup, everything | deps)
        yield from _command(("environment", "start"), env.start, everything | deps)
        yield from ((("environment", "env", k), v, everything | deps) for k, v in env.env.items())
        yield ("environment", "health", "url"), env.health.url, everything | deps
        if env.python is not None:
            yield ("environment", "python"), env.python, none
        for i, dep in enumerate(env.dependencies):
            dep_loc = ("environment", "dependencies", i)
            yield from _command(dep_loc + ("start",), dep.start, everything)
            yield from (((*dep_loc, "env", k), v, everything) for k, v in dep.env.items())
            for key in ("url", "tcp"):
                if getattr(dep.health, key):
                    yield (*dep_loc, "health", key), getattr(dep.health, key), everything
            if dep.path is not None:
                yield (*dep_loc, "path"), dep.path, none
    suite_scope = everything if env is not None else NO_PORT
    for i, suite in enumerate(policy.suites):
        loc = ("suites", i)
        yield from _command(loc + ("command",), suite.command, suite_scope)
        yield from _each(loc + ("paths",), suite.paths, suite_scope)
        yield from _each(loc + ("args",), suite.args, suite_scope)
        yield from (((*loc, "env", k), v, suite_scope) for k, v in suite.env.items())
        if suite.junit is not None:
            yield (*loc, "junit"), suite.junit, suite_scope
    if policy.load is not None:
        yield ("load", "locustfile"), policy.load.locustfile, none
        if policy.load.telemetry is not None:
            yield ("load", "telemetry", "url"), policy.load.telemetry.url, frozenset({"base_url", "host", "port"})
    semgrep, audit = policy.scans.semgrep, policy.scans.pip_audit
    if semgrep is not None:
        for key in ("rules", "paths", "exclude"):
            yield from _each(("scans", "semgrep", key), getattr(semgrep, key), none)
    if audit is not None:
        yield from _each(("scans", "pip_audit", "requirements"), audit.requirements, none)
        yield from _commands(("scans", "pip_audit", "export"), audit.export, NO_PORT)
        for key in ("osv_url", "osv_data"):
            if getattr(audit, key):
                yield ("scans", "pip_audit", key), getattr(audit, key), none
    if policy.alerts is not None:
        yield from _each(("alerts", "rule_files"), policy.alerts.rule_files, none)
        yield from _each(("alerts", "tests"), policy.alerts.tests, none)
        if policy.alerts.alertmanager is not None:
            yield ("alerts", "alertmanager", "config"), policy.alerts.alertmanager.config, none
    if policy.migrations is not None:
        scope = NO_PORT | frozenset(MIGRATION_PLACEHOLDERS)
        yield from _command(("migrations", "up"), policy.migrations.up, scope)
        yield from _command(("migrations", "down"), policy.migrations.down, scope)
        yield from ((("migrations", "env", k), v, scope) for k, v in policy.migrations.env.items())
    if policy.chaos is not None:
        for i, experiment in enumerate(policy.chaos.experiments):
            yield ("chaos", "experiments", i, "file"), experiment.file, none


def _each(loc: tuple, values: list[str], allowed: frozenset[str]) -> Iterator[tuple[tuple, str, frozenset[str]]]:
    return (((*loc, i), v, allowed) for i, v in enumerate(values))


def _command(loc: tuple, command: Command, allowed: frozenset[str]) -> Iterator[tuple[tuple, str, frozenset[str]]]:
    if isinstance(command, str):
        yield loc, command, allowed
    else:
        yield from _each(loc, command, allowed)


def _commands(loc: tuple, commands: list[Command], allowed: frozenset[str]) -> Iterator[tuple[tuple, str, frozenset[str]]]:
    for i, command in enumerate(commands):
        yield from _command((*loc, i), command, allowed)
