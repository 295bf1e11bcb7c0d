"""The readiness checklist: one item per check, ticked only by its stage's evidence, which the item quotes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from releasegate.domain.models import Severity, StageResult, Status, Verdict
from releasegate.report.formatting import fmt_number, key_metrics


@dataclass(frozen=True)
class CheckItem:
    item: str
    checked: bool
    evidence: str


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
