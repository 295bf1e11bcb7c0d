"""Placeholders: which exist, how a run fills them in, and the load-time check that every template renders."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from releasegate.domain.errors import PolicyError
from releasegate.policy.explain import _dotted, _line_for
from releasegate.policy.model import Policy
from releasegate.policy.spec import Command

PLACEHOLDERS = ("version", "port", "host", "base_url", "workdir", "python", "service", "evidence", "run_id")
REPORT_URL_PLACEHOLDERS = ("service", "version", "run_id")
BROKER_PLACEHOLDERS = ("broker_url", "broker_prefix")  # the run's part of environment.broker
MIGRATION_PLACEHOLDERS = ("database_url",)  # the scratch database's URL, in migrations.up, down and env only

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def dependency_placeholders(policy: Policy) -> tuple[str, ...]:
    """{dep_NAME_url} {dep_NAME_host} {dep_NAME_port}, only for the dependencies the policy declares."""
    names = [d.name for d in policy.environment.dependencies] if policy.environment else []
    return tuple(f"dep_{n}_{part}" for n in names for part in ("url", "host", "port"))


def _check_placeholders(file: Path, data: Any, loc: tuple = (), known: tuple[str, ...] = PLACEHOLDERS) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            _check_placeholders(file, value, loc + (key,), known)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _check_placeholders(file, value, loc + (i,), known)
    elif isinstance(data, str):
        for name in _PLACEHOLDER.findall(data):
            if name not in known:
                raise PolicyError(f"{file}: {_dotted(loc)}: unknown placeholder {{{name}}} — "
                                  f"known: {', '.join('{' + p + '}' for p in known)}")


def _check_templates(file: Path, policy: Policy, lines: dict[tuple, int]) -> None:
    """Render every template with the code the run uses, so what passes `policy check` renders at run time."""
    problems = []
    for loc, command in _commands(policy):
        try:
            if not fill_command(command, _SAMPLE_VALUES):
                problems.append((loc, "the command is empty — write the program and its arguments"))
        except ValueError as exc:
            problems.append((loc, f"cannot split the command into arguments ({exc}) — balance its quotes, or "
                                  "write it as a list of arguments"))
    slack = policy.notify.slack
    if slack and slack.report_url is not None:
        try:
            render_report_url(slack.report_url, service=policy.service, version="1.0.0-rc.1+b7", run_id="rg-x_1")
        except ValueError as exc:
            problems.append((("notify", "slack", "report_url"), str(exc)))
    if problems:
        loc, message = problems[0]
        line = _line_for(loc, lines)
        raise PolicyError(f"{file}{f':{line}' if line else ''}: {_dotted(loc)}: {message}")


_SAMPLE_VALUES = {name: f"sample-{name}" for name in PLACEHOLDERS}


def _commands(policy: Policy) -> list[tuple[tuple, Command]]:
    found: list[tuple[tuple, Command]] = []
    env = policy.environment
    if env is not None:
        found += [(("environment", "setup", i), c) for i, c in enumerate(env.setup)]
        found.append((("environment", "start"), env.start))
        found += [(("environment", "dependencies", i, "start"), d.start) for i, d in enumerate(env.dependencies)]
        found += [(("environment", "workers", i, "start"), w.start) for i, w in enumerate(env.workers)]
    found += [(("suites", i, "command"), s.command) for i, s in enumerate(policy.suites)]
    if policy.scans.pip_audit:
        found += [(("scans", "pip_audit", "export", i), c) for i, c in enumerate(policy.scans.pip_audit.export)]
    if policy.migrations:
        found += [(("migrations", step), getattr(policy.migrations, step)) for step in ("up", "down")]
    return found


_URL_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")


def render_report_url(template: str, *, service: str, version: str, run_id: str) -> str:
    """The report link for a run: ``notify.slack.report_url`` with {service} {version} {run_id} filled in.

    Values are percent-encoded, so a version such as ``1.0/<!channel>`` stays inside its path segment.
    `policy check` renders every report_url with this function; ValueError says what to fix.
    """
    names = _PLACEHOLDER.findall(template)
    unknown = sorted({n for n in names if n not in REPORT_URL_PLACEHOLDERS})
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}} in report_url — it may use "
                         f"{' '.join('{' + p + '}' for p in REPORT_URL_PLACEHOLDERS)} only")
    values = {"service": service, "version": version, "run_id": run_id}
    url = fill(template, {k: quote(v, safe="") for k, v in values.items()})
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"report_url {template!r} is not an http(s) URL — write e.g. "
                         "https://gate.example.com/{service}/{version}/{run_id}/report.html")
    bad = _URL_UNSAFE.search(url)
    if bad:
        raise ValueError(f"report_url {template!r} has {bad.group()!r}, which a URL cannot hold as is — "
                         "percent-encode it (e.g. %20 for a space)")
    return url


def fill(template: str, values: dict[str, str]) -> str:
    """Fill the known placeholders of a policy string; other braces are left as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def fill_command(command: Command, values: dict[str, str]) -> list[str]:
    parts = shlex.split(command) if isinstance(command, str) else list(command)
    return [fill(p, values) for p in parts]
