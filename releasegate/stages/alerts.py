"""Alerts stage: promtool checks and tests the rule files, generated tests check that budgets have alerts that
would fire, amtool checks the escalation routes.

promtool (2.42) prints "Checking F" / "Unit Testing: F" on stdout and, on failure, "FAILED:" and
the details on stderr; the parsers read both as one text (stdout, a newline, stderr). A rule file
that does not load and a failing rule test are findings (the release would ship broken alerting);
promtool missing, killed or stopped at the timeout, an exit status other than 0 / 1 or one that contradicts its
output, or output without SUCCESS / FAILED, is a StageError.

With `alerts.budgets`, each mapped load budget's alert must exist, be no looser than the budget and fire in
a generated boundary test (releasegate.alert_budgets; the test file is kept in the evidence). With
`alerts.alertmanager`, `amtool check-config` must pass and each expected route must reach its receivers
(releasegate.alert_routes).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from releasegate import alert_budgets, alert_routes
from releasegate.context import RunContext
from releasegate.environment import Environment
from releasegate.errors import StageError
from releasegate.fingerprint import fingerprint, normalise_code, normalise_path
from releasegate.models import Artifact, Finding, Metric, Severity, StageResult, Status
from releasegate.policy import Alerts, Budgets, Policy
from releasegate.stages.base import ToolRun, find_tool, fresh_folder, guarded, now, run_tool
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

STAGE = "alerts"
KIND = "alerts"
FINDING_KIND = "alert"
SEVERITY = Severity.high  # rules that never load, or alerts that fire wrongly, break on-call in production
EVIDENCE_CHARS = 600
# Exit statuses when the tool checked: promtool check/test rules 0 (SUCCESS) or 1 (FAILED); amtool check-config 0
# (valid) or 1 (invalid), amtool config routes test 0 (receivers as expected) or 1 (not). A signal, a timeout or any
# other status is an error; so is a check or test whose output contradicts its status (SUCCESS with 1, FAILED with 0).
PROMTOOL_OK = (0, 1)
AMTOOL_OK = (0, 1)


@dataclass(frozen=True)
class Problem:
    """One thing promtool reported wrong: a rule that does not load or a failing test."""

    file: str         # the rule file or the test file, relative to the source
    key: str          # what identifies it across runs: group/alertname, test group, expr
    title: str
    detail: str       # promtool's own words (exp/got), for the evidence excerpt
    rule: str         # promtool-check, promtool-test, promtool-test-load


# --- parsing (pure) -------------------------------------------------------------------------------------------

_CHECK_LINE = re.compile(r'^(?P<file>[^:]+): (?:\d+:\d+: )?(?:group "(?P<group>[^"]*)", rule \d+, "(?P<name>[^"]*)": )?'
                         r"(?P<message>.+)$")


def parse_check(text: str, file: str) -> list[Problem]:
    """`promtool check rules FILE` output as problems; [] on SUCCESS; StageError if neither is recognisable."""
    if _has_marker(text, "SUCCESS"):
        return []
    if not _has_marker(text, "FAILED:"):
        raise StageError(f"promtool check rules {file}: unrecognised output: {_tail(text)}")
    lines = [line for line in _after_marker(text, "FAILED:") if line.strip()]
    problems = list({p.key: p for p in (_check_problem(line, file) for line in lines)}.values())
    return problems or [Problem(file, "does-not-load", f"{file}: rules do not load", "", "promtool-check")]


def _check_problem(line: str, file: str) -> Problem:
    match = _CHECK_LINE.match(line)
    group, name = (match["group"], match["name"]) if match and match["group"] is not None else (None, None)
    message = match["message"] if match else line
    key = f"{group}/{name}" if group is not None else _without_numbers(message)
    where = f'group "{group}", rule "{name}"' if group is not None else "file"
    return Problem(file, key, f"{file}: {where} does not load: {message}"[:300], line, "promtool-check")


def _without_numbers(message: str) -> str:
    """Line and column numbers shift with unrelated edits; they are not part of what identifies a problem."""
    return re.sub(r"\bline \d+\b|\d+:\d+", "#", message)


@dataclass(frozen=True)
class TestOutcome:
    problems: list[Problem]
    passed: bool


def parse_test(text: str, file: str) -> TestOutcome:
    """`promtool test rules FILE` output: SUCCESS, or each failing alert/expr check, or why it could not load."""
    if _has_marker(text, "SUCCESS") and not _has_marker(text, "FAILED:"):
        return TestOutcome([], True)
    if not _has_marker(text, "FAILED:"):
        raise StageError(f"promtool test rules {file}: unrecognised output: {_tail(text)}")
    blocks = _blocks(_after_marker(text, "FAILED:", keep_blank=True))
    failures = [_test_problem(block, file) for block in blocks]
    return TestOutcome(failures or [_load_problem(["(no detail)"], file)], False)


def _blocks(lines: list[str]) -> list[list[str]]:
    """One block per failing check (it starts at its `name:` line, else at `alertname:`/`expr:`);
    unindented lines (the rules or the test file did not load) are one block together."""
    blocks: list[list[str]] = []
    loads: list[str] = []
    previous = ""
    for line in (ln for ln in lines if ln.strip()):
        if not line.startswith(" "):
            loads.append(line)
        elif _starts_block(line, previous) or not blocks:
            blocks.append([line])
        else:
            blocks[-1].append(line)
        previous = line
    return blocks + ([loads] if loads else [])


_HEADER = re.compile(r"^ {4}(name|alertname|expr): ")


def _starts_block(line: str, previous: str) -> bool:
    header = _HEADER.match(line)
    return header is not None and (header[1] == "name" or not previous.lstrip().startswith("name: "))


_NAME = re.compile(r"^\s*name: (?P<name>.*),\s*$")
_ALERT = re.compile(r"^\s*alertname: (?P<alert>[^,]*), time: (?P<time>[^,]*),")
_EXPR = re.compile(r'^\s*expr: (?P<expr>".*"), time: (?P<time>[^,]*),')


def _test_problem(block: list[str], file: str) -> Problem:
    if not block[0].startswith(" "):
        return _load_problem(block, file)
    fields = _fields(block)
    detail = "\n".join(line.rstrip() for line in block)
    group = fields.get("name", "")
    if "alert" in fields:
        key = f"{group}/{fields['alert']}"
        title = f"{file}: test {group!r}: alert {fields['alert']} at {fields['time']} not as expected"
    else:
        expr = fields.get("expr", normalise_code(block[0]))
        key = f"{group}/{expr}" if group else expr
        title = f"{file}: test{f' {group!r}' if group else ''}: {expr} at {fields.get('time', '?')} not as expected"
    return Problem(file, key, title, _dedent(detail), "promtool-test")


def _fields(block: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block[:3]:
        for pattern in (_NAME, _ALERT, _EXPR):
            match = pattern.match(line)
            if match:
                fields.update(match.groupdict())
    return fields


def _load_problem(lines: list[str], file: str) -> Problem:
    detail = "\n".join(dict.fromkeys(lines))
    return Problem(file, "could-not-load", f"{file}: rule tests could not run: {lines[0][:200]}", detail,
                   "promtool-test-load")


def _has_marker(text: str, marker: str) -> bool:
    return any(line.strip().startswith(marker) for line in text.splitlines())


def _after_marker(text: str, marker: str, keep_blank: bool = False) -> list[str]:
    lines = text.splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        if line.strip().startswith(marker):
            out += [ln for ln in lines[i + 1:] if keep_blank or ln.strip()]
            out.append("")
    return out


def _dedent(text: str) -> str:
    lines = text.splitlines()
    indent = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
    return "\n".join(ln[indent:] for ln in lines)


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[-1][:200] if lines else "no output") + " — is promtool working? run it by hand on the file"


def finding(problem: Problem) -> Finding:
    path = normalise_path(problem.file)
    detail = problem.detail if len(problem.detail) <= EVIDENCE_CHARS else problem.detail[: EVIDENCE_CHARS - 1] + "…"
    return Finding(kind=FINDING_KIND, rule=problem.rule, severity=SEVERITY, title=problem.title, location=path,
                   evidence=detail, fingerprint=fingerprint(FINDING_KIND, path, problem.key), blocking=True,
                   data={"file": path, "key": problem.key})


def count_rules(text: str) -> tuple[int, int]:
    """(groups, rules) in a Prometheus rule file's YAML; (0, 0) when it does not parse."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return 0, 0
    groups = [g for g in (doc or {}).get("groups", []) or [] if isinstance(g, dict)] if isinstance(doc, dict) else []
    return len(groups), sum(len(g.get("rules") or []) for g in groups)


