"""Budgets have alerts that would fire: find the alert that covers each load budget, read its threshold and
generate promtool boundary tests for it (research gap 5). Pure: YAML text in, plans and findings out.

For each budget of `load.budgets` mapped in `alerts.budgets`:
1. the alert must exist in the rule files (else a finding: the budget has no alert);
2. its threshold (`… > 0.25` at the end of its expr), in the budget's unit, must be no looser than the budget;
3. a generated promtool test feeds a value just past the budget for longer than the rule's `for:` and
   expects the alert to fire (and not before `for:` has passed), and a value just under the budget (or
   under the threshold, whichever is stricter) and expects silence.

The tests ask `max(ALERTS{alertname="X", alertstate="firing"}) or vector(0)` rather than `alert_rule_test`,
so they hold whatever labels and annotations the rule renders. Each expression ends in a PromQL comment,
`# releasegate: <budget>/<case>`, which promtool echoes back when it fails: that is how a failure is traced
to its budget.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Finding, Severity
from releasegate.policy import AlertBudgets, BudgetAlert, Budgets, FeedSeries

FINDING_KIND = "alert"
SEVERITY = Severity.high
INTERVAL_S = 60          # the generated tests' scrape and evaluation interval
SETTLE_S = 2 * INTERVAL_S  # past `for:`: one interval for rate() to have two samples, one to spare
LOWER_BOUNDS = {"min_rps"}  # budgets breached by going below; the others by going above
UNITS = {"p50_ms": "ms", "p95_ms": "ms", "p99_ms": "ms", "error_rate": "", "min_rps": "req/s"}


@dataclass(frozen=True)
class Rule:
    """One alerting rule as written in a rule file."""

    name: str
    expr: str
    for_s: float
    file: str


@dataclass(frozen=True)
class Threshold:
    operator: str   # > >= < <= == !=
    value: float    # in the alert's unit


@dataclass(frozen=True)
class BudgetCheck:
    """A budget, the alert mapped to it, and what the rule files say about that alert."""

    budget: str
    limit: float          # the budget, in its own unit (ms, ratio, req/s)
    mapping: BudgetAlert
    rule: Rule | None
    threshold: Threshold | None

    @property
    def scale(self) -> float:
        return self.mapping.scale or (0.001 if self.budget.endswith("_ms") else 1.0)

    @property
    def lower_bound(self) -> bool:
        return self.budget in LOWER_BOUNDS

    def threshold_in_budget_unit(self) -> float | None:
        return None if self.threshold is None else self.threshold.value / self.scale


def alert_rules(texts: dict[str, str]) -> dict[str, list[Rule]]:
    """Alerting rules by name from rule files' YAML ({file: text}); files that do not parse give none."""
    found: dict[str, list[Rule]] = {}
    for file, text in texts.items():
        for raw in _raw_rules(text):
            if isinstance(raw, dict) and raw.get("alert"):
                rule = Rule(str(raw["alert"]), str(raw.get("expr", "")), parse_duration(str(raw.get("for", "0s"))), file)
                found.setdefault(rule.name, []).append(rule)
    return found


