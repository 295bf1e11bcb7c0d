"""The gate's own checks as a JUnit XML report, for the CI system that triggered the gate: one test case per stage,
per budget a stage measured against a threshold, and one for the verdict. A check that blocks fails with the
reasons the verdict gives for it; a stage that could not decide is an error naming why. Pure: no clock, no files."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from releasegate.domain.models import Metric, Reason, StageResult, Status, Verdict

JUNIT_REPORT = "gate-checks.junit.xml"


def junit_report(service: str, version: str, results: list[StageResult], verdict: Verdict) -> str:
    """The JUnit XML text (one <testsuite> named after the service and version)."""
    by_stage: dict[str, list[Reason]] = {}
    for reason in verdict.reasons:
        by_stage.setdefault(reason.stage, []).append(reason)
    cases = [case for result in results for case in _stage_cases(result, by_stage.get(result.stage, []))]
    seen = {r.stage for r in results}
    cases += [_reasons_case(stage, stage, reasons) for stage, reasons in by_stage.items() if stage not in seen]
    cases.append(_verdict_case(verdict))
    suite = ET.Element("testsuite", {
        "name": f"releasegate {service} {version}", "tests": str(len(cases)),
        "failures": str(sum(c.find("failure") is not None for c in cases)),
        "errors": str(sum(c.find("error") is not None for c in cases)),
        "skipped": "0", "timestamp": verdict.decided_at.isoformat(),
        "time": f"{sum(float(c.get('time', '0')) for c in cases):.3f}"})
    suite.extend(cases)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _stage_cases(result: StageResult, reasons: list[Reason]) -> list[ET.Element]:
    case = _reasons_case(result.stage, result.kind, reasons)
    case.set("time", f"{max((result.finished - result.started).total_seconds(), 0.0):.3f}")
    if result.status is Status.error or result.evidence_empty:
        for failure in case.findall("failure"):
            case.remove(failure)
        why = result.error or f"no evidence: {result.summary or 'the tool produced none'}"
        _child(case, "error", why, "\n".join(r.message for r in reasons) or why, "INCONCLUSIVE")
    elif result.summary:
        ET.SubElement(case, "system-out").text = result.summary
    return [case, *[_metric_case(result, m) for m in result.metrics if m.threshold is not None and m.operator]]


def _reasons_case(name: str, classname: str, reasons: list[Reason]) -> ET.Element:
    case = ET.Element("testcase", {"classname": f"releasegate.{classname}", "name": name, "time": "0.000"})
    if reasons:
        first = reasons[0]
        body = "\n".join(f"[{r.severity.value}] {r.message}" + (f" ({r.evidence})" if r.evidence else "")
                         for r in reasons)
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        _child(case, "failure", f"{first.message}{more}", body, "NO_GO")
    return case


def _metric_case(result: StageResult, metric: Metric) -> ET.Element:
    check = f"{metric.name} {metric.operator} {_number(metric.threshold)}{metric.unit and ' ' + metric.unit}"
    case = ET.Element("testcase", {"classname": f"releasegate.{result.kind}.budget",
                                   "name": f"{result.stage}: {check}", "time": "0.000"})
    if metric.passed is False:
        message = f"{metric.name} {_number(metric.value)} {metric.unit} breaks {check}".replace("  ", " ")
        _child(case, "failure", message, message, "budget")
    return case


def _verdict_case(verdict: Verdict) -> ET.Element:
    case = ET.Element("testcase", {"classname": "releasegate.verdict", "name": "verdict", "time": "0.000"})
    if verdict.decision.value != "GO":
        top = "; ".join(r.message for r in verdict.reasons[:3])
        kind = "error" if verdict.decision.value == "INCONCLUSIVE" else "failure"
        _child(case, kind, f"{verdict.decision.value}: {top}", "\n".join(r.message for r in verdict.reasons),
               verdict.decision.value)
    return case


def _child(case: ET.Element, tag: str, message: str, text: str, kind: str) -> None:
    ET.SubElement(case, tag, {"message": message, "type": kind}).text = text


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