def count_tests(text: str) -> int:
    """Test groups in a promtool rule-test file; 0 when it does not parse."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return 0
    return len(doc.get("tests") or []) if isinstance(doc, dict) else 0


# --- running -------------------------------------------------------------------------------------------------


def run(policy: Policy, ctx: RunContext) -> StageResult:
    spec = policy.alerts
    if spec is None:
        raise ValueError("policy has no alerts section: do not schedule the alerts stage")
    budgets = policy.load.budgets if policy.load else None
    return guarded(STAGE, KIND, spec.required, lambda started: _run(spec, budgets, ctx, started))


@dataclass
class Extra:
    """What the budget and route checks add to promtool's own checks and tests."""

    findings: list[Finding]
    metrics: list[Metric]
    tests: int = 0


def _run(spec: Alerts, budgets: Budgets | None, ctx: RunContext, started: datetime) -> StageResult:
    out_dir = fresh_folder(ctx.evidence / STAGE)
    promtool = find_tool("promtool")
    config = [spec.alertmanager.config] if spec.alertmanager else []
    _require_files(spec.rule_files + spec.tests + config, ctx.source)
    checked = [_promtool(promtool, ["check", "rules", f], spec, ctx.source, out_dir, f"check-{i}") for i, f in
               enumerate(spec.rule_files)]
    tested = [_promtool(promtool, ["test", "rules", f], spec, ctx.source, out_dir, f"test-{i}") for i, f in
              enumerate(spec.tests)]
    problems = [p for f, t in zip(spec.rule_files, checked) for p in _checked(t, f)]
    outcomes = [_tested(t, f) for f, t in zip(spec.tests, tested)]
    extra = _budget_checks(spec, budgets, ctx.source, out_dir, promtool, loaded=not problems)
    if spec.alertmanager:
        extra = _merge(extra, _route_checks(spec, ctx.source, out_dir))
    result = _result(spec, ctx.source, started, problems, outcomes, out_dir, extra)
    log.info("%s", result.summary)
    return result


