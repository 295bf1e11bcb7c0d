"""The run's evidence folder: HTML report, Markdown test log, risk register, checklist, manifest.

`render_report` turns the stage results and the verdict into files a person can read and a
machine can replay; `compile_report` also writes them, each atomically, and the manifest last.
Text that came from tools is redacted once, at the start, so nothing downstream can leak a secret.
Nothing here reads the clock: dates come from the verdict.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context

from releasegate.atomic import is_temporary, write_atomic
from releasegate.context import RunContext, safe_name
from releasegate.fingerprint import fingerprint
from releasegate.models import Finding, Metric, Reason, Severity, StageResult, Status, Verdict, sha256_file
from releasegate.redact import redact

log = logging.getLogger("releasegate")

SCHEMA_VERSION = "releasegate.evidence/v2"  # v2: findings and test cases in stages/*.json, the register in its file
RISK_REGISTER = "risk-register.json"
MANIFEST = "MANIFEST.sha256"
SLA_DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 120}
INCONCLUSIVE_NOTE = "the gate could not decide: fix the gate's inputs, not necessarily the service"
CLOSED_DEFECT = {"fixed", "closed"}


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path
    evidence_json: Path
    manifest: Path
    manifest_sha256: str


@dataclass(frozen=True)
class RiskItem:
    id: str
    title: str
    severity: str
    owner: str
    status: str
    due: str
    source: str


@dataclass(frozen=True)
class CheckItem:
    item: str
    checked: bool
    evidence: str


def compile_report(ctx: RunContext, policy_digest: str, results: list[StageResult], verdict: Verdict, *,
                   tool_versions: dict[str, str], defects: list[dict] | None = None) -> ReportPaths:
    """Write the run's report files into ctx.evidence, each atomically, the manifest last; return where they are."""
    rendered = render_report(ctx, policy_digest, results, verdict, tool_versions=tool_versions, defects=defects)
    out = ctx.evidence
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.documents.items():
        write_atomic(out / name, text)
    manifest_sha = write_manifest(out)
    return _paths(out, manifest_sha)


@dataclass(frozen=True)
class Rendered:
    """The report files' contents, by name in the evidence folder, rendered but not written yet."""

    documents: dict[str, str]
    register: list[RiskItem]
    checklist: list[CheckItem]


def render_report(ctx: RunContext, policy_digest: str, results: list[StageResult], verdict: Verdict, *,
                  tool_versions: dict[str, str], defects: list[dict] | None = None,
                  redacted: bool = False) -> Rendered:
    """Every report file as text (nothing written): a template or a value that cannot be rendered fails here,
    before the gate records a verdict or replaces a file. ``redacted``: the results and the verdict's reasons were
    redacted where they entered the gate (as the pipeline's are), so their texts are not walked again here."""
    if not redacted:
        results = [redact_result(r) for r in results]
        verdict = redact_verdict(verdict)
    register = risk_register(results, verdict, defects or [])
    checklist = readiness_checklist(results, verdict)
    model = _view_model(ctx, policy_digest, results, verdict, tool_versions, register, checklist)
    document = evidence_document(ctx, policy_digest, results, verdict, tool_versions, register, checklist)
    env = template_env()
    documents = {"report.html": env.get_template("report.html.j2").render(**model),
                 "results.md": env.get_template("results.md.j2").render(**model),
                 RISK_REGISTER: _json_text(risk_register_rows(register)),
                 "evidence.json": _json_text(document)}
    log.info("report: %s %s@%s, %d stage(s), %d risk row(s), checklist %d/%d", verdict.decision.value, ctx.service,
             ctx.version, len(results), len(register), sum(c.checked for c in checklist), len(checklist))
    return Rendered(documents, register, checklist)


def _paths(out: Path, manifest_sha: str) -> ReportPaths:
    return ReportPaths(out / "report.html", out / "results.md", out / "evidence.json", out / MANIFEST, manifest_sha)


# --- redaction ---------------------------------------------------------------------------------------

def redact_result(result: StageResult) -> StageResult:
    """A copy with every tool-derived text field redacted."""
    return result.model_copy(update={
        "summary": redact(result.summary),
        "error": redact(result.error) if result.error else result.error,
        "findings": [_redact_finding(f) for f in result.findings],
    })


def _redact_finding(finding: Finding) -> Finding:
    return finding.model_copy(update={"title": redact(finding.title), "evidence": redact(finding.evidence),
                                      "location": redact(finding.location)})


