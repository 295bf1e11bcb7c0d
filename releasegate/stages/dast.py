"""DAST stage: Schemathesis against the running service, driven by its OpenAPI document (policy `dast`).

Running Schemathesis is `run_schemathesis` (bounded by max_examples per operation, the policy's optional time
budget and the stage's timeout); reading what it wrote is the pure `parse_events` over its NDJSON event stream, cross-checked
with its JSON run report (`read_report`). Each failing (operation, check) pair is one finding: its fingerprint is
the operation and the check, never the random example; its severity comes from the check (policy `dast.severity`
over `DAST_CHECK_SEVERITY`); its evidence is the first failing request as `curl`, secrets redacted.

Fail closed: a schema Schemathesis cannot load or parse (exit 2, a "Schema Loading Error"), errors during the run,
a missing or unreadable report, a crash, a signal or the timeout make the stage an error (INCONCLUSIVE) naming
Schemathesis's own words. The stage loads and writes to the service, so it measures: it runs alone, last.
"""

from __future__ import annotations

import base64
import json
import logging
import shlex
import shutil
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Artifact, Finding, Metric, StageResult, Status
from releasegate.environment import Environment
from releasegate.policy import Policy
from releasegate.policy.placeholders import fill
from releasegate.policy.security import TRACE_CHECK, Dast
from releasegate.redact import redact, redact_file
from releasegate.stages import hygiene
from releasegate.stages.authz import target_url
from releasegate.stages.base import ToolRun, find_tool, fresh_folder, guarded, last_error_line, now, run_tool
from releasegate.stages.callers import tokens
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

STAGE = "dast"
KIND = "dast"
TOOL = "schemathesis"
# Schemathesis exits 0 (no failure) or 1 (failures found) when it tested the API; 2 when it could not (the schema
# did not load, a bad option); anything else, a signal or the timeout: it did not finish.
SCHEMATHESIS_OK = (0, 1)
CURL_CHARS = 2000
BODY_CHARS = 1000
REQUEST_TIMEOUT_S = 10
CACHES = (".hypothesis", ".schemathesis")


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    spec: Dast = planned.entry
    return guarded(planned.name, KIND, planned.required, lambda started: _run(spec, ctx, env, started))


def _run(spec: Dast, ctx: RunContext, env: Environment | None, started: datetime) -> StageResult:
    base_url = target_url(spec.base_url, env, STAGE)
    schema = schema_location(spec, ctx, base_url)
    token = tokens(spec.callers, base_url, REQUEST_TIMEOUT_S).get(spec.auth) if spec.auth else None
    out_dir = fresh_folder(ctx.evidence / STAGE)
    tool = run_schemathesis(spec, schema, base_url, token, out_dir)
    for cache in CACHES:  # Hypothesis's and Schemathesis's own caches: not evidence, and they may hold requests
        shutil.rmtree(out_dir / cache, ignore_errors=True)
    report = read_report(tool, out_dir / "report.json")
    events = out_dir / "events.ndjson"
    findings = parse_events(_lines(events), spec)
    if events.is_file():  # response bodies may hold what a login answered: the evidence keeps them redacted
        redact_file(events, events)
    _agree(report, findings, out_dir)
    return _result(spec, started, report, findings, tool, out_dir)


def schema_location(spec: Dast, ctx: RunContext, base_url: str) -> str:
    """The OpenAPI document: a URL as the policy writes it (placeholders filled), else a file in the source."""
    location = fill(spec.openapi, {"base_url": base_url})
    if location.startswith(("http://", "https://")):
        return location
    path = (ctx.source / location).resolve()
    if not path.is_file():
        raise StageError(f"dast.openapi: {location} -> {path} does not exist in the source — fix the path "
                         "(relative to the source) or give the URL the service serves it at")
    return str(path)


