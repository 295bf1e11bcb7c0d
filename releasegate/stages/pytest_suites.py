"""A service's own pytest suite, read from JUnit XML; failing tests are rerun (only those) to tell flaky from real.

Every way a suite ends names its cause: a suite that did not run (pytest's exit 2, 3 or 4) is an error with pytest's
own error line; a coverage threshold missed (exit 1, no test failed) is a finding with the measured coverage and the
threshold; a warning turned into an error names the warning; a service that stopped while the suite ran names its last
log lines.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import (
    Artifact,
    Attempt,
    Finding,
    Metric,
    Severity,
    StageResult,
    Status,
    TestCase,
)
from releasegate.environment import Environment, placeholders, service_env
from releasegate.policy import Policy, Suite, fill, fill_command
from releasegate.redact import redact, redact_file
from releasegate.stages.base import ToolRun, failure, fresh_folder, guarded, last_error_line, now, run_tool
from releasegate.stages.junit import iter_junit
from releasegate.stages.registry import Planned
from releasegate.stages.service_state import service_gone
from releasegate.stages.suite_tally import SuiteTally, test_groups

log = logging.getLogger("releasegate")
PLUGIN_DIR = Path(__file__).parent / "pytest_plugin"
NO_TESTS_COLLECTED = 5  # pytest's status when it collected nothing: missing evidence, judged by min_tests
# pytest's statuses for "the tests did not run" (pytest.ExitCode), in words a release manager can act on
DID_NOT_RUN = {
    2: ("interrupted", "a test module or conftest failed to import, or a warning turned into an error while "
                       "collecting: fix the cause below, or the suite's paths"),
    3: ("internal error", "pytest or a plugin crashed: run the command in the log by hand"),
    4: ("usage error", "a path that does not exist, or an option no installed plugin knows: check the suite's paths "
                       "(relative to the source) and args"),
}
# pytest-cov's words when --cov-fail-under was checked (pytest-cov 4 to 7)
COVERAGE_FAILED = re.compile(r"Required test coverage of ([\d.]+)% not reached\. Total coverage: ([\d.]+)%")
COVERAGE_REACHED = re.compile(r"Required test coverage of ([\d.]+)% reached\. Total coverage: ([\d.]+)%")
COVERAGE_FAILURE = re.compile(r"Coverage failure: total of ([\d.]+) is less than fail-under=([\d.]+)")
WARNING_LINE = re.compile(r"\b([A-Z]\w*Warning): (.+)")


def stage_name(suite: Suite) -> str:
    return f"pytest[{suite.name}]"


def run(policy: Policy, ctx: RunContext, suite: Suite, env: Environment | None) -> StageResult:
    return guarded(stage_name(suite), suite.kind, suite.required, lambda started: _run(policy, ctx, suite, env, started))


def _run(policy: Policy, ctx: RunContext, suite: Suite, env: Environment | None, started: datetime) -> StageResult:
    if suite.needs_service and env is None:
        raise StageError("the suite needs the running service, but provisioning did not give one — see the provision stage")
    folder = fresh_folder(ctx.evidence / "pytest" / suite.name)
    try:
        first = _attempt(policy, ctx, suite, env, folder, attempt=1, node_ids=[])
    except StageError as exc:
        gone = _service_gone(suite, env)
        raise StageError(f"{exc}; {gone}" if gone else str(exc)) from None
    log_rows = [_attempt_row(1, started, "all tests", first.tally, "")]
    cases = {c.node_id: c for c in first.tally.cases()}
    for attempt in range(2, suite.retries + 2):
        failing = [c.node_id for c in cases.values() if c.outcome in ("failed", "error")]
        if not failing:
            break
        log.info("pytest[%s]: rerunning %d failing test(s), attempt %d of %d", suite.name, len(failing), attempt,
                 suite.retries + 1)
        began = now()
        rerun = _attempt(policy, ctx, suite, env, folder, attempt=attempt, node_ids=failing).tally
        cases = _merge(cases, rerun.cases())
        log_rows.append(_attempt_row(attempt, began, f"{len(failing)} failing test(s) rerun by node id", rerun,
                                     f"rerun {attempt - 1} of {suite.retries}: a pass now marks the test flaky"))
    extra = run_findings(suite, first)
    gone = _service_gone(suite, env)
    if gone:
        extra.append(_service_finding(suite, gone, env))
    return _result(policy, suite, ctx, started, first.tally, list(cases.values()), log_rows, folder, extra,
                   coverage_metric(first.run))


@dataclass(frozen=True)
class AttemptOutcome:
    """One run of the suite's command: the test cases its JUnit XML holds (counted, the failing ones whole), and how
    the command ended."""

    tally: SuiteTally
    run: ToolRun
    xml: Path


def _attempt_row(number: int, started: datetime, scope: str, tally: SuiteTally, remediation: str) -> Attempt:
    counts = tally.outcomes()
    failed = counts["failed"] + counts["error"]
    return Attempt(attempt=number, started=started, finished=now(), scope=scope,
                   status=Status.failed if failed else Status.passed, remediation=remediation,
                   summary=f"{counts['passed']} passed, {failed} failed or errored of {sum(counts.values())}")


def _attempt(policy: Policy, ctx: RunContext, suite: Suite, env: Environment | None, folder: Path, attempt: int,
             node_ids: list[str]) -> AttemptOutcome:
    folder.mkdir(parents=True, exist_ok=True)
    values = placeholders(policy, ctx, env.port if env else None)
    xml = ctx.source / fill(suite.junit, values) if suite.junit is not None else folder / f"junit-{attempt}.xml"
    if xml.is_file():
        xml.unlink()  # this attempt reads only the JUnit XML this attempt writes
    argv = fill_command(suite.command, values) + (node_ids or [fill(p, values) for p in suite.paths])
    argv += [fill(a, values) for a in suite.args]
    if suite.junit is None:
        argv += [f"--junitxml={xml}", "-o", "junit_family=xunit1", "-p", "releasegate_nodeids", "-p", "no:cacheprovider"]
    session = folder / f"session-{attempt}.json"
    session.unlink(missing_ok=True)
    suite_env = {**_suite_env(policy, suite, env, values), "RELEASEGATE_PYTEST_SESSION": str(session)}
    run = run_tool(argv, cwd=ctx.source, timeout_s=suite.timeout_s, env=suite_env,
                   log_to=folder / f"output-{attempt}.log")
    reason = did_not_run(run, suite)
    if reason is not None:
        raise StageError(reason)
    if suite.junit is None:
        reason = cut_short(session, run)
        if reason is not None:
            raise StageError(reason)
    if run.returncode == NO_TESTS_COLLECTED and not node_ids:
        return AttemptOutcome(SuiteTally(None), run, xml)
    if not xml.is_file():
        raise StageError(f"{run.ending()} and wrote no JUnit XML at {xml}; last output: "
                         f"{last_error_line(run.stderr, run.stdout)} — see {run.log}")
    tally = read_cases(xml, folder / f"cases-{attempt}.tsv" if not node_ids else None)
    redact_file(xml, xml)
    return AttemptOutcome(tally, run, xml)


def cut_short(session: Path, run: ToolRun) -> str | None:
    """Why the session cannot count as complete: interrupted (pytest.exit(), Ctrl-C), or ended before every
    collected test ran with none failing (with a failure, stopping early is -x / --maxfail: the failure stands)."""
    try:
        record = json.loads(session.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return (f"pytest ended without the gate's session record at {session} (its session never finished): "
                f"{last_error_line(run.stderr, run.stdout)} — see {run.log}")
    except ValueError:
        return f"the session record {session} is unreadable — see {run.log}"
    collected, finished = record.get("collected", 0), record.get("finished", 0)
    if record.get("interrupted"):
        return (f"the suite was cut short after {finished} of {collected} collected tests "
                f"({record['interrupted']}): its results are incomplete — see {run.log}")
    if finished < collected and not record.get("failed"):
        return (f"the suite ended after {finished} of {collected} collected tests with none failing: its results "
                f"are incomplete — see {run.log}")
    return None


def read_cases(xml: Path, spool: Path | None) -> SuiteTally:
    """The JUnit XML's cases, streamed into a tally (``spool`` None: every case kept in memory)."""
    tally = SuiteTally(spool)
    try:
        with xml.open("rb") as document:
            for case in iter_junit(document, str(xml)):
                tally.add(case)
    finally:
        tally.close()
    return tally


