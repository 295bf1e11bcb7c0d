"""Escalation routes: amtool 0.25 output parsed into findings. Pure; the alerts stage runs amtool.

`amtool check-config F` prints "Checking 'F'  SUCCESS" (exit 0) or "Checking 'F'  FAILED: why" (exit 1)
on stdout; "amtool: error: path 'F' does not exist" on stderr when there is nothing to check.
`amtool config routes test --config.file=F --verify.receivers=a,b k=v …` prints the receivers the labels
resolve to, comma-separated in routing-tree order, on stdout's first line; with --verify.receivers it adds
"WARNING: Expected receivers did not match resolved receivers." and exits 1 on a mismatch. amtool compares
the joined strings, so order matters to it; the gate compares the sets itself (order is not escalation).
A config that does not load prints "amtool: error: …" on stderr and no receivers.
As with promtool, each parser reads stdout, a newline, then stderr as one text.
"""

from __future__ import annotations

import re

from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Finding, Severity
from releasegate.policy import RouteExpectation

FINDING_KIND = "alert"
SEVERITY = Severity.high

_CHECKED = re.compile(r"^Checking '(?P<file>.*)'\s+(?P<outcome>SUCCESS|FAILED: (?P<why>.*))$")
_ERROR = re.compile(r"^amtool: error: (?P<why>.*)$")


def parse_check_config(text: str, file: str) -> list[str]:
    """Why the config does not load ([] when it does); StageError when amtool checked nothing."""
    outcomes = [m for m in (_CHECKED.match(line.strip()) for line in text.splitlines()) if m]
    if not outcomes:
        raise StageError(f"amtool check-config {file}: {_error(text)} — is amtool working? run it by hand on the file")
    return [m["why"] for m in outcomes if m["why"] is not None]


def parse_routes(text: str, what: str) -> list[str]:
    """The receivers `amtool config routes test` resolved; StageError when it printed none."""
    for line in (ln.strip() for ln in text.splitlines()):
        if line and not line.lower().startswith(("warning:", "amtool:")):
            return [r for r in line.split(",") if r]
    raise StageError(f"amtool config routes test {what}: {_error(text)}")


def _error(text: str) -> str:
    errors = [m["why"] for m in (_ERROR.match(line.strip()) for line in text.splitlines()) if m]
    if errors:
        return errors[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"unrecognised output: {lines[-1][:200] if lines else 'no output'}"


def label_args(labels: dict[str, str]) -> list[str]:
    """amtool's label arguments, quoted as matchers so values may hold spaces and commas."""
    return [f'{name}="{_escape(value)}"' for name, value in labels.items()]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def describe(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items())


def config_finding(file: str, why: str) -> Finding:
    return Finding(kind=FINDING_KIND, rule="amtool-check-config", severity=SEVERITY,
                   title=f"{file}: Alertmanager config does not load: {why}"[:300], location=file, evidence=why,
                   fingerprint=fingerprint(FINDING_KIND, "amtool-check-config", file), blocking=True,
                   data={"file": file})


def route_finding(file: str, expected: RouteExpectation, actual: list[str]) -> Finding | None:
    """A mis-route: the labels reach other receivers than expected (None when they match, in any order)."""
    if sorted(set(actual)) == sorted(set(expected.receivers)):
        return None
    labels = describe(expected.labels)
    title = (f"alert {{{labels}}} routes to {', '.join(actual) or 'nothing'}, "
             f"expected {', '.join(expected.receivers)}")
    return Finding(kind=FINDING_KIND, rule="alert-route", severity=SEVERITY, title=title, location=file,
                   evidence=f"amtool config routes test --config.file={file} {' '.join(label_args(expected.labels))}"
                            f"\nresolved: {','.join(actual)}\nexpected: {','.join(expected.receivers)}",
                   fingerprint=fingerprint(FINDING_KIND, "alert-route", file, *sorted(label_args(expected.labels))),
                   blocking=True, data={"labels": expected.labels, "expected": expected.receivers, "actual": actual})
