"""A service's own pytest suite, read from JUnit XML; failing tests are rerun (only those) to tell flaky from real."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

from releasegate.context import RunContext
from releasegate.environment import Environment, placeholders, service_env
from releasegate.errors import StageError
from releasegate.fingerprint import fingerprint
from releasegate.models import Artifact, Attempt, Finding, Metric, Severity, StageResult, Status, TestCase
from releasegate.policy import Policy, Suite, fill, fill_command
from releasegate.redact import redact
from releasegate.stages.base import fresh_folder, guarded, last_error_line, now, run_tool
from releasegate.stages.junit import parse_junit

log = logging.getLogger("releasegate")
PLUGIN_DIR = Path(__file__).parent / "pytest_plugin"
NO_TESTS_COLLECTED = 5  # pytest's status when it collected nothing: missing evidence, judged by min_tests


def stage_name(suite: Suite) -> str:
    return f"pytest[{suite.name}]"


def run(policy: Policy, ctx: RunContext, suite: Suite, env: Environment | None) -> StageResult:
    return guarded(stage_name(suite), suite.kind, suite.required, lambda started: _run(policy, ctx, suite, env, started))


def _run(policy: Policy, ctx: RunContext, suite: Suite, env: Environment | None, started: datetime) -> StageResult:
    if suite.needs_service and env is None:
        raise StageError("the suite needs the running service, but provisioning did not give one — see the provision stage")
    folder = fresh_folder(ctx.evidence / "pytest" / suite.name)
    first, _, _ = _attempt(policy, ctx, suite, env, folder, attempt=1, node_ids=[])
    log_rows = [_attempt_row(1, started, "all tests", first, "")]
    cases = {c.node_id: c for c in first}
    for attempt in range(2, suite.retries + 2):
        failing = [c.node_id for c in cases.values() if c.outcome in ("failed", "error") and not _is_exit_case(c)]
        if not failing:
            break
        log.info("pytest[%s]: rerunning %d failing test(s), attempt %d of %d", suite.name, len(failing), attempt,
                 suite.retries + 1)
        began = now()
        rerun, _, _ = _attempt(policy, ctx, suite, env, folder, attempt=attempt, node_ids=failing)
        cases = _merge(cases, rerun)
        log_rows.append(_attempt_row(attempt, began, f"{len(failing)} failing test(s) rerun by node id", rerun,
                                     f"rerun {attempt - 1} of {suite.retries}: a pass now marks the test flaky"))
    return _result(policy, suite, ctx, started, list(cases.values()), log_rows, folder)


def _is_exit_case(case: TestCase) -> bool:
    return case.node_id.startswith("<exit code")


def _attempt_row(number: int, started: datetime, scope: str, cases: list[TestCase], remediation: str) -> Attempt:
    failed = sum(1 for c in cases if c.outcome in ("failed", "error"))
    passed = sum(1 for c in cases if c.outcome == "passed")
    return Attempt(attempt=number, started=started, finished=now(), scope=scope,
                   status=Status.failed if failed else Status.passed, remediation=remediation,
                   summary=f"{passed} passed, {failed} failed or errored of {len(cases)}")


def _attempt(policy: Policy, ctx: RunContext, suite: Suite, env: Environment | None, folder: Path, attempt: int,
             node_ids: list[str]) -> tuple[list[TestCase], int, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    values = placeholders(policy, ctx, env.port if env else None)
    xml = ctx.source / fill(suite.junit, values) if suite.junit is not None else folder / f"junit-{attempt}.xml"
    if xml.is_file():
        xml.unlink()  # this attempt reads only the JUnit XML this attempt writes
    argv = fill_command(suite.command, values) + (node_ids or [fill(p, values) for p in suite.paths])
    argv += [fill(a, values) for a in suite.args]
    if suite.junit is None:
        argv += [f"--junitxml={xml}", "-o", "junit_family=xunit1", "-p", "releasegate_nodeids", "-p", "no:cacheprovider"]
    run = run_tool(argv, cwd=ctx.source, timeout_s=suite.timeout_s, env=_suite_env(policy, suite, env, values),
                   log_to=folder / f"output-{attempt}.log", ok=ran_statuses(suite))
    if run.returncode == NO_TESTS_COLLECTED and not node_ids:
        return [], run.returncode, xml
    if not xml.is_file():
        raise StageError(f"{run.ending()} and wrote no JUnit XML at {xml}; last output: "
                         f"{last_error_line(run.stderr, run.stdout)} — see {run.log}")
    cases = [c.model_copy(update={"message": redact(c.message)})
             for c in parse_junit(xml.read_text(encoding="utf-8", errors="replace"), str(xml))]
    _redact_file(xml)
    if run.returncode == 1 and not any(c.outcome in ("failed", "error") for c in cases) and not node_ids:
        cases.append(_exit_code_case(run.returncode, folder / f"output-{attempt}.log"))
    return cases, run.returncode, xml


def ran_statuses(suite: Suite) -> set[int]:
    """The exit statuses that mean the tests ran: the suite's exit_codes_ok (pytest: 0 passed, 1 some failed) and
    5 (nothing collected: missing evidence). pytest's 2 (interrupted, e.g. a collection error), 3 (internal error),
    4 (usage error), a signal or a timeout mean they did not: the stage is an error."""
    return {*suite.exit_codes_ok, NO_TESTS_COLLECTED}


def _redact_file(path: Path) -> None:
    """Raw evidence is shared with stakeholders: secrets a test printed are masked in place."""
    text = path.read_text(encoding="utf-8", errors="replace")
    cleaned = redact(text)
    if cleaned != text:
        path.write_text(cleaned, encoding="utf-8")


def _suite_env(policy: Policy, suite: Suite, env: Environment | None, values: dict[str, str]) -> dict[str, str]:
    extra = {**service_env(policy, values), **{k: fill(v, values) for k, v in suite.env.items()}}
    if env is not None:
        extra["RELEASEGATE_BASE_URL"] = env.base_url
    path = os.environ.get("PYTHONPATH", "")
    extra["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_DIR), extra.get("PYTHONPATH", path)) if p)
    extra["PYTHONDONTWRITEBYTECODE"] = "1"
    return extra


def _exit_code_case(code: int, output: Path) -> TestCase:
    """The run failed although no test did: coverage thresholds or warnings-as-errors do this."""
    return TestCase(node_id=f"<exit code {code}>", outcome="error", message=(
        f"the test command exited {code} although no test failed: a coverage threshold (--cov-fail-under), "
        "a warning turned into an error, or a plugin failed the run — see "
        f"{output}; to judge the tests alone add e.g. ['-p', 'no:cov'] to the suite's args"))


def _merge(cases: dict[str, TestCase], rerun: list[TestCase]) -> dict[str, TestCase]:
    merged = dict(cases)
    for case in rerun:
        first = merged.get(case.node_id)
        if first is None:
            continue
        outcome = "flaky" if case.outcome == "passed" else case.outcome
        merged[case.node_id] = first.model_copy(update={"outcome": outcome, "attempts": first.attempts + 1,
                                                        "message": first.message})
    return merged


def _result(policy: Policy, suite: Suite, ctx: RunContext, started: datetime, cases: list[TestCase],
            attempts: list[Attempt], folder: Path) -> StageResult:
    counts = {k: sum(1 for c in cases if c.outcome == k) for k in ("passed", "failed", "error", "skipped", "flaky")}
    findings = [_finding(suite, c) for c in cases if c.outcome in ("failed", "error", "flaky")]
    executed = len(cases) - counts["skipped"]
    empty = executed < suite.min_tests
    status = Status.failed if any(f.blocking for f in findings) else Status.passed
    finished = now()
    summary = (f"pytest[{suite.name}]: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, "
               f"{counts['flaky']} flaky, {counts['skipped']} skipped in {(finished - started).total_seconds():.1f} s; "
               f"junit: {folder}")
    if empty:
        summary += f" — {executed} test(s) ran, the suite requires at least {suite.min_tests}: check its paths"
    log.info("%s", summary)
    artifacts = [Artifact.of(p) for p in sorted(folder.glob("*")) if p.is_file()]
    metrics = [Metric(name=f"tests_{k}", value=v) for k, v in counts.items()]
    return StageResult(stage=stage_name(suite), kind=suite.kind, status=status, required=suite.required,
                       started=started, finished=finished, attempts=len(attempts), summary=summary, metrics=metrics,
                       findings=findings, artifacts=artifacts, evidence_empty=empty, test_cases=cases,
                       attempt_log=attempts)


def _finding(suite: Suite, case: TestCase) -> Finding:
    if case.outcome == "flaky":
        return Finding(kind="flaky-test", rule=case.node_id, severity=Severity.low, blocking=suite.flaky_blocks,
                       title=f"{case.node_id} is flaky: failed, then passed on rerun", location=case.node_id,
                       evidence=redact(case.message[:600]), fingerprint=fingerprint("flaky-test", case.node_id),
                       data={"suite": suite.name, "attempts": case.attempts})
    return Finding(kind="test", rule=case.node_id, severity=suite.severity, blocking=True,
                   title=f"{case.node_id} {case.outcome} ({suite.kind} suite '{suite.name}')", location=case.node_id,
                   evidence=redact(case.message[:600]), fingerprint=fingerprint("test", case.node_id),
                   data={"suite": suite.name, "attempts": case.attempts})