def ran_statuses(suite: Suite) -> set[int]:
    """The exit statuses that mean the tests ran: the suite's exit_codes_ok (pytest: 0 passed, 1 some failed) and
    5 (nothing collected: missing evidence). pytest's 2 (interrupted, e.g. a collection error), 3 (internal error),
    4 (usage error), a signal or a timeout mean they did not: the stage is an error."""
    return {*suite.exit_codes_ok, NO_TESTS_COLLECTED}


def did_not_run(run: ToolRun, suite: Suite) -> str | None:
    """Why the suite's tests did not run, or None when they did: pytest's own error line with what its status means
    (a runner of the suite's own `command` and `junit`: its last error line), how a timeout or signal ended it."""
    reason = failure(run, ran_statuses(suite))
    if reason is None or run.timed_out or run.signal is not None or suite.junit is not None \
            or run.returncode not in DID_NOT_RUN:
        return reason
    meaning, advice = DID_NOT_RUN[run.returncode]
    cause = pytest_cause(run.stderr, run.stdout)
    if WARNING_LINE.search(cause):
        advice = ("a warning turned into an error (filterwarnings = error, or -W error): fix what warns, or add "
                  "args ['-W', 'default'] to the suite to judge the tests alone")
    return (f"the suite did not run: pytest {meaning} (exit {run.returncode}): {cause} — {advice}; "
            f"log: {run.log}")