def redact_verdict(verdict: Verdict) -> Verdict:
    reasons = [r.model_copy(update={"message": redact(r.message), "evidence": redact(r.evidence)})
               for r in verdict.reasons]
    return verdict.model_copy(update={"reasons": reasons})


# --- risk register -----------------------------------------------------------------------------------

def risk_register(results: list[StageResult], verdict: Verdict, defects: list[dict]) -> list[RiskItem]:
    """One row per open finding, open defect, errored or empty stage, and reason not covered by those."""
    by_fp = {str(d.get("fingerprint") or d["id"]): d for d in defects if d.get("fingerprint") or d.get("id")}
    rows: dict[str, RiskItem] = {}
    for result in results:
        for finding in result.findings:
            rows.setdefault(finding.fingerprint, _finding_row(result, finding, by_fp.get(finding.fingerprint),
                                                              verdict))
        if result.status is Status.error or result.evidence_empty:
            row = _stage_row(result, verdict)
            rows.setdefault(row.id, row)
    for fp, defect in by_fp.items():
        if fp not in rows and _defect_status(defect, "open").lower() not in CLOSED_DEFECT:
            rows[fp] = _defect_row(fp, defect, verdict)
    errored = {r.stage for r in results if r.status is Status.error or r.evidence_empty}
    for reason in verdict.reasons:
        if reason.fingerprint and reason.fingerprint in rows:  # a finding's reason: its row is there already
            continue
        row = _reason_row(reason, verdict)
        if row.id not in rows and not (not reason.fingerprint and reason.stage in errored):
            rows[row.id] = row
    return sorted(rows.values(), key=lambda r: (-_rank(r.severity), r.source, r.id))


def due_date(severity: str, verdict: Verdict) -> str:
    return _due(severity, verdict.decided_at)


@functools.lru_cache(maxsize=64)
def _due(severity: str, decided_at: datetime) -> str:
    days = SLA_DAYS.get(severity)
    return (utc(decided_at) + timedelta(days=days)).date().isoformat() if days else ""


def _finding_row(result: StageResult, finding: Finding, defect: dict | None, verdict: Verdict) -> RiskItem:
    status = f"{_defect_status(defect, 'open')} ({'blocking' if finding.blocking else 'non-blocking'})"
    severity = finding.severity.value
    return RiskItem(id=finding.fingerprint, title=finding.title, severity=severity,
                    owner=_owner(defect), status=status,
                    due=_defect_due(defect) or due_date(severity, verdict), source=result.stage)


def _stage_row(result: StageResult, verdict: Verdict) -> RiskItem:
    severity = "high" if result.required else "medium"
    what = result.error or (f"no evidence: {result.summary}" if result.summary else "no evidence")
    return RiskItem(id=fingerprint("stage", result.stage), title=f"{result.stage} could not decide: {what}",
                    severity=severity, owner="unassigned", status="inconclusive",
                    due=due_date(severity, verdict), source=result.stage)


def _defect_row(fp: str, defect: dict, verdict: Verdict) -> RiskItem:
    severity = str(defect.get("severity", "medium"))
    return RiskItem(id=fp, title=redact(str(defect.get("title", fp))), severity=severity,
                    owner=_owner(defect), status=_defect_status(defect, "open"),
                    due=_defect_due(defect) or due_date(severity, verdict),
                    source=str(defect.get("stage", defect.get("source", "defects"))))


def _reason_row(reason: Reason, verdict: Verdict) -> RiskItem:
    fp = reason.fingerprint or fingerprint("reason", reason.stage, reason.message)
    status = "inconclusive" if verdict.decision.value == "INCONCLUSIVE" else "open"
    return RiskItem(id=fp, title=reason.message, severity=reason.severity.value, owner="unassigned",
                    status=status, due=due_date(reason.severity.value, verdict), source=reason.stage)


def _defect_status(defect: dict | None, default: str) -> str:
    """A defect's lifecycle state (new, recurring, reopened, waived, fixed) when known."""
    return str((defect or {}).get("status") or (defect or {}).get("state") or default)


def _owner(defect: dict | None) -> str:
    return str((defect or {}).get("owner") or "unassigned")


def _defect_due(defect: dict | None) -> str:
    due = (defect or {}).get("due")
    return str(due.isoformat() if hasattr(due, "isoformat") else due) if due else ""


def _rank(severity: str) -> int:
    return _SEVERITY_RANKS.get(severity, -1)


_SEVERITY_RANKS = {s.value: s.rank for s in Severity}


# --- readiness checklist -----------------------------------------------------------------------------