def schemathesis_command(binary: str, spec: Dast, schema: str, base_url: str, token: str | None) -> list[str]:
    command = [binary, "run", schema, "--url", base_url, "--checks", ",".join(spec.checks),
               "--max-examples", str(spec.max_examples),
               "--phases", ",".join(spec.phases), "--workers", "1", "--request-timeout", str(REQUEST_TIMEOUT_S),
               "--generation-database", "none", "--continue-on-failure", "--no-color", "--report", "json,ndjson", "--report-dir", ".",
               "--report-json-path", "report.json", "--report-ndjson-path", "events.ndjson"]
    if spec.max_time_s is not None:
        command += ["--max-time", str(max(1, round(spec.max_time_s)))]
    if spec.seed is not None:
        command += ["--seed", str(spec.seed)]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    return command


def run_schemathesis(spec: Dast, schema: str, base_url: str, token: str | None, out_dir: Path) -> ToolRun:
    command = schemathesis_command(find_tool(TOOL), spec, schema, base_url, token)
    return run_tool(command, cwd=out_dir, timeout_s=spec.timeout_s, log_to=out_dir / "schemathesis.log")


def read_report(tool: ToolRun, path: Path) -> dict[str, Any]:
    """Schemathesis's JSON run report, or StageError when the run cannot be believed: it did not end with 0 or 1,
    its report is missing or unreadable, it reports errors (a schema that did not load, requests that failed)."""
    report = _json_file(path)
    errors = [f"{e.get('title', 'error')} (x{e.get('count', 1)})" for e in report.get("errors") or []]
    said = last_error_line(tool.stderr, tool.stdout)
    if tool.signal is not None or tool.returncode not in SCHEMATHESIS_OK:
        why = "; ".join(errors) or said
        raise StageError(f"schemathesis could not test the API ({tool.ending()}): {why}; last output: {said} — "
                         f"check dast.openapi (can it be fetched and parsed?); log: {tool.log}")
    if not report:
        raise StageError(f"schemathesis wrote no readable run report ({tool.ending()}): last output: {said}; "
                         f"log: {tool.log}")
    if errors:
        raise StageError(f"schemathesis ran with errors: {'; '.join(errors)}; last output: {said} — the results "
                         f"are partial; see {tool.log}")
    operations = report.get("operations") or {}
    if not operations.get("tested"):
        skipped = ", ".join(operations.get("skip_reasons") or []) or "no reason given"
        raise StageError(f"schemathesis tested no operation of {operations.get('selected', 0)} (skipped: "
                         f"{skipped}) — give dast.max_time_s more time or check the document's operations; "
                         f"log: {tool.log}")
    return report


