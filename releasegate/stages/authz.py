"""Authorization matrix stage: every endpoint x caller of the policy's `authz` section probed once against the
running service, each answer held to the status class the policy expects (an anonymous write must get 401|403, a
forged or expired token too, a user's read 2xx).

It needs no OpenAPI document. Callers get their tokens first (releasegate.stages.callers); a setup request that
fails is an error (INCONCLUSIVE), never a pass. Every cell that answers otherwise is a finding naming the endpoint,
the caller, the status and the status class expected; its fingerprint is endpoint + caller, never the status.
Writes go to the service under test, so the stage runs alone, after the suites (it is registered as measuring).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Artifact, Finding, Metric, StageResult, Status
from releasegate.environment import Environment
from releasegate.policy import Policy
from releasegate.policy.placeholders import fill
from releasegate.policy.security import Authz, AuthzEndpoint
from releasegate.redact import redact
from releasegate.stages import hygiene
from releasegate.stages.base import fresh_folder, guarded, now
from releasegate.stages.callers import send, tokens
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

STAGE = "authz"
KIND = "authz"
EXCERPT_CHARS = 300


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    spec: Authz = planned.entry
    return guarded(planned.name, KIND, planned.required, lambda started: _run(spec, ctx, env, started))


def target_url(configured: str | None, env: Environment | None, section: str) -> str:
    """The policy's base_url ({base_url}, {host}, {port} filled from the running service), else the service's."""
    values = {"base_url": env.base_url, "host": env.host, "port": str(env.port)} if env is not None else {}
    if configured:
        return fill(configured, values).rstrip("/")
    if env is None:
        raise StageError(f"{section}: no running service to probe — add an 'environment' section or "
                         f"{section}.base_url")
    return env.base_url.rstrip("/")


def _run(spec: Authz, ctx: RunContext, env: Environment | None, started: datetime) -> StageResult:
    base_url = target_url(spec.base_url, env, STAGE)
    out_dir = fresh_folder(ctx.evidence / STAGE)
    caller_tokens = tokens(spec.callers, base_url, spec.request_timeout_s)
    cells = [probe(endpoint, caller, caller_tokens[caller], base_url, spec.request_timeout_s)
             for endpoint in spec.endpoints for caller in endpoint.expect]
    matrix = out_dir / "matrix.json"
    matrix.write_text(redact(json.dumps(cells, indent=2)), encoding="utf-8")
    findings = [finding(cell, spec) for cell in cells if not cell["held"]]
    findings += hygiene_findings(cells, spec) + transport_findings(base_url, spec)
    return _result(spec, started, cells, findings, matrix)


def probe(endpoint: AuthzEndpoint, caller: str, token: str | None, base_url: str, timeout_s: float) -> dict:
    """One cell: the caller's request to the endpoint and whether its status is in the expected class."""
    expected = endpoint.expect[caller]
    try:
        answer = send(endpoint.method, base_url + endpoint.path, token, endpoint.json_body, timeout_s)
    except OSError as exc:
        raise StageError(f"authz: {endpoint.method} {endpoint.path} as {caller}: the service did not answer ({exc})"
                         f" — is it running at {base_url}?") from exc
    return {"endpoint": f"{endpoint.method} {endpoint.path}", "caller": caller, "expected": expected,
            "status": answer.status, "held": status_in(answer.status, expected),
            "trace": hygiene.trace_marker(answer.body), "headers": answer.headers,
            "body": redact(answer.body.strip()[:EXCERPT_CHARS])}


def status_in(status: int, expected: str) -> bool:
    """Whether a status is in a class: `2xx`, `401`, `401|403`."""
    return any(str(status) == alt or (alt.endswith("xx") and str(status)[0] == alt[0]) for alt in expected.split("|"))


def finding(cell: dict, spec: Authz) -> Finding:
    endpoint, caller = cell["endpoint"], cell["caller"]
    return Finding(
        kind=KIND, rule=f"{endpoint} as {caller}", severity=spec.severity,
        title=f"{endpoint} as {caller} answered HTTP {cell['status']} where {cell['expected']} is required",
        location=endpoint, evidence=cell["body"], fingerprint=fingerprint(KIND, endpoint, caller),
        blocking=spec.severity.at_least(spec.blocking_severity),
        data={"caller": caller, "status": cell["status"], "expected": cell["expected"]})


def hygiene_findings(cells: list[dict], spec: Authz) -> list[Finding]:
    """A stack trace or debug page in an answer (once per endpoint), each forbidden header naming a version and each
    required header missing (once per header, the first endpoint that showed it)."""
    found: dict[str, Finding] = {}
    for cell in cells:
        endpoint = cell["endpoint"]
        if cell["trace"]:
            found.setdefault(f"trace {endpoint}", _hygiene(
                spec, "trace-in-body", endpoint, f"{endpoint} as {cell['caller']} answered HTTP {cell['status']} "
                f"with a stack trace or debug page ({cell['trace']!r})", cell["body"]))
        for header in hygiene.version_headers(cell["headers"], spec.forbid_headers):
            name = header.split(":", 1)[0].lower()
            found.setdefault(f"version {name}", _hygiene(
                spec, f"version-header:{name}", endpoint, f"{endpoint} answers with versions in {header!r}",
                redact(header), key=name))
        for name in hygiene.missing_headers(cell["headers"], spec.require_headers):
            found.setdefault(f"missing {name.lower()}", _hygiene(
                spec, f"missing-header:{name.lower()}", endpoint, f"{endpoint} answers without the {name} header",
                "", key=name.lower()))
    return list(found.values())


def transport_findings(base_url: str, spec: Authz) -> list[Finding]:
    """For a service served over TLS: a certificate that does not verify, a protocol older than TLS 1.2."""
    try:
        problems = hygiene.tls_problems(base_url, spec.request_timeout_s)
    except OSError as exc:
        raise StageError(f"authz: the TLS handshake with {base_url} could not be made ({exc})") from exc
    return [_hygiene(spec, "tls", base_url, f"{base_url} — {problem}", problem, key=problem.split(":")[0])
            for problem in problems]


def _hygiene(spec: Authz, rule: str, where: str, title: str, evidence: str, key: str = "") -> Finding:
    return Finding(kind="hygiene", rule=rule, severity=spec.hygiene_severity, title=title, location=where,
                   evidence=evidence, fingerprint=fingerprint("hygiene", rule, key or where),
                   blocking=spec.hygiene_severity.at_least(spec.blocking_severity))


def _result(spec: Authz, started: datetime, cells: list[dict], findings: list[Finding], matrix: Path) -> StageResult:
    blocking = sum(f.blocking for f in findings)
    mismatches = sum(f.kind == KIND for f in findings)
    summary = (f"authz: {len(cells)} cells ({len(spec.endpoints)} endpoints x callers), {mismatches} answered "
               f"otherwise, {len(findings) - mismatches} hygiene or transport findings ({blocking} blocking); "
               f"matrix: {matrix}")
    log.info("%s", summary)
    return StageResult(
        stage=STAGE, kind=KIND, status=Status.failed if blocking else Status.passed, required=spec.required,
        started=started, finished=now(), summary=summary, findings=findings,
        metrics=[Metric(name="cells", value=len(cells)), Metric(name="mismatches", value=mismatches),
                 Metric(name="blocking", value=blocking)],
        artifacts=[Artifact.of(matrix)], evidence_empty=not cells)
