"""What report.html and results.md show: the templates' view model.

A large run is shown in part and counted in full: the most severe reasons, failing tests, finding groups (by
rule, or by package for a dependency advisory) and register rows up to a limit each, and how many more there are.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.models import Finding, Severity, StageResult, Status, Verdict
from releasegate.report.checklist import CheckItem
from releasegate.report.formatting import key_metrics, remediation, utc
from releasegate.report.register import RiskItem

log = logging.getLogger("releasegate")

INCONCLUSIVE_NOTE = "the gate could not decide: fix the gate's inputs, not necessarily the service"


def view_model(ctx: RunContext, policy_digest: str, results: list[StageResult], verdict: Verdict,
               tool_versions: dict[str, str], register: list[RiskItem], checklist: list[CheckItem]) -> dict:
    return {**_layout(results, verdict, register),
        "ctx": ctx, "verdict": verdict, "decision": verdict.decision.value,
        "decided_at": utc(verdict.decided_at).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "inconclusive_note": INCONCLUSIVE_NOTE, "policy_digest": policy_digest,
        "tool_versions": dict(sorted(tool_versions.items())),
        "reasons": sorted(verdict.reasons, key=lambda r: -r.severity.rank)[:REASONS_SHOWN],
        "stages": [_stage_view(r, ctx) for r in results],
        "artifacts": [(r.stage, a, _relative(a.path, ctx)) for r in results for a in r.artifacts],
        "register": register, "checklist": checklist,
        "charts": evidence_charts(ctx.evidence),
        "waivers": verdict.waivers, "defect_changes": verdict.defects, "new_defects": verdict.new_defects,
        "old_defects": verdict.old_defects, "fixed_defects": [d for d in verdict.defects if d.state == "fixed"],
    }


REASONS_SHOWN = 100        # the verdict's reasons, most severe first
FAILING_SHOWN = 2_000      # failing, erroring and flaky tests, listed whole
GROUPS_SHOWN = 200         # finding groups (by rule, or by package for a dependency advisory)
GROUP_FINDINGS_SHOWN = 5   # findings shown whole in each group
ROWS_SHOWN = 500           # risk register rows, defects per list
NOT_PASSING = frozenset({"failed", "error", "flaky"})


@dataclass(frozen=True)
class FindingGroup:
    stage: str
    kind: str
    key: str                  # the rule, or the package a dependency advisory is about
    severity: Severity
    blocking: int
    findings: list[Finding]

    @property
    def shown(self) -> list[Finding]:
        return self.findings[:GROUP_FINDINGS_SHOWN]


def finding_groups(results: list[StageResult]) -> list[FindingGroup]:
    """The findings by stage and rule (a dependency advisory by package), most severe and largest group first."""
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for result in results:
        for finding in result.findings:
            key = finding.location if finding.kind == "vulnerability" and finding.location else finding.rule
            groups.setdefault((result.stage, finding.kind, key), []).append(finding)
    made = [FindingGroup(stage, kind, key, max((f.severity for f in fs), key=lambda v: v.rank),
                         sum(f.blocking for f in fs), sorted(fs, key=lambda f: (-f.severity.rank, f.fingerprint)))
            for (stage, kind, key), fs in groups.items()]
    return sorted(made, key=lambda g: (-g.severity.rank, -g.blocking, -len(g.findings), g.stage, g.key))


def test_summary(results: list[StageResult]) -> dict[str, int]:
    """Every suite's cases by outcome (from the per-module counts; a result without them, from its cases)."""
    totals = dict.fromkeys(("passed", "failed", "error", "flaky", "skipped"), 0)
    for result in results:
        if result.test_groups:
            for group in result.test_groups:
                for outcome in totals:
                    totals[outcome] += getattr(group, outcome)
        else:
            for case in result.test_cases:
                totals[case.outcome] = totals.get(case.outcome, 0) + 1
    return totals


def _layout(results: list[StageResult], verdict: Verdict, register: list[RiskItem]) -> dict[str, Any]:
    failing = [(r.stage, c) for r in results for c in r.test_cases if c.outcome in NOT_PASSING]
    groups = finding_groups(results)
    severities = [f.severity.value for r in results for f in r.findings]
    defect_lists = {"new": verdict.new_defects, "old": verdict.old_defects,
                    "fixed": [d for d in verdict.defects if d.state == "fixed"]}
    return {
        "summary": {"stages": {s.value: sum(r.status is s for r in results) for s in Status},
                    "tests": test_summary(results), "findings": len(severities),
                    "by_severity": {v.value: severities.count(v.value) for v in sorted(Severity, key=lambda v: -v.rank)},
                    "defects": {k: len(v) for k, v in defect_lists.items()}},
        "reasons_more": max(0, len(verdict.reasons) - REASONS_SHOWN),
        "failing_tests": failing[:FAILING_SHOWN], "failing_more": max(0, len(failing) - FAILING_SHOWN),
        "test_groups": [(r.stage, g) for r in results for g in r.test_groups],
        "finding_groups": groups[:GROUPS_SHOWN], "groups_more": groups[GROUPS_SHOWN:],
        "register_shown": register[:ROWS_SHOWN], "register_more": max(0, len(register) - ROWS_SHOWN),
        "rows_shown": ROWS_SHOWN,
    }


def _stage_view(result: StageResult, ctx: RunContext) -> dict[str, Any]:
    seconds = (result.finished - result.started).total_seconds()
    return {"r": result, "duration": f"{seconds:.1f} s", "key_metrics": key_metrics(result),
            "remediation": remediation(result), "scope": f"{ctx.service}@{ctx.version} {result.stage}",
            "when": utc(result.finished).strftime("%Y-%m-%d %H:%M:%S")}


CHART_SOURCES = {"series": "locust/series.json", "stress_steps": "locust/stress-steps.json",
                 "soak": "locust/soak.json", "chaos_timeline": "chaos/timeline.json"}


def evidence_charts(folder: Path) -> list[dict[str, Any]]:
    """Inline SVG charts from the series the stages left in the evidence folder (unreadable ones are skipped)."""
    from markupsafe import Markup

    from releasegate.report.charts import run_charts

    docs = {key: _read_json(folder / rel) for key, rel in CHART_SOURCES.items()}
    return [{"id": c.id, "title": c.title, "svg": Markup(c.svg)} for c in run_charts(**docs)]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError) as exc:
        log.warning("report: %s cannot be read for a chart (%s); the chart is left out", path, exc)
        return None


def _relative(path: str, ctx: RunContext) -> str:
    try:
        return Path(path).resolve().relative_to(ctx.evidence.resolve()).as_posix()
    except ValueError:
        return path