def _raw_rules(text: str) -> list[Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    groups = doc.get("groups") or [] if isinstance(doc, dict) else []
    return [r for g in groups if isinstance(g, dict) for r in (g.get("rules") or [])]


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """A Prometheus duration ("5m", "1h30m", "0s") in seconds; ValueError when it is not one."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(n) * _DURATION_S[u] for n, u in parts)


_THRESHOLD = re.compile(r"(>=|<=|==|!=|>|<)\s*(?:bool\s+)?(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def read_threshold(expr: str) -> Threshold | None:
    """The comparison at the end of an alert expression (`… > 0.25`); None when there is none to read."""
    match = _THRESHOLD.search(_without_comments(expr).strip())
    return Threshold(match[1], float(match["value"])) if match else None


def _without_comments(expr: str) -> str:
    """PromQL comments run from a # outside quotes to the end of the line."""
    return "\n".join(_COMMENT.sub(r"\1", line) for line in expr.splitlines())


_COMMENT = re.compile(r"""^((?:[^#"'`]|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)*)#.*$""")


def plan(budgets: Budgets | None, mappings: AlertBudgets, rules: dict[str, list[Rule]]) -> list[BudgetCheck]:
    """One check per budget that is both set in load.budgets and mapped to an alert."""
    checks = []
    for name in AlertBudgets.model_fields:
        mapping: BudgetAlert | None = getattr(mappings, name)
        limit = getattr(budgets, name, None) if budgets else None
        if mapping is None or limit is None:
            continue
        rule = _most_sensitive(rules.get(mapping.alert, []), name in LOWER_BOUNDS)
        checks.append(BudgetCheck(name, float(limit), mapping, rule, read_threshold(rule.expr) if rule else None))
    return checks


def unchecked(budgets: Budgets | None, mappings: AlertBudgets) -> list[str]:
    """Budgets mapped to an alert that load.budgets does not set (nothing to check them against)."""
    return [n for n in AlertBudgets.model_fields if getattr(mappings, n) and getattr(budgets, n, None) is None]


def _most_sensitive(rules: list[Rule], lower_bound: bool) -> Rule | None:
    """Of several rules with the same alert name (warning and critical), the one that fires first."""
    readable = [(read_threshold(r.expr), r) for r in rules]
    ranked = sorted(((t.value, r) for t, r in readable if t), key=lambda p: p[0], reverse=lower_bound)
    return ranked[0][1] if ranked else (rules[0] if rules else None)


def rule_findings(checks: list[BudgetCheck], rule_files: list[str]) -> list[Finding]:
    """A budget whose alert is missing, or whose threshold is looser than the budget."""
    found = [_missing(c, rule_files) for c in checks if c.rule is None]
    found += [_loose(c) for c in checks if c.rule is not None and _is_loose(c)]
    return found


def _missing(check: BudgetCheck, rule_files: list[str]) -> Finding:
    alert = check.mapping.alert
    return _finding("budget-alert-missing", check.budget, alert,
                    f"budget {check.budget} has no alert: {alert} not found in {', '.join(rule_files)}",
                    location=", ".join(rule_files),
                    evidence=f"load.budgets.{check.budget} = {fmt(check.budget, check.limit)}; "
                             f"alerts.budgets.{check.budget}.alert = {alert}; no alerting rule has that name")


def _is_loose(check: BudgetCheck) -> bool:
    value = check.threshold_in_budget_unit()
    if value is None:
        return False
    slack = 1e-9 * max(abs(check.limit), 1.0)
    return value < check.limit - slack if check.lower_bound else value > check.limit + slack


def _loose(check: BudgetCheck) -> Finding:
    assert check.rule is not None and check.threshold is not None
    value = check.threshold_in_budget_unit()
    side = "below" if check.lower_bound else "above"
    title = (f"budget {check.budget}: {check.rule.name} fires only {side} {fmt(check.budget, value)}, "
             f"looser than the {fmt(check.budget, check.limit)} budget")
    return _finding("budget-alert-threshold", check.budget, check.rule.name, title, location=check.rule.file,
                    evidence=f"expr: {check.rule.expr.strip()}\nthreshold {check.threshold.operator} "
                             f"{check.threshold.value:g} (× {1 / check.scale:g} = {fmt(check.budget, value)}); "
                             f"budget {fmt(check.budget, check.limit)}",
                    data={"value": value, "threshold": check.limit})


def _finding(rule: str, budget: str, alert: str, title: str, *, location: str, evidence: str,
             data: dict[str, Any] | None = None) -> Finding:
    return Finding(kind=FINDING_KIND, rule=rule, severity=SEVERITY, title=title, location=location,
                   evidence=evidence, fingerprint=fingerprint(FINDING_KIND, rule, budget, alert), blocking=True,
                   data={"budget": budget, "alert": alert, **(data or {})})


def fmt(budget: str, value: float | None) -> str:
    if value is None:
        return "?"
    if budget == "error_rate":
        return f"{value:.4g} ({value * 100:.3g} %)"
    return f"{value:.4g} {UNITS.get(budget, '')}".strip()


@dataclass(frozen=True)
class Case:
    """One generated expectation: `fires` (past the budget), `early` (not before for:), `quiet` (under it)."""

    budget: str
    alert: str
    name: str
    value: float       # in the budget's unit
    eval_s: float
    expect_firing: bool
    for_s: float

    @property
    def id(self) -> str:
        return f"{self.budget}/{self.name}"


def cases(check: BudgetCheck) -> list[Case]:
    """The boundary cases for one budget whose alert exists."""
    assert check.rule is not None
    margin = check.mapping.margin
    past = check.limit * (1 - margin if check.lower_bound else 1 + margin)
    strictest = _strictest(check)
    under = strictest * (1 + margin if check.lower_bound else 1 - margin)
    for_s, alert = check.rule.for_s, check.rule.name
    out = [Case(check.budget, alert, "fires", past, for_s + SETTLE_S, True, for_s)]
    if for_s >= INTERVAL_S:
        out.append(Case(check.budget, alert, "early", past, for_s - INTERVAL_S, False, for_s))
    return out + [Case(check.budget, alert, "quiet", under, for_s + SETTLE_S, False, for_s)]


def _strictest(check: BudgetCheck) -> float:
    """The value the alert must stay quiet under: the budget, or the threshold when that is stricter."""
    threshold = check.threshold_in_budget_unit()
    if threshold is None:
        return check.limit
    return max(threshold, check.limit) if check.lower_bound else min(threshold, check.limit)


def boundary_tests(checks: list[BudgetCheck], rule_paths: list[str]) -> dict[str, Any]:
    """A promtool rule-test document: per budget, one group past the budget and one under it."""
    groups = []
    for check in (c for c in checks if c.rule is not None):
        by_value: dict[float, list[Case]] = {}
        for case in cases(check):
            by_value.setdefault(case.value, []).append(case)
        groups += [_group(check, value, group) for value, group in by_value.items()]
    return {"rule_files": rule_paths, "evaluation_interval": f"{INTERVAL_S}s", "tests": groups}


def render(doc: dict[str, Any]) -> str:
    header = "# Generated by releasegate from alerts.budgets and load.budgets: boundary tests for budget alerts.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=1000)


def _group(check: BudgetCheck, value: float, group: list[Case]) -> dict[str, Any]:
    alert_value = value * check.scale
    horizon = max(c.eval_s for c in group) + 3 * INTERVAL_S
    what = "past" if group[0].expect_firing or group[0].name == "early" else "under"
    return {"name": f"budget {check.budget}: {check.mapping.alert} at {fmt(check.budget, value)} ({what} the budget)",
            "interval": f"{INTERVAL_S}s",
            "input_series": input_series(check.mapping.series, alert_value, int(horizon // INTERVAL_S)),
            "promql_expr_test": [_expectation(c) for c in group]}


def _expectation(case: Case) -> dict[str, Any]:
    return {"expr": f"max(ALERTS{{alertname={json.dumps(case.alert)},alertstate=\"firing\"}}) or vector(0)"
                    f" # releasegate: {case.id}",
            "eval_time": f"{int(case.eval_s)}s",
            "exp_samples": [{"labels": "{}", "value": 1 if case.expect_firing else 0}]}


def input_series(feed: FeedSeries, value: float, steps: int) -> list[dict[str, str]]:
    """promtool input_series that make the alert's expression see `value` (in the alert's unit)."""
    if feed.shape == "histogram":
        return [_series(feed.metric, {**feed.labels, "le": _num(value)}, f"0x{steps}"),
                _series(feed.metric, {**feed.labels, "le": "+Inf"}, f"0+100x{steps}")]
    if feed.shape == "ratio":
        total = 1000.0
        return [_series(feed.metric, {**feed.labels, **feed.bad}, f"0+{_num(total * value)}x{steps}"),
                _series(feed.metric, {**feed.labels, **feed.good}, f"0+{_num(total * (1 - value))}x{steps}")]
    if feed.shape == "rate":
        return [_series(feed.metric, feed.labels, f"0+{_num(value * INTERVAL_S)}x{steps}")]
    return [_series(feed.metric, feed.labels, f"{_num(value)}x{steps}")]


def _series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f"{k}={json.dumps(str(v))}" for k, v in labels.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.12g}"


_CASE_ID = re.compile(r"# releasegate: (?P<budget>[a-z0-9_]+)/(?P<case>[a-z]+)")


def case_id(text: str) -> str | None:
    """The `<budget>/<case>` a failing generated expectation carries in its PromQL comment."""
    match = _CASE_ID.search(text)
    return f"{match['budget']}/{match['case']}" if match else None


def case_findings(failed: dict[str, str], checks: list[BudgetCheck], test_path: str) -> list[Finding]:
    """Findings for failed cases ({case id: promtool's detail}); ids the plan does not know are ignored."""
    known = {c.id: (check, c) for check in checks if check.rule is not None for c in cases(check)}
    return [_case_finding(*known[i], detail, test_path) for i, detail in failed.items() if i in known]


def _case_finding(check: BudgetCheck, case: Case, detail: str, test_path: str) -> Finding:
    value, limit = fmt(case.budget, case.value), fmt(case.budget, check.limit)
    held = f"held for {_dur(case.eval_s)} (for: {_dur(case.for_s)})"
    titles = {
        "fires": f"budget {case.budget}: {case.alert} did not fire at {value}, past the {limit} budget, {held}",
        "early": f"budget {case.budget}: {case.alert} fired at {_dur(case.eval_s)}, before its for: "
                 f"{_dur(case.for_s)} had passed",
        "quiet": f"budget {case.budget}: {case.alert} fired at {value}, inside the {limit} budget",
    }
    return _finding(f"budget-alert-{case.name}", case.budget, case.alert, titles[case.name], location=test_path,
                    evidence=detail, data={"value": case.value, "threshold": check.limit, "case": case.id})


def _dur(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s" if rest else f"{minutes}m"