def readiness_checklist(results: list[StageResult], verdict: Verdict) -> list[CheckItem]:
    """One item per check, ticked only by its stage's evidence, which the item quotes: the service started, each suite
    passed (its counts), the load budgets held (the measured values against them), no blocking SAST finding or
    dependency advisory (with the advisory data used), the alert rules and chaos experiments held. A stage the verdict
    expected but has no result is unticked with 'no evidence'; a check the policy does not plan says so."""
    by_stage = {r.stage: r for r in results}
    expected = [r.stage for r in verdict.reasons if r.stage not in by_stage
                and r.message.startswith("missing_evidence")]
    items = []
    if PROVISION_STAGE in by_stage or PROVISION_STAGE in expected:
        items.append(_check("service started and answered its health check", by_stage.get(PROVISION_STAGE)))
    suites = [r.stage for r in results if r.stage.startswith("pytest[")]
    suites += [s for s in dict.fromkeys(expected) if s.startswith("pytest[") and s not in suites]
    items += [_check(f"suite {s} passed", by_stage.get(s)) for s in suites] or [
        CheckItem("unit/integration/contract suites passed", False, NOT_PLANNED)]
    for item, stage in CHECKED_STAGES:
        if stage in by_stage or stage in expected:
            items.append(_check(item, by_stage.get(stage)))
        else:
            items.append(CheckItem(item, False, NOT_PLANNED))
    items.append(_evidence_item(results, verdict))
    return items


PROVISION_STAGE = "provision"
NOT_PLANNED = "not checked: the policy does not plan this stage"
CHECKED_STAGES = (("load budgets held", "locust"), ("no blocking SAST finding", "semgrep"),
                  ("no blocking dependency advisory", "pip-audit"), ("alert rules tested", "alerts"),
                  ("chaos experiments held steady state", "chaos"))
_SUMMARY_PATH = re.compile(r"; (?:json|junit|logs|timeline|csv): \S+$")


def _check(item: str, result: StageResult | None) -> CheckItem:
    if result is None:
        return CheckItem(item, False, "no evidence: the stage produced no result")
    return CheckItem(item, _held(result), f"{result.stage}: {_stage_evidence(result)}")


def _held(result: StageResult) -> bool:
    return (result.status is not Status.error and not result.evidence_empty
            and not any(f.blocking for f in result.findings)
            and not any(m.passed is False for m in result.metrics))


def _stage_evidence(result: StageResult) -> str:
    """What the stage's evidence says, in one line: counts and measured values, never only its status."""
    if result.status is Status.error:
        return _clip(f"could not run: {result.error or result.summary}")
    if result.evidence_empty:
        return _clip(f"no evidence: {_summary_text(result)}")
    blocking = [f.title for f in result.findings if f.blocking]
    if result.stage.startswith("pytest["):
        counts = {k: int(m.value) for k in ("passed", "failed", "error", "flaky", "skipped")
                  if (m := result.metric(f"tests_{k}")) is not None}
        said = ", ".join(f"{v} {'errors' if k == 'error' else k}" for k, v in counts.items())
        coverage = result.metric("coverage")
        if coverage is not None:
            said += f", coverage {fmt_number(coverage.value)}% (required {fmt_number(coverage.threshold)}%)"
    elif result.kind == "load":
        said = key_metrics(result, limit=6)
    else:
        said = _summary_text(result)
    if result.advisory_data is not None and "advisory data:" not in said:
        said += f"; advisory data: {result.advisory_data.describe()}"
    if blocking:
        said += f"; {len(blocking)} blocking: " + "; ".join(blocking[:2]) + (" …" if len(blocking) > 2 else "")
    return _clip(said or result.status.value)


def _summary_text(result: StageResult) -> str:
    """The stage's summary without its stage-name prefix and trailing evidence path."""
    text = _SUMMARY_PATH.sub("", result.summary.strip())
    return text.removeprefix(f"{result.stage}: ") or result.status.value


