"""The run's evidence folder: HTML report, Markdown test log, risk register, checklist, evidence.json,
manifest.

- `render`: `render_report` (every file's text, nothing written) and `compile_report` (writes them, the
  manifest last)
- `register`: the risk register; `checklist`: the readiness checklist
- `view`: what report.html and results.md show; `templating`: their Jinja environment and Markdown escaping
- `evidence`: evidence.json and risk-register.json; `manifest`: MANIFEST.sha256
- `formatting`: numbers, metrics, moments and remediation in words; `charts`: inline SVG charts

The templates themselves are in releasegate/templates/.
"""

from releasegate.report.charts import run_charts
from releasegate.report.checklist import NOT_PLANNED, CheckItem, readiness_checklist
from releasegate.report.evidence import RISK_REGISTER, SCHEMA_VERSION, evidence_document, risk_register_rows
from releasegate.report.formatting import fmt_number, format_metric, key_metrics, remediation, utc
from releasegate.report.manifest import MANIFEST, manifest_text, write_manifest
from releasegate.report.register import RiskItem, due_date, risk_register
from releasegate.report.render import (
    Rendered,
    ReportPaths,
    compile_report,
    redact_result,
    redact_verdict,
    render_report,
)
from releasegate.report.templating import md_cell, template_env
from releasegate.report.view import evidence_charts, finding_groups

__all__ = [
    "MANIFEST", "NOT_PLANNED", "RISK_REGISTER", "SCHEMA_VERSION", "CheckItem", "Rendered", "ReportPaths",
    "RiskItem", "compile_report", "due_date", "evidence_charts", "evidence_document", "finding_groups", "fmt_number",
    "format_metric", "key_metrics", "manifest_text", "md_cell", "readiness_checklist", "redact_result",
    "redact_verdict", "remediation", "render_report", "risk_register", "risk_register_rows", "run_charts",
    "template_env", "utc", "write_manifest",
]