def pytest_cause(stderr: str, stdout: str = "") -> str:
    """pytest's own words on why it stopped: its usage error, the exception a conftest or test module raised while it
    collected (a warning turned into an error included), else the tool's last error line."""
    text = f"{stderr}\n{stdout}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    usage = [ln for ln in lines if re.match(r"ERROR: |.*pytest: error: ", ln) and not ln.startswith("ERROR: usage:")]
    if usage:
        return _clip(usage[0])
    raised = [ln[1:].strip() for ln in lines if re.match(r"E\s{2,}\S", ln)]
    summary = [ln for ln in lines if re.match(r"ERROR \S+ - ", ln)]
    if summary:
        return _clip(summary[0])
    if raised:
        where = next((ln for ln in lines if "while loading conftest" in ln or ln.startswith("ImportError while")), "")
        return _clip(f"{where.rstrip('.')}: {raised[-1]}" if where else raised[-1])
    return last_error_line(stderr, stdout)


def _clip(line: str, limit: int = 300) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"


def run_findings(suite: Suite, first: AttemptOutcome) -> list[Finding]:
    """What failed the run besides its tests: a coverage threshold missed, or (exit 1 with every test passing)
    whatever pytest's output names — never a pseudo test case."""
    run = first.run
    coverage = coverage_shortfall(run.stdout + "\n" + run.stderr)
    if coverage is not None:
        return [_coverage_finding(suite, *coverage, run)]
    failing = bool(first.tally.failing())
    if run.returncode == 1 and not failing and 1 in suite.exit_codes_ok:
        return [_unexplained_exit_finding(suite, run, first.tally.outcomes()["passed"])]
    return []


def coverage_shortfall(output: str) -> tuple[float, float] | None:
    """(measured %, required %) when pytest-cov says the total missed --cov-fail-under; else None."""
    found = COVERAGE_FAILED.search(output)
    if found:
        return float(found.group(2)), float(found.group(1))
    found = COVERAGE_FAILURE.search(output)
    return (float(found.group(1)), float(found.group(2))) if found else None


def coverage_metric(run: ToolRun) -> list[Metric]:
    """Total coverage against --cov-fail-under, when pytest-cov checked a threshold in this run."""
    output = run.stdout + "\n" + run.stderr
    shortfall = coverage_shortfall(output)
    if shortfall is not None:
        return [Metric(name="coverage", value=shortfall[0], unit="%", threshold=shortfall[1], operator=">=",
                       passed=False)]
    reached = COVERAGE_REACHED.search(output)
    if reached:
        return [Metric(name="coverage", value=float(reached.group(2)), unit="%", threshold=float(reached.group(1)),
                       operator=">=", passed=True)]
    return []


def _coverage_finding(suite: Suite, measured: float, required: float, run: ToolRun) -> Finding:
    return Finding(kind="coverage", rule="cov-fail-under", severity=suite.severity, blocking=True,
                   title=(f"coverage {measured:g}% is below the required {required:g}% (--cov-fail-under, "
                          f"{suite.kind} suite '{suite.name}')"),
                   location=stage_name(suite),
                   evidence=(f"pytest-cov: total coverage {measured:g}%, required {required:g}%; the tests "
                             f"themselves passed — raise the coverage, or add args ['--cov-fail-under=0'] to the "
                             f"suite to judge the tests alone; log: {run.log}"),
                   fingerprint=fingerprint("coverage", suite.name),
                   data={"suite": suite.name, "value": measured, "threshold": required})