def _clip(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _evidence_item(results: list[StageResult], verdict: Verdict) -> CheckItem:
    item = "every required stage produced evidence"
    missing = [r.stage for r in results if r.required and (r.status is Status.error or r.evidence_empty)]
    missing += [r.stage for r in verdict.reasons if r.message.startswith("missing_evidence")
                and r.severity is not Severity.low and r.stage not in missing]
    if not results:
        return CheckItem(item, False, "no evidence")
    if missing:
        return CheckItem(item, False, "no evidence from " + ", ".join(dict.fromkeys(missing)))
    if verdict.decision.value == "INCONCLUSIVE":
        return CheckItem(item, False, "the verdict is INCONCLUSIVE: see its reasons")
    return CheckItem(item, True, f"{sum(r.required for r in results)} required stage(s) with evidence")


# --- the test-result log -----------------------------------------------------------------------------

def key_metrics(result: StageResult, limit: int = 4) -> str:
    """'p95 312 ms (budget 250)' for the metrics with thresholds first, then the rest."""
    ordered = sorted(result.metrics, key=lambda m: m.threshold is None)[:limit]
    return ", ".join(format_metric(m) for m in ordered)


def format_metric(metric: Metric) -> str:
    unit = f" {metric.unit}" if metric.unit else ""
    budget = f" (budget {fmt_number(metric.threshold)})" if metric.threshold is not None else ""
    return f"{metric.name} {fmt_number(metric.value)}{unit}{budget}"


def fmt_number(value: float | None) -> str:
    if value is None:
        return "–"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.4g}"


def remediation(result: StageResult) -> str:
    """What to do about a stage, in one line."""
    if result.status is Status.error:
        return f"fix the gate input: {result.error or result.summary or 'the tool could not run'}"
    if result.evidence_empty:
        return f"fix the gate input: {result.stage} produced no evidence ({result.summary or 'empty'})"
    blocking = [f for f in result.findings if f.blocking]
    if result.status is Status.passed and not blocking:
        return "none"
    if not blocking:
        return "none blocking; review the non-blocking findings"
    actions = list(dict.fromkeys(_action(f) for f in blocking))
    more = f" (+{len(actions) - 3} more)" if len(actions) > 3 else ""
    return "; ".join(actions[:3]) + more


def _action(finding: Finding) -> str:
    where = finding.location or finding.rule
    return {
        "test": f"fix {finding.rule}",
        "budget": (f"profile endpoint {finding.location}" if finding.location
                   else f"profile the service ({finding.rule})"),
        "sast": f"fix {finding.rule} in {where}",
        "vulnerability": f"upgrade {where} ({finding.rule})",
        "alert": f"fix alert rule {finding.rule}",
        "coverage": (f"raise coverage to {fmt_number(finding.data.get('threshold'))}% (now "
                     f"{fmt_number(finding.data.get('value'))}%), or lower --cov-fail-under"),
        "suite": f"fix what failed the run: {finding.title.split('): ', 1)[-1]}",
        "service": f"find why the service stopped: see {finding.location or 'its log'}",
    }.get(finding.kind, f"resolve {finding.rule} ({where})")


# --- documents ---------------------------------------------------------------------------------------

def evidence_document(ctx: RunContext, policy_digest: str, results: list[StageResult], verdict: Verdict,
                      tool_versions: dict[str, str], register: list[RiskItem],
                      checklist: list[CheckItem]) -> dict:
    """The run's evidence as one document. Each stage's findings and test cases are not repeated here: they are in
    the stage's own file (``stages/<stage>.json``, kept when the stage ended), which each stage names; the risk
    register's rows are in ``risk-register.json`` (``risk_register_rows`` below), the document's ``risk_register``
    names that file. So a 20,000-finding scan is written once, not three times."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run": ctx.model_dump(mode="json"),
        "policy_digest": policy_digest,
        "tool_versions": dict(sorted(tool_versions.items())),
        "verdict": verdict.model_dump(mode="json", include={"decision", "reasons", "decided_at", "waivers", "defects",
                                                            "advisory_data"}),
        "stages": [_stage_summary(r) for r in results],
        "risk_register": {"file": RISK_REGISTER, "rows": len(register)},
        "checklist": [dict(vars(c)) for c in checklist],
    }


def risk_register_rows(register: list[RiskItem]) -> list[dict]:
    return [dict(vars(r)) for r in register]  # flat dataclasses: no deep copy (asdict) needed


def _stage_summary(result: StageResult) -> dict:
    summary = result.model_dump(mode="json", exclude={"findings", "test_cases"})
    summary["findings_total"] = len(result.findings)
    summary["blocking_findings"] = sum(1 for f in result.findings if f.blocking)
    summary["details"] = f"stages/{safe_name(result.stage)}.json"
    return summary


def _view_model(ctx: RunContext, policy_digest: str, results: list[StageResult], verdict: Verdict,
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


# --- layout: what a large run shows in full, and what it counts -------------------------------------

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


def utc(moment: datetime) -> datetime:
    """The moment in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


CHART_SOURCES = {"series": "locust/series.json", "stress_steps": "locust/stress-steps.json",
                 "soak": "locust/soak.json", "chaos_timeline": "chaos/timeline.json"}


