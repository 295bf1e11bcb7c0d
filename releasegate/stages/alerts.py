"""Alerts stage: promtool checks and tests the rule files, generated tests check that budgets have alerts that
would fire, amtool checks the escalation routes.

promtool (2.42) prints "Checking F" / "Unit Testing: F" on stdout and, on failure, "FAILED:" and
the details on stderr; the parsers read both as one text (stdout, a newline, stderr). A rule file
that does not load and a failing rule test are findings (the release would ship broken alerting);
promtool missing, killed or stopped at the timeout, an exit status other than 0 / 1 or one that contradicts its
output, or output without SUCCESS / FAILED, is a StageError.

With `alerts.budgets`, each mapped load budget's alert must exist, be no looser than the budget and fire in
a generated boundary test (releasegate.stages.alert_budgets; the test file is kept in the evidence). With
`alerts.alertmanager`, `amtool check-config` must pass and each expected route must reach its receivers
(releasegate.stages.alert_routes).

promtool's run and output: releasegate.stages.promtool; the budget and route checks:
releasegate.stages.alert_extra_checks.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.domain.models import Artifact, Metric, StageResult, Status
from releasegate.environment import Environment
from releasegate.policy import Alerts, Budgets, Policy
from releasegate.stages.alert_extra_checks import Extra, budget_checks, merge, route_checks
from releasegate.stages.base import find_tool, fresh_folder, guarded, now
from releasegate.stages.promtool import (
    Problem,
    TestOutcome,
    count_rules,
    count_tests,
    finding,
    parse_check,
    parse_test,
    read_check,
    read_test,
    run_promtool,
)
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

# what the tests read from the alerts stage, wherever it lives
__all__ = ["count_rules", "count_tests", "finding", "parse_check", "parse_test", "run", "run_planned"]

STAGE = "alerts"
KIND = "alerts"


def run(policy: Policy, ctx: RunContext) -> StageResult:
    spec = policy.alerts
    if spec is None:
        raise ValueError("policy has no alerts section: do not schedule the alerts stage")
    budgets = policy.load.budgets if policy.load else None
    return guarded(STAGE, KIND, spec.required, lambda started: _run(spec, budgets, ctx, started))


def _run(spec: Alerts, budgets: Budgets | None, ctx: RunContext, started: datetime) -> StageResult:
    out_dir = fresh_folder(ctx.evidence / STAGE)
    promtool = find_tool("promtool")
    config = [spec.alertmanager.config] if spec.alertmanager else []
    _require_files(spec.rule_files + spec.tests + config, ctx.source)
    checked = [run_promtool(promtool, ["check", "rules", f], spec, ctx.source, out_dir, f"check-{i}") for i, f in
               enumerate(spec.rule_files)]
    tested = [run_promtool(promtool, ["test", "rules", f], spec, ctx.source, out_dir, f"test-{i}") for i, f in
              enumerate(spec.tests)]
    problems = [p for f, t in zip(spec.rule_files, checked) for p in read_check(t, f)]
    outcomes = [read_test(t, f) for f, t in zip(spec.tests, tested)]
    extra = budget_checks(spec, budgets, ctx.source, out_dir, promtool, loaded=not problems)
    if spec.alertmanager:
        extra = merge(extra, route_checks(spec, ctx.source, out_dir))
    result = _result(spec, ctx.source, started, problems, outcomes, out_dir, extra)
    log.info("%s", result.summary)
    return result


def _require_files(files: list[str], source: Path) -> None:
    missing = [f for f in files if not (source / f).is_file()]
    if missing:
        raise StageError(f"alerts: file(s) not found in the service source: {', '.join(missing)} — "
                         "fix alerts.rule_files / alerts.tests / alerts.alertmanager.config "
                         "(paths are relative to the source)")


def _result(spec: Alerts, source: Path, started: datetime, problems: list[Problem], outcomes: list[TestOutcome],
            out_dir: Path, extra: Extra) -> StageResult:
    findings = [finding(p) for p in problems + [p for o in outcomes for p in o.problems]] + extra.findings
    groups, rules = _rule_counts(spec, source)
    tests = sum(count_tests((source / f).read_text(encoding="utf-8")) for f in spec.tests)
    failed = sum(len(o.problems) for o in outcomes)
    summary = (f"alerts: {len(spec.rule_files)} rule files ({rules} rules, {len(problems)} not loading), "
               f"{len(spec.tests)} test files ({tests} test groups, {failed} failures)"
               f"{_extra_summary(extra)}; logs: {out_dir}")
    return StageResult(
        stage=STAGE, kind=KIND, status=Status.failed if findings else Status.passed, required=spec.required,
        started=started, finished=now(), summary=summary, findings=findings,
        metrics=[Metric(name="rule_files", value=len(spec.rule_files)), Metric(name="rule_groups", value=groups),
                 Metric(name="rules", value=rules), Metric(name="rules_not_loading", value=len(problems)),
                 Metric(name="test_files", value=len(spec.tests)), Metric(name="tests", value=tests),
                 Metric(name="tests_failed", value=failed), *extra.metrics],
        artifacts=[Artifact.of(p) for p in sorted([*out_dir.glob("promtool-*.log"), *out_dir.glob("amtool-*.log"),
                                                   *out_dir.glob("budget-*.yml")])],
        evidence_empty=tests + extra.tests == 0)


def _extra_summary(extra: Extra) -> str:
    values = {m.name: int(m.value) for m in extra.metrics}
    parts = []
    if "budgets_mapped" in values:
        parts.append(f"{values['budgets_with_alert']}/{values['budgets_mapped']} budgets with an alert")
    if "routes_checked" in values:
        parts.append(f"{values['routes_checked']} routes checked ({values.get('routes_misrouted', 0)} misrouted)")
    extra_findings = len(extra.findings)
    return (", " + ", ".join(parts) + f" ({extra_findings} findings)") if parts else ""


def _rule_counts(spec: Alerts, source: Path) -> tuple[int, int]:
    counts = [count_rules((source / f).read_text(encoding="utf-8")) for f in spec.rule_files]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    """The stage as the registry runs it (releasegate/stages/registry.py): it needs no service."""
    return run(policy, ctx)
