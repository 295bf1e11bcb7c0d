"""How the report words a stage: its numbers and metrics, a moment in UTC, and what to do about the stage."""

from __future__ import annotations

from datetime import UTC, datetime

from releasegate.domain.models import Finding, Metric, StageResult, Status


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


def utc(moment: datetime) -> datetime:
    """The moment in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
