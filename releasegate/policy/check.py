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

from releasegate.policy.check_files import _check_policy_files, _check_source_files, _source
from releasegate.policy.check_placeholders import _check_placeholders_in_place
from releasegate.policy.check_ports import _check_ports
from releasegate.policy.check_report import CheckReport, Problem
from releasegate.policy.explain import dotted, line_of
from releasegate.policy.model import Policy


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
