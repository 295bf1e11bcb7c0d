"""Migrations stage: the service's migrations go up, down and up again on a scratch database, and the schema after
the round trip is the schema after the first upgrade.

The gate creates the scratch database (releasegate.stages.migration_scratch), runs the policy's `up`, `down`
and `up` commands with {database_url} filled in, and inspects the schema before and after each step
(releasegate.stages.migration_schema). Findings: a step that fails while migrating (the revision named from the
tool's own output), a schema that differs after the round trip (table and column named), a step over
`budget_s`. Errors (INCONCLUSIVE): a tool that cannot start or fails before it names any revision, one stopped
at `timeout_s` or killed by a signal, a first upgrade that leaves the scratch database empty (the commands do not
read {database_url}), a scratch database that cannot be created or dropped.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Artifact, Finding, Metric, StageResult, Status
from releasegate.environment import Environment
from releasegate.environment.values import placeholders
from releasegate.policy import Migrations, Policy, fill, fill_command
from releasegate.redact import redact
from releasegate.stages.base import ToolRun, failure, fresh_folder, guarded, last_error_line, now, run_tool
from releasegate.stages.migration_schema import Schema, schema_diff, snapshot
from releasegate.stages.migration_scratch import Scratch, scratch_database
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

STAGE = "migrations"
KIND = "migrations"
STEPS = (("up", "up"), ("down", "down"), ("up again", "up"))  # (step, the policy's command for it)
CANNOT_START = (126, 127)  # a shell's "not executable" and "not found"
MAX_DIFF_FINDINGS = 20
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Failure)(?:: .*)?$", re.MULTILINE)

# How the tools the gate knows name the revision they are running (the last one named is the one that failed).
KNOWN_REVISIONS = (
    re.compile(r"Running downgrade ([\w.-]+) ->"),          # Alembic, Flask-Migrate: the revision being undone
    re.compile(r"Running upgrade [\w.-]* ?-> ([\w.-]+)"),    # Alembic, Flask-Migrate: the revision being applied
    re.compile(r"\b(?:Una|A)pplying ([\w.-]+?)\.\.\."),      # Django: app.0002_name
)


@dataclass(frozen=True)
class Step:
    name: str
    run: ToolRun
    schema: Schema

    @property
    def ok(self) -> bool:
        return self.run.returncode == 0


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    """The stage as the registry runs it (releasegate/stages/registry.py): it needs no service."""
    spec: Migrations = planned.entry
    return guarded(planned.name, KIND, planned.required, lambda started: _run(policy, spec, ctx, started))


def _run(policy: Policy, spec: Migrations, ctx: RunContext, started: datetime) -> StageResult:
    out_dir = fresh_folder(ctx.evidence / STAGE)
    with scratch_database(spec.server) as scratch:
        empty = snapshot(scratch.engine)
        steps = round_trip(policy, spec, ctx, scratch, out_dir, empty)
    _write_schemas(out_dir, empty, steps)
    findings = judge(spec, empty, steps)
    result = _result(spec, started, steps, findings, out_dir)
    log.info("%s", result.summary)
    return result


def round_trip(policy: Policy, spec: Migrations, ctx: RunContext, scratch: Scratch, out_dir: Path,
               empty: Schema) -> list[Step]:
    """up, down, up: stopped after the first step that fails (what follows would read a half-migrated schema)."""
    values = {**placeholders(policy, ctx), "database_url": scratch.url}
    env = {k: fill(v, values) for k, v in spec.env.items()}
    steps: list[Step] = []
    for name, command in STEPS:
        argv = fill_command(getattr(spec, command), values)
        run = run_tool(argv, cwd=ctx.source, timeout_s=spec.timeout_s, env=env,
                       log_to=out_dir / f"{name.replace(' ', '-')}.log")
        step = Step(name, run, snapshot(scratch.engine))
        _check_started(step, spec, scratch, empty, steps)
        steps.append(step)
        if not step.ok:
            break
    return steps


def _check_started(step: Step, spec: Migrations, scratch: Scratch, empty: Schema, before: list[Step]) -> None:
    """StageError when the step's ending says nothing about the migrations: the tool did not start, was killed, or
    failed before naming a revision; or the first upgrade left the scratch database as empty as it was."""
    run = step.run
    killed = failure(run, (0,)) if run.signal is not None else None
    if killed:
        raise StageError(f"migrations {step.name}: {killed}")
    if run.returncode in CANNOT_START or (not step.ok and failing_revision(run, spec.revision_pattern) is None):
        raise StageError(f"migrations {step.name}: the migration tool could not start or failed before naming a "
                         f"revision ({run.ending()}): {tool_said(run)} — run "
                         f"`{' '.join(run.command)}` by hand; a tool the gate does not know needs "
                         f"migrations.revision_pattern; log: {run.log}")
    if not before and step.ok and step.schema == empty:
        raise StageError(f"migrations up: the upgrade ended well but left the scratch database ({scratch.where}) "
                         "empty — the commands must migrate {database_url} (e.g. env: {DATABASE_URL: "
                         "'{database_url}'}); log: " + str(run.log))


def tool_said(run: ToolRun) -> str:
    """The tool's own words on what went wrong: the last exception line of a traceback (`RuntimeError: ...`), else
    its last line that says so; redacted."""
    for text in (run.stderr, run.stdout):
        raised = EXCEPTION_LINE.findall(text)
        if raised:
            return redact(raised[-1].strip())[:300]
    return redact(last_error_line(run.stderr, run.stdout))


def failing_revision(run: ToolRun, pattern: str | None) -> str | None:
    """The last revision the tool named before it ended (stderr first, where Alembic logs; then stdout)."""
    patterns = (re.compile(pattern),) if pattern else KNOWN_REVISIONS
    for text in (run.stderr, run.stdout):
        found = [(m.start(), m.group(1)) for p in patterns for m in p.finditer(text)]
        if found:
            return max(found)[1]
    return None


def judge(spec: Migrations, empty: Schema, steps: list[Step]) -> list[Finding]:
    """Findings of one round trip: the step that failed, the schema that changed, the steps over budget."""
    findings = [_slow(spec, s) for s in steps if s.run.seconds > spec.budget_s]
    failed = next((s for s in steps if not s.ok), None)
    if failed is not None:
        return [_failed(spec, failed), *findings]
    diff = schema_diff(steps[0].schema, steps[2].schema)
    return [_changed(spec, line) for line in diff[:MAX_DIFF_FINDINGS]] + findings


def _failed(spec: Migrations, step: Step) -> Finding:
    revision = failing_revision(step.run, spec.revision_pattern) or "?"
    said = tool_said(step.run)
    verb = "downgrade" if step.name == "down" else "upgrade"
    title = (f"migrations: the {verb} ({step.name}) failed at revision {revision}: {said} — "
             f"{step.run.ending()}; log: {step.run.log}")
    return Finding(kind=KIND, rule=f"{verb}-fails", severity=spec.severity, title=title, location=revision,
                   evidence=said, fingerprint=fingerprint(KIND, f"{verb}-fails", revision),
                   data={"step": step.name, "revision": revision, "exit": step.run.returncode})


def _changed(spec: Migrations, line: str) -> Finding:
    title = (f"migrations: the schema after up -> down -> up differs from the schema after the first up: {line} — "
             "the downgrade does not undo what the upgrade did")
    return Finding(kind=KIND, rule="round-trip-changes-schema", severity=spec.severity, title=title,
                   location=line.split(":", 1)[0], evidence=line,
                   fingerprint=fingerprint(KIND, "round-trip-changes-schema", line), data={"difference": line})


def _slow(spec: Migrations, step: Step) -> Finding:
    title = (f"migrations: {step.name} took {step.run.seconds:.1f} s, over the budget of {spec.budget_s:g} s "
             "(migrations.budget_s)")
    return Finding(kind=KIND, rule="over-budget", severity=spec.severity, title=title, location=step.name,
                   fingerprint=fingerprint(KIND, "over-budget", step.name),
                   data={"step": step.name, "seconds": round(step.run.seconds, 3), "budget_s": spec.budget_s})


def _write_schemas(out_dir: Path, empty: Schema, steps: list[Step]) -> None:
    doc: dict[str, Any] = {"empty": empty, **{s.name: s.schema for s in steps}}
    if len(steps) == len(STEPS) and all(s.ok for s in steps):
        doc["round_trip_differences"] = schema_diff(steps[0].schema, steps[2].schema)
        doc["removed_by_down"] = schema_diff(steps[0].schema, steps[1].schema)
    (out_dir / "schemas.json").write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")


def _result(spec: Migrations, started: datetime, steps: list[Step], findings: list[Finding],
            out_dir: Path) -> StageResult:
    tables = len(steps[0].schema)
    timings = ", ".join(f"{s.name} {s.run.seconds:.1f} s{'' if s.ok else ' (failed)'}" for s in steps)
    summary = (f"migrations: {len(findings)} findings; {tables} tables after up; {timings}; "
               f"schemas: {out_dir / 'schemas.json'}")
    logs = [out_dir / f"{s.name.replace(' ', '-')}.log" for s in steps]
    return StageResult(
        stage=STAGE, kind=KIND, status=Status.failed if findings else Status.passed, required=spec.required,
        started=started, finished=now(), summary=summary, findings=findings,
        metrics=[Metric(name="findings", value=len(findings)), Metric(name="tables", value=tables),
                 *[Metric(name=f"{s.name.replace(' ', '_')}_duration", value=round(s.run.seconds, 3), unit="s",
                          threshold=spec.budget_s, operator="<=", passed=s.run.seconds <= spec.budget_s)
                   for s in steps]],
        artifacts=[Artifact.of(out_dir / "schemas.json"), *[Artifact.of(p) for p in logs if p.is_file()]])
