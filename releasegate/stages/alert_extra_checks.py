"""What the alerts stage checks beyond promtool's own rule checks and tests, each as an `Extra` (findings,
metrics, the tests it ran):

- `budget_checks`: each load budget mapped in `alerts.budgets` has an alert that exists, is no looser than the
  budget and fires in a generated boundary test, which promtool runs beside a copy of the rule files
  (releasegate.stages.alert_budgets; the test file is kept in the evidence);
- `route_checks`: `amtool check-config` passes and each expected route of `alerts.alertmanager` reaches its
  receivers (releasegate.stages.alert_routes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from releasegate.domain.errors import StageError
from releasegate.domain.models import Finding, Metric
from releasegate.policy import Alerts, Budgets
from releasegate.stages import alert_budgets, alert_routes
from releasegate.stages.base import ToolRun, find_tool, run_tool
from releasegate.stages.promtool import PROMTOOL_OK, TestOutcome, agree, read_test, tool_text

log = logging.getLogger("releasegate")

# Exit statuses when amtool checked: check-config 0 (valid) or 1 (invalid), config routes test 0 (receivers as
# expected) or 1 (not). A signal, a timeout or any other status is an error.
AMTOOL_OK = (0, 1)


@dataclass
class Extra:
    """What the budget and route checks add to promtool's own checks and tests."""

    findings: list[Finding]
    metrics: list[Metric]
    tests: int = 0


def merge(a: Extra, b: Extra) -> Extra:
    return Extra(a.findings + b.findings, a.metrics + b.metrics, a.tests + b.tests)


def budget_checks(spec: Alerts, budgets: Budgets | None, source: Path, out_dir: Path, promtool: str,
                  loaded: bool) -> Extra:
    for name in alert_budgets.unchecked(budgets, spec.budgets):
        log.warning("alerts: alerts.budgets.%s is mapped but load.budgets sets no %s: not checked", name, name)
    rules = alert_budgets.alert_rules({f: (source / f).read_text(encoding="utf-8") for f in spec.rule_files})
    checks = alert_budgets.plan(budgets, spec.budgets, rules)
    if not checks:
        return Extra([], [])
    findings = alert_budgets.rule_findings(checks, spec.rule_files)
    runnable = [c for c in checks if c.rule is not None]
    if runnable and loaded:
        findings += _boundary_tests(spec, runnable, source, out_dir, promtool)
    covered = sum(1 for c in checks if c.rule is not None)
    metrics = [Metric(name="budgets_mapped", value=len(checks)), Metric(name="budgets_with_alert", value=covered)]
    return Extra(findings, metrics, tests=len(runnable) * 2 if loaded else 0)


def _boundary_tests(spec: Alerts, checks: list[alert_budgets.BudgetCheck], source: Path, out_dir: Path,
                    promtool: str) -> list[Finding]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "budget-tests.yml"
    doc = alert_budgets.boundary_tests(checks, _copy_rules(spec.rule_files, source, out_dir))
    path.write_text(alert_budgets.render(doc), encoding="utf-8")
    tool = run_tool([promtool, "test", "rules", str(path)], cwd=out_dir, timeout_s=spec.timeout_s,
                    log_to=out_dir / "promtool-budget-tests.log", ok=PROMTOOL_OK)
    outcome = read_test(tool, path.name)
    where = f"{out_dir.name}/{path.name}"  # the test file's place in the evidence (out_dir is <evidence>/alerts)
    return alert_budgets.case_findings(_failed_cases(outcome), checks, where)


def _copy_rules(files: list[str], source: Path, out_dir: Path) -> list[str]:
    """The rule files beside the generated tests (paths relative to them), so the evidence replays alone."""
    names = []
    for i, file in enumerate(files):
        name = f"budget-rules-{i}-{Path(file).name}"
        (out_dir / name).write_text((source / file).read_text(encoding="utf-8"), encoding="utf-8")
        names.append(name)
    return names


def _failed_cases(outcome: TestOutcome) -> dict[str, str]:
    """{case id: promtool's detail} for the generated expectations that failed."""
    failed: dict[str, str] = {}
    for problem in outcome.problems:
        case = alert_budgets.case_id(problem.key) or alert_budgets.case_id(problem.detail)
        if case is None:
            raise StageError(f"alerts: the generated budget tests did not run: {problem.title} — "
                             "check alerts.budgets (metric names, labels) against the rule files")
        failed[case] = problem.detail
    return failed


def route_checks(spec: Alerts, source: Path, out_dir: Path) -> Extra:
    assert spec.alertmanager is not None
    amtool, config = find_tool("amtool"), spec.alertmanager.config
    checked = _amtool(amtool, ["check-config", config], spec, source, out_dir, "check-config")
    broken = alert_routes.parse_check_config(tool_text(checked), config)
    agree(checked, not broken, config)
    if broken:
        return Extra([alert_routes.config_finding(config, why) for why in broken],
                     [Metric(name="routes_checked", value=0)])
    found = [_route_finding(amtool, spec, source, out_dir, i) for i in range(len(spec.alertmanager.routes))]
    findings = [f for f in found if f is not None]
    return Extra(findings, [Metric(name="routes_checked", value=len(found)),
                            Metric(name="routes_misrouted", value=len(findings))])


def _route_finding(amtool: str, spec: Alerts, source: Path, out_dir: Path, index: int) -> Finding | None:
    assert spec.alertmanager is not None
    expected = spec.alertmanager.routes[index]
    args = ["config", "routes", "test", f"--config.file={spec.alertmanager.config}",
            f"--verify.receivers={','.join(expected.receivers)}", *alert_routes.label_args(expected.labels)]
    tool = _amtool(amtool, args, spec, source, out_dir, f"route-{index}")
    actual = alert_routes.parse_routes(tool_text(tool), alert_routes.describe(expected.labels))
    return alert_routes.route_finding(spec.alertmanager.config, expected, actual)


def _amtool(binary: str, args: list[str], spec: Alerts, source: Path, out_dir: Path, name: str) -> ToolRun:
    return run_tool([binary, *args], cwd=source, timeout_s=spec.timeout_s, log_to=out_dir / f"amtool-{name}.log",
                    ok=AMTOOL_OK)