def _json_file(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _lines(path: Path) -> Iterator[str]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as stream:
        yield from stream


def parse_events(lines: Iterable[str], spec: Dast) -> list[Finding]:
    """The first failure of each (operation, check) in Schemathesis's NDJSON events, as findings; and each operation
    that answered with a stack trace or a debug page (check `trace_in_error_body`, the gate's own)."""
    first: dict[tuple[str, str], Finding] = {}
    for line in lines:
        if '"ScenarioFinished"' not in line:
            continue
        recorder = json.loads(line)["ScenarioFinished"].get("recorder") or {}
        interactions = recorder.get("interactions") or {}
        if '"failure"' in line:
            _failures(recorder, interactions, spec, first)
        _traces(recorder.get("label", "?"), interactions, spec, first)
    return sorted(first.values(), key=lambda f: (-f.severity.rank, f.rule, f.location))


def _failures(recorder: dict[str, Any], interactions: dict[str, Any], spec: Dast,
              first: dict[tuple[str, str], Finding]) -> None:
    for case_id, checks in (recorder.get("checks") or {}).items():
        for check in checks:
            if check.get("status") != "failure":
                continue
            failure = ((check.get("failure_info") or {}).get("failure")) or {}
            operation = failure.get("operation") or recorder.get("label", "?")
            key = (operation, check.get("name", "?"))
            if key not in first:
                request = (interactions.get(case_id) or {}).get("request") or {}
                first[key] = _finding(operation, key[1], failure, request, spec)


def _traces(operation: str, interactions: dict[str, Any], spec: Dast, first: dict[tuple[str, str], Finding]) -> None:
    if (operation, TRACE_CHECK) in first:
        return
    for interaction in interactions.values():
        response = interaction.get("response") or {}
        marker = hygiene.trace_marker(_body(response.get("content")) or "")
        if marker:
            failure = {"title": f"HTTP {response.get('status_code')} answers with a stack trace or debug page",
                       "message": repr(marker)}
            first[(operation, TRACE_CHECK)] = _finding(operation, TRACE_CHECK, failure,
                                                       interaction.get("request") or {}, spec)
            return


def _finding(operation: str, check: str, failure: dict[str, Any], request: dict[str, Any], spec: Dast) -> Finding:
    severity = spec.severity_of(check)
    message = redact(str(failure.get("message") or "").strip().splitlines()[0] if failure.get("message") else "")
    # "<check> on <operation> —", never "<operation>: ...": redaction masks the word after a key such as "/token:"
    title = f"{check} on {operation} — {failure.get('title', check)}" + (f": {message}" if message else "")
    reproduction = curl(request)
    return Finding(
        kind=KIND, rule=check, severity=severity, title=title[:300], location=operation, evidence=reproduction,
        fingerprint=fingerprint(KIND, operation, check), blocking=severity.at_least(spec.blocking_severity),
        data={"check": check, "code": failure.get("code", ""), "operation": operation, "curl": reproduction})


def curl(request: dict[str, Any]) -> str:
    """The request as a curl command line, secrets redacted (Schemathesis already filters auth headers)."""
    if not request:
        return ""
    parts = ["curl", "-X", str(request.get("method", "GET"))]
    for name, values in (request.get("headers") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            shown = "[REDACTED]" if name.lower() in ("authorization", "cookie", "x-api-key") else value
            parts += ["-H", f"{name}: {shown}"]
    body = _body(request.get("body"))
    if body is not None:
        parts += ["-d", body]
    parts.append(str(request.get("uri", "")))
    text = redact(shlex.join(parts))
    return text if len(text) <= CURL_CHARS else text[: CURL_CHARS - 1] + "…"


def _body(body: Any) -> str | None:
    if not isinstance(body, dict) or "$base64" not in body:
        return None if body is None else str(body)[:BODY_CHARS]
    data = base64.b64decode(body["$base64"])
    try:
        return data.decode("utf-8")[:BODY_CHARS]
    except UnicodeDecodeError:
        return f"<{len(data)} bytes, not UTF-8>"


def _agree(report: dict[str, Any], findings: list[Finding], out_dir: Path) -> None:
    """The report's failing operations must each have a finding read from the events: else the events are partial."""
    reported = {op for failure in report.get("failures") or [] for op in failure.get("operations") or []}
    missing = sorted(reported - {f.location for f in findings})
    if missing:
        raise StageError(f"schemathesis's report names failures of {', '.join(missing)} that its event stream "
                         f"{out_dir / 'events.ndjson'} does not hold: the output is partial — rerun the stage")


def _result(spec: Dast, started: datetime, report: dict[str, Any], findings: list[Finding], tool: ToolRun,
            out_dir: Path) -> StageResult:
    blocking = sum(f.blocking for f in findings)
    operations = report.get("operations") or {}
    tested = int(operations.get("tested") or 0)
    cases = int((report.get("test_cases") or {}).get("generated") or 0)
    summary = (f"dast: {len(findings)} failing operation checks ({blocking} blocking) over {tested} operations, "
               f"{cases} test cases in {tool.seconds:.1f} s; report: {out_dir / 'report.json'}")
    log.info("%s", summary)
    (out_dir / "findings.json").write_text(
        json.dumps([f.model_dump(mode="json") for f in findings], indent=2), encoding="utf-8")
    return StageResult(
        stage=STAGE, kind=KIND, status=Status.failed if blocking else Status.passed, required=spec.required,
        started=started, finished=now(), summary=summary, findings=findings,
        metrics=[Metric(name="findings", value=len(findings)), Metric(name="blocking", value=blocking),
                 Metric(name="operations_tested", value=tested), Metric(name="test_cases", value=cases),
                 Metric(name="duration", value=round(tool.seconds, 3), unit="s")],
        artifacts=[Artifact.of(out_dir / "report.json"), Artifact.of(out_dir / "findings.json"),
                   Artifact.of(out_dir / "schemathesis.log")],
        evidence_empty=tested == 0)