def _unexplained_exit_finding(suite: Suite, run: ToolRun, passed: int) -> Finding:
    cause = pytest_cause(run.stderr, run.stdout)
    warning = WARNING_LINE.search(cause)
    what = f"a warning turned into an error: {warning.group(1)}: {warning.group(2)}" if warning else cause
    return Finding(kind="suite", rule="run-failed", severity=suite.severity, blocking=True,
                   title=f"the test run failed although all {passed} test(s) passed ({suite.kind} suite "
                         f"'{suite.name}'): {what}",
                   location=stage_name(suite),
                   evidence=(f"{run.ending()} with no failing test; pytest's last error line: {cause} — a plugin "
                             f"or a hook failed the run; log: {run.log}"),
                   fingerprint=fingerprint("suite-run", suite.name),
                   data={"suite": suite.name})


def _service_gone(suite: Suite, env: Environment | None) -> str | None:
    return service_gone(env) if suite.needs_service and env is not None else None


def _service_finding(suite: Suite, gone: str, env: Environment | None) -> Finding:
    return Finding(kind="service", rule="service-stopped", severity=Severity.high, blocking=True,
                   title=f"the service stopped while {stage_name(suite)} ran: {gone}",
                   location=env.log_path if env else "", evidence=gone,
                   fingerprint=fingerprint("service-stopped", stage_name(suite)), data={"suite": suite.name})


def _suite_env(policy: Policy, suite: Suite, env: Environment | None, values: dict[str, str]) -> dict[str, str]:
    extra = {**service_env(policy, values), **{k: fill(v, values) for k, v in suite.env.items()}}
    if env is not None:
        extra["RELEASEGATE_BASE_URL"] = env.base_url
    path = os.environ.get("PYTHONPATH", "")
    extra["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_DIR), extra.get("PYTHONPATH", path)) if p)
    extra["PYTHONDONTWRITEBYTECODE"] = "1"
    return extra


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


def _result(policy: Policy, suite: Suite, ctx: RunContext, started: datetime, tally: SuiteTally,
            cases: list[TestCase], attempts: list[Attempt], folder: Path, extra: list[Finding],
            coverage: list[Metric]) -> StageResult:
    """``cases``: the cases held in memory after reruns (failing and flaky ones all); the rest are in the tally."""
    groups = test_groups(tally, cases)
    counts = {k: sum(getattr(g, k) for g in groups) for k in ("passed", "failed", "error", "skipped", "flaky")}
    findings = [_finding(suite, c) for c in cases if c.outcome in ("failed", "error", "flaky")] + extra
    executed = sum(counts.values()) - counts["skipped"]
    empty = executed < suite.min_tests
    status = Status.failed if any(f.blocking for f in findings) else Status.passed
    finished = now()
    summary = (f"pytest[{suite.name}]: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, "
               f"{counts['flaky']} flaky, {counts['skipped']} skipped in {(finished - started).total_seconds():.1f} s; "
               f"junit: {folder}")
    summary += "".join(f"; {f.title}" for f in extra)
    if empty:
        summary += f" — {executed} test(s) ran, the suite requires at least {suite.min_tests}: check its paths"
    log.info("%s", summary)
    artifacts = [Artifact.of(p) for p in sorted(folder.glob("*")) if p.is_file()]
    metrics = [Metric(name=f"tests_{k}", value=v) for k, v in counts.items()] + coverage
    return StageResult(stage=stage_name(suite), kind=suite.kind, status=status, required=suite.required,
                       started=started, finished=finished, attempts=len(attempts), summary=summary, metrics=metrics,
                       findings=findings, artifacts=artifacts, evidence_empty=empty, test_cases=cases,
                       test_groups=groups, cases_file=str(tally.spool) if tally.spool else "", attempt_log=attempts)


def _finding(suite: Suite, case: TestCase) -> Finding:
    if case.outcome == "flaky":
        return Finding(kind="flaky-test", rule=case.node_id, severity=Severity.low, blocking=suite.flaky_blocks,
                       title=f"{case.node_id} is flaky: failed, then passed on rerun", location=case.node_id,
                       evidence=redact(case.message[:600]), fingerprint=fingerprint("flaky-test", case.node_id),
                       data={"suite": suite.name, "attempts": case.attempts})
    warning = WARNING_LINE.match(case.message.splitlines()[0] if case.message else "")
    because = f": a warning turned into an error: {warning.group(1)}: {warning.group(2)}" if warning else ""
    return Finding(kind="test", rule=case.node_id, severity=suite.severity, blocking=True,
                   title=f"{case.node_id} {case.outcome} ({suite.kind} suite '{suite.name}'){because}",
                   location=case.node_id,
                   evidence=redact(case.message[:600]), fingerprint=fingerprint("test", case.node_id),
                   data={"suite": suite.name, "attempts": case.attempts})


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    """The stage as the registry runs it (releasegate/stages/registry.py)."""
    return run(policy, ctx, planned.entry, env)
