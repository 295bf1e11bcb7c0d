"""What leaves the gate in the formats other tools read: SARIF 2.1.0 of the code and API scans' findings
(`sarif`), a JUnit XML of the gate's own checks (`junit_report`), and a signed in-toto statement of the verdict
over the evidence folder (`attestation`, with its key handling in `signing`)."""

from __future__ import annotations

from releasegate.exports.junit_report import JUNIT_REPORT, junit_report
from releasegate.exports.sarif import SARIF_REPORT, sarif_log, sarif_text

__all__ = ["JUNIT_REPORT", "SARIF_REPORT", "junit_report", "sarif_log", "sarif_text"]