def _merge(a: Extra, b: Extra) -> Extra:
    return Extra(a.findings + b.findings, a.metrics + b.metrics, a.tests + b.tests)


# --- budgets have alerts that would fire ---------------------------------------------------------------------


def _budget_checks(spec: Alerts, budgets: Budgets | None, source: Path, out_dir: Path, promtool: str,
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
    outcome = _tested(tool, path.name)
    return alert_budgets.case_findings(_failed_cases(outcome), checks, f"{STAGE}/{path.name}")


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


# --- escalation routes -------------------------------------------------------------------------------------


def _route_checks(spec: Alerts, source: Path, out_dir: Path) -> Extra:
    assert spec.alertmanager is not None
    amtool, config = find_tool("amtool"), spec.alertmanager.config
    checked = _amtool(amtool, ["check-config", config], spec, source, out_dir, "check-config")
    broken = alert_routes.parse_check_config(_text(checked), config)
    _agree(checked, not broken, config)
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
    actual = alert_routes.parse_routes(_text(tool), alert_routes.describe(expected.labels))
    return alert_routes.route_finding(spec.alertmanager.config, expected, actual)


def _amtool(binary: str, args: list[str], spec: Alerts, source: Path, out_dir: Path, name: str) -> ToolRun:
    return run_tool([binary, *args], cwd=source, timeout_s=spec.timeout_s, log_to=out_dir / f"amtool-{name}.log",
                    ok=AMTOOL_OK)


# --- promtool ------------------------------------------------------------------------------------------------


def _require_files(files: list[str], source: Path) -> None:
    missing = [f for f in files if not (source / f).is_file()]
    if missing:
        raise StageError(f"alerts: file(s) not found in the service source: {', '.join(missing)} — "
                         "fix alerts.rule_files / alerts.tests / alerts.alertmanager.config "
                         "(paths are relative to the source)")


def _promtool(binary: str, args: list[str], spec: Alerts, source: Path, out_dir: Path, name: str) -> ToolRun:
    return run_tool([binary, *args], cwd=source, timeout_s=spec.timeout_s, log_to=out_dir / f"promtool-{name}.log",
                    ok=PROMTOOL_OK)


def _text(tool: ToolRun) -> str:
    return f"{tool.stdout}\n{tool.stderr}"


def _checked(tool: ToolRun, file: str) -> list[Problem]:
    problems = parse_check(_text(tool), file)
    _agree(tool, not problems, file)
    return problems


def _tested(tool: ToolRun, file: str) -> TestOutcome:
    outcome = parse_test(_text(tool), file)
    _agree(tool, outcome.passed, file)
    return outcome


def _agree(tool: ToolRun, passed: bool, file: str) -> None:
    """A check's exit status must say what its output says (0: SUCCESS, 1: FAILED), or neither is believed."""
    if tool.returncode != (0 if passed else 1):
        raise StageError(f"{tool.ending()} but printed {'SUCCESS' if passed else 'FAILED'} for {file}: its exit "
                         f"status and its output disagree, so neither is believed — see {tool.log}")


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
