"""The run's report: `render_report` turns the stage results and the verdict into every report file's text,
`compile_report` also writes them into the evidence folder, each atomically, and the manifest last.

Text that came from tools is redacted once, at the start, so nothing downstream can leak a secret.
Nothing here reads the clock: dates come from the verdict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from releasegate.atomic import write_atomic
from releasegate.context import RunContext
from releasegate.domain.models import Finding, StageResult, Verdict
from releasegate.exports import JUNIT_REPORT, SARIF_REPORT, junit_report, sarif_text
from releasegate.redact import redact
from releasegate.report.checklist import CheckItem, readiness_checklist
from releasegate.report.evidence import RISK_REGISTER, evidence_document, json_text, risk_register_rows
from releasegate.report.manifest import MANIFEST, write_manifest
from releasegate.report.register import RiskItem, risk_register
from releasegate.report.templating import template_env
from releasegate.report.view import view_model

log = logging.getLogger("releasegate")


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path
    evidence_json: Path
    manifest: Path
    manifest_sha256: str


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
    model = view_model(ctx, policy_digest, results, verdict, tool_versions, register, checklist)
    document = evidence_document(ctx, policy_digest, results, verdict, tool_versions, register, checklist)
    env = template_env()
    documents = {"report.html": env.get_template("report.html.j2").render(**model),
                 "results.md": env.get_template("results.md.j2").render(**model),
                 RISK_REGISTER: json_text(risk_register_rows(register)),
                 "evidence.json": json_text(document),
                 SARIF_REPORT: sarif_text(results, tool_versions),
                 JUNIT_REPORT: junit_report(ctx.service, ctx.version, results, verdict)}
    log.info("report: %s %s@%s, %d stage(s), %d risk row(s), checklist %d/%d", verdict.decision.value, ctx.service,
             ctx.version, len(results), len(register), sum(c.checked for c in checklist), len(checklist))
    return Rendered(documents, register, checklist)


def _paths(out: Path, manifest_sha: str) -> ReportPaths:
    return ReportPaths(out / "report.html", out / "results.md", out / "evidence.json", out / MANIFEST, manifest_sha)


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