def evidence_charts(folder: Path) -> list[dict[str, Any]]:
    """Inline SVG charts from the series the stages left in the evidence folder (unreadable ones are skipped)."""
    from markupsafe import Markup

    from releasegate.charts import run_charts

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


def _json_text(data: Any) -> str:
    """Sorted keys, one record per line: a list's items, and a top-level object's list items, each on a line of
    its own, written by the C encoder (an indented document takes the pure-Python one: 20x slower at 20k findings)."""
    if isinstance(data, list):
        return _json_lines(data, "") + "\n"
    if not isinstance(data, dict):
        return _compact(data) + "\n"
    fields = [f"  {_compact(k)}: {_json_lines(v, '  ') if isinstance(v, list) else _compact(v)}"
              for k, v in sorted(data.items())]
    return "{\n" + ",\n".join(fields) + "\n}\n"


def _json_lines(items: list, indent: str) -> str:
    if not items:
        return "[]"
    return "[\n" + ",\n".join(f"{indent}  {_compact(item)}" for item in items) + f"\n{indent}]"


_COMPACT = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(", ", ": "))  # one encoder, reused


def _compact(value: Any) -> str:
    return _COMPACT.encode(value)


@functools.lru_cache(maxsize=1)
def template_env() -> Environment:
    """HTML templates autoescape; Markdown templates escape every value for Markdown (``markdown_finalize``).
    One environment per process: its templates are compiled once, not for every report."""
    env = Environment(loader=PackageLoader("releasegate", "templates"), undefined=StrictUndefined,
                      autoescape=lambda name: name is not None and name.endswith((".html.j2", ".html")),
                      finalize=markdown_finalize, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md_cell, num=fmt_number, short=lambda fp: (fp or "")[:12])
    return env


class MarkdownText(str):
    """Text already escaped for Markdown (the ``md`` filter's output): not escaped again."""


@pass_context
def markdown_finalize(context: Any, value: Any) -> Any:
    """Every ``{{ value }}`` of a Markdown template (``*.md.j2``) is escaped, filtered through ``md`` or not."""
    name = context.name or ""
    if not name.endswith((".md.j2", ".md")) or isinstance(value, MarkdownText):
        return value
    return md_cell(value)


def md_cell(value: Any) -> MarkdownText:
    """Text that stays text in Markdown, also inside a table cell: one line, and no markup of its own.

    Line breaks collapse; backslash escapes keep characters that would start markup literal: links and
    images (``[`` ``]``), raw HTML and autolinks (``<`` ``>``), entities (``&``), code (`````), emphasis
    (``*``, ``_`` at a word's edge), strikethrough (``~``), table cells (``|``); ``://`` and ``www.`` so a
    renderer that links bare URLs leaves them as text.
    """
    text = " ".join(str(value if value is not None else "").split())
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(), text)
    text = _MD_UNDERSCORES.sub(_escape_underscores, text)
    text = _MD_SCHEME.sub("\\\\:", text)
    return MarkdownText(_MD_WWW.sub(lambda m: m.group()[:-1] + "\\.", text))


_MD_SPECIAL = re.compile(r"[\\`*\[\]<>&|~]")
_MD_UNDERSCORES = re.compile(r"_+")
_MD_SCHEME = re.compile(r"(?<=\w):(?=//)")
_MD_WWW = re.compile(r"(?<![\w.])(?i:www)\.")


def _escape_underscores(match: re.Match) -> str:
    text, start, end = match.string, match.start(), match.end()
    inside_a_word = 0 < start and end < len(text) and text[start - 1].isalnum() and text[end].isalnum()
    return match.group() if inside_a_word else "\\_" * len(match.group())


# --- manifest ----------------------------------------------------------------------------------------

def write_manifest(folder: Path) -> str:
    """Write MANIFEST.sha256 (sha256sum format, sorted) for every file but itself, atomically; return its sha256.

    Write it last: a folder whose writing stopped half way has no manifest (or a stale one), so it never verifies.
    """
    text = manifest_text(folder)
    write_atomic(folder / MANIFEST, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_text(folder: Path, pending: dict[str, bytes] | None = None) -> str:
    """The manifest of `folder` as it will be once `pending` (contents by relative path) is written too."""
    pending = pending or {}
    digests = {p.relative_to(folder).as_posix(): sha256_file(p) for p in _evidence_files(folder)}
    digests.update({name: hashlib.sha256(data).hexdigest() for name, data in pending.items() if name != MANIFEST})
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items()))


def _evidence_files(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and not is_temporary(p)
             and p.relative_to(folder).as_posix() != MANIFEST]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())
