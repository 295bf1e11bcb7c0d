"""`releasegate policy check`: what can be checked without running anything, beyond what loading validates.

- every file and folder the policy names exists, each against its own base: the service's files (suite paths, the
  locustfile, requirements, semgrep paths, alert rules and tests, the Alertmanager config) in the source folder for
  the version; the gate's inputs (semgrep rule files, osv_data, chaos experiments, dependency folders) beside the
  policy; `builtin:` rules among the bundled ones; `environment.python` is an interpreter;
- every placeholder is one the gate fills in where it is written (e.g. {port} only where a port is known, nothing
  in a path the gate reads as written);
- the service and each dependency are told their port ({port} or {base_url} in the start command or env) and the
  health check asks that port.

A source folder named with {version} is checked for `--version`; without one its files are listed as not checked.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from releasegate.policy import (
    PLACEHOLDERS,
    Command,
    Policy,
    dependency_placeholders,
    dotted,
    line_of,
)
from releasegate.policy.placeholders import _PLACEHOLDER

PORT_PLACEHOLDERS = frozenset({"port", "base_url"})
NO_PORT = frozenset(PLACEHOLDERS) - PORT_PLACEHOLDERS


@dataclass(frozen=True)
class Problem:
    field: str
    line: int | None
    message: str          # what is wrong — and the fix

    def text(self, file: Path | str) -> str:
        where = f"{file}:{self.line}" if self.line else str(file)
        return f"{where}: {self.field}: {self.message}"


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)      # what could not be checked, and why
    checked: list[str] = field(default_factory=list)    # the files and folders found

    def as_dict(self) -> dict:
        return {"problems": [asdict(p) for p in self.problems], "notes": self.notes, "checked": self.checked}


def check_policy(policy: Policy, version: str | None = None) -> CheckReport:
    """Every problem a run would meet that is visible without running it (see the module's docstring)."""
    report = CheckReport()
    add = _adder(policy, report)
    _check_placeholders_in_place(policy, add)
    _check_ports(policy, add)
    _check_policy_files(policy, add, report)
    source = _source(policy, version, add, report)
    if source is not None:
        _check_source_files(policy, source, add, report)
    return report


def _adder(policy: Policy, report: CheckReport):
    def add(loc: tuple, message: str) -> None:
        report.problems.append(Problem(dotted(loc), line_of(policy, loc), message))
    return add


# --- placeholders, where they are filled in ------------------------------------------------------------------

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
                why = f"dependencies are filled in only in environment.setup, start, env and health — here: {_names(allowed)}"
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


# --- ports ---------------------------------------------------------------------------------------------------

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


# --- files ---------------------------------------------------------------------------------------------------

def _check_policy_files(policy: Policy, add, report: CheckReport) -> None:
    """The gate's inputs, relative to the policy file."""
    from releasegate.stages.semgrep import BUILTIN_PREFIX, builtin_names, builtin_rules_dir

    semgrep, audit, env = policy.scans.semgrep, policy.scans.pip_audit, policy.environment
    if semgrep is not None:
        for i, rule in enumerate(semgrep.rules):
            if rule.startswith(BUILTIN_PREFIX):
                if not (builtin_rules_dir() / f"{rule[len(BUILTIN_PREFIX):]}.yml").is_file():
                    add(("scans", "semgrep", "rules", i), f"{rule!r} is not a bundled rule set — use one of "
                                                          f"{', '.join(builtin_names())}")
            else:
                _exists(policy, report, add, ("scans", "semgrep", "rules", i), policy.base_dir, rule, "policy")
    if audit is not None and audit.osv_data:
        _exists(policy, report, add, ("scans", "pip_audit", "osv_data"), policy.base_dir, audit.osv_data, "policy",
                want="file")
    if policy.chaos is not None:
        for i, experiment in enumerate(policy.chaos.experiments):
            _exists(policy, report, add, ("chaos", "experiments", i, "file"), policy.base_dir, experiment.file,
                    "policy", want="file")
    if env is not None:
        for i, dep in enumerate(env.dependencies):
            if dep.path is not None:
                _exists(policy, report, add, ("environment", "dependencies", i, "path"), policy.base_dir, dep.path,
                        "policy", want="folder")
        if env.python is not None and "{" not in env.python:
            found = shutil.which(env.python) if os.sep not in env.python else env.python
            if not found or not (os.path.isfile(found) and os.access(found, os.X_OK)):
                add(("environment", "python"), f"{env.python!r} is not an executable interpreter — give its path "
                                               "(e.g. /opt/venvs/orders/bin/python) or a name on PATH")


def _source(policy: Policy, version: str | None, add, report: CheckReport) -> Path | None:
    if "{version}" in policy.source.path and version is None:
        report.notes.append(f"source.path {policy.source.path!r} uses {{version}}: the service's files (suite "
                            "paths, locustfile, requirements, semgrep paths, alert files) were not checked — "
                            "pass --version to check them")
        return None
    if "{" in policy.source.path.replace("{version}", ""):
        return None  # a placeholder the gate does not fill in here: reported above
    source = policy.source_dir(version or "")
    if not source.is_dir():
        add(("source", "path"), f"{source} is not a folder" + (f" for version {version}" if version else "")
            + " — fix the path (relative to the policy)")
        return None
    report.checked.append(str(source))
    return source


def _check_source_files(policy: Policy, source: Path, add, report: CheckReport) -> None:
    """The service's own files, relative to its source folder (the run's copy of it)."""
    def exists(loc: tuple, relative: str, want: str = "any") -> None:
        _exists(policy, report, add, loc, source, relative, "source", want)

    for i, suite in enumerate(policy.suites):
        if suite.junit is None:  # the gate runs pytest, which needs every path to exist
            for j, path in enumerate(suite.paths):
                exists(("suites", i, "paths", j), path.split("::", 1)[0])
    if policy.load is not None:
        exists(("load", "locustfile"), policy.load.locustfile, "file")
    if policy.scans.semgrep is not None:
        for i, path in enumerate(policy.scans.semgrep.paths):
            exists(("scans", "semgrep", "paths", i), path)
    audit = policy.scans.pip_audit
    if audit is not None:
        if audit.export:
            report.notes.append("scans.pip_audit.requirements not checked: the export commands write them")
        else:
            for i, path in enumerate(audit.requirements):
                exists(("scans", "pip_audit", "requirements", i), path, "file")
    if policy.alerts is not None:
        for key in ("rule_files", "tests"):
            for i, path in enumerate(getattr(policy.alerts, key)):
                exists(("alerts", key, i), path, "file")
        if policy.alerts.alertmanager is not None:
            exists(("alerts", "alertmanager", "config"), policy.alerts.alertmanager.config, "file")


def _exists(policy: Policy, report: CheckReport, add, loc: tuple, base: Path, relative: str, base_name: str,
            want: str = "any") -> None:
    if "{" in relative:
        return  # a placeholder: filled in at run time (or refused above)
    path = (base / relative).resolve()
    ok = path.is_file() if want == "file" else path.is_dir() if want == "folder" else path.exists()
    if ok:
        report.checked.append(str(path))
        return
    what = {"file": "file", "folder": "folder"}.get(want, "file or folder")
    where = "the policy file's folder" if base_name == "policy" else "the service's source folder"
    state = "is not a " + what if path.exists() else "does not exist"
    add(loc, f"{relative!r} {state} ({path}) — this path is relative to {where} ({base})")
