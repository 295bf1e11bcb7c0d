"""The gate run as a sequence of steps. The DAG calls each step from one task; the CLI calls them in order.

Each step reads what it needs from the run's evidence folder and the gate database, so a task that runs
again (retry, clear) finds the same inputs and writes the same rows.

Every run that was recorded ends with a recorded verdict (docs/decisions/0009):
- a fault of the gate itself in a step (the database dropped, the disk full, a crash) becomes an `error`
  result of that step, named after it (a stage's own result, `provision`, or `gate:<step>`), so the verdict
  is INCONCLUSIVE with the fault as its reason; database writes are retried first (store.transaction);
- the service is stopped whatever failed;
- the verdict is kept in the database first, then the evidence files appear (each written whole), the
  manifest last: a folder whose writing stopped half way has no manifest and never verifies;
- every text is redacted (releasegate.redact) before it is stored, written, logged or printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from releasegate import store
from releasegate.atomic import Staged, write_atomic
from releasegate.audit import record, record_many, transition_events
from releasegate.context import RunContext, close_run, open_run, safe_name
from releasegate.environment import Environment, provision, publish_logs, teardown
from releasegate.errors import ProvisionError, ReleaseGateError
from releasegate.models import AppliedWaiver, Decision, DefectChange, StageResult, Status, Verdict
from releasegate.policy import Policy, load_policy
from releasegate.redact import protect, redact, redact_data, remember_env, remember_policy
from releasegate.stages import registry
from releasegate.stages.base import guarded, now
from releasegate.verdict import ExpectedStage, decide

_T = TypeVar("_T")
log = logging.getLogger("releasegate")
protect(log)  # every record the gate logs is redacted before any handler (CLI, Airflow task log) sees it
PROVISION = "provision"
GATE_KIND = "gate"  # results of the gate's own steps: a fault of the gate, not of a tool or the service
# fields of a StageResult that identify rather than describe: never rewritten by redaction
IDENTIFIERS = frozenset({"stage", "kind", "status", "fingerprint", "sha256", "started", "finished", "severity",
                         "outcome", "operator", "unit"})


class RunNotStarted(ReleaseGateError):
    """The run could not be opened or recorded: nothing ran, so there is no verdict (the CLI exits 2)."""


@dataclass
class Outcome:
    run_id: str
    service: str
    version: str
    verdict: Verdict
    report: str
    evidence_dir: str
    notification: str = ""
    extra: dict = field(default_factory=dict)
    recorded: bool = True  # whether the gate database holds this verdict

    def as_json(self) -> dict:
        return {"decision": self.verdict.decision.value, "run_id": self.run_id, "service": self.service,
                "version": self.version, "report": self.report, "evidence_dir": self.evidence_dir,
                "notification": self.notification, "decided_at": self.verdict.decided_at.isoformat(),
                "reasons": [r.model_dump(mode="json", exclude_none=True) for r in self.verdict.reasons],
                "waivers": [w.model_dump(mode="json") for w in self.verdict.waivers],
                "defects": [d.model_dump(mode="json") for d in self.verdict.defects],
                "advisory_data": (self.verdict.advisory_data.model_dump(mode="json")
                                  if self.verdict.advisory_data else None)}


def expected_stages(policy: Policy) -> list[ExpectedStage]:
    """Provisioning (when the policy starts the service), then every stage the policy plans (see the registry)."""
    stages = [ExpectedStage(PROVISION)] if policy.environment else []
    return stages + [ExpectedStage(p.name, p.required) for p in registry.planned(policy)]


def cause(exc: BaseException) -> str:
    """What went wrong, in one redacted line that says where: the database, the evidence folder, or the gate."""
    from sqlalchemy.exc import SQLAlchemyError

    from persistence.uow import first_line

    if isinstance(exc, SQLAlchemyError):
        what = f"the gate database failed ({first_line(exc)})"
    elif isinstance(exc, OSError):
        what = f"a file could not be written or read ({type(exc).__name__}: {exc})"
    else:
        what = f"{type(exc).__name__}: {exc}"
    return redact(" ".join(what.split())[:600])


def gate_fault(step: str, exc: BaseException | str, *, required: bool = True,
               started: datetime | None = None) -> StageResult:
    """An `error` result for a step of the gate that failed: it makes the verdict INCONCLUSIVE, naming the fault."""
    message = redact(exc) if isinstance(exc, str) else cause(exc)
    return StageResult(stage=f"gate:{step}", kind=GATE_KIND, status=Status.error, required=required,
                       started=started or now(), finished=now(), summary=f"gate step {step} failed",
                       error=f"{step}: {message}")


def _attempt(faults: list[StageResult], step: str, work: Callable[[], _T]) -> _T | None:
    """`work()`, or None with a fault of `step` added to `faults`."""
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - any fault of a step becomes a reason of the verdict
        log.error("%s: %s", step, cause(exc))
        faults.append(gate_fault(step, exc))
        return None


# --- begin -------------------------------------------------------------------------------------------

def begin(policy_path: str | Path, version: str, *, run_id: str | None = None, evidence_dir: str | Path | None = None,
          airflow_run_id: str | None = None) -> RunContext:
    """Validate the policy, open the run (evidence folder, workspace) and record it."""
    return _begin(policy_path, version, run_id=run_id, evidence_dir=evidence_dir, airflow_run_id=airflow_run_id)[0]


def _begin(policy_path: str | Path, version: str, *, run_id: str | None = None,
           evidence_dir: str | Path | None = None,
           airflow_run_id: str | None = None) -> tuple[RunContext, StageResult | None]:
    """The run, and the fault of its opening steps after it was recorded (already saved), if any.

    Before the run is recorded nothing can hold a verdict: a fault there raises RunNotStarted (PolicyError for
    the policy itself)."""
    policy = load_policy(policy_path)
    remember_policy(policy)
    try:
        ctx = open_run(policy, version, run_id=run_id, evidence_dir=evidence_dir)
    except OSError as exc:
        raise RunNotStarted(f"the run's evidence folder or workspace could not be created: {cause(exc)}") from None
    try:
        store.transaction(lambda uow: _record_start(uow, ctx, policy, airflow_run_id), what="recording the run")
    except Exception as exc:  # noqa: BLE001 - no run row: the run did not start
        close_run(ctx)
        with contextlib.suppress(OSError):
            ctx.evidence.rmdir()  # only if still empty
        raise RunNotStarted(f"the run could not be recorded: {cause(exc)} — check RELEASEGATE_DB_URL and that the "
                            "gate database is reachable, then run again") from None
    fault = None
    try:  # the evidence keeps the policy as it was, minus its secrets (its digest is of the file itself)
        write_atomic(ctx.evidence / "policy.yaml", redact(policy.path.read_text(encoding="utf-8")))
    except Exception as exc:  # noqa: BLE001 - the run is recorded: the fault becomes its verdict's reason
        fault = save_result(ctx, gate_fault("begin", f"the policy could not be kept as evidence: {cause(exc)}"))
    log.info("run %s: %s %s, policy %s (%s); evidence: %s", ctx.run_id, ctx.service, version, ctx.policy_path,
             policy.digest[:19], ctx.evidence_dir)
    return ctx, fault


def _record_start(uow, ctx: RunContext, policy: Policy, airflow_run_id: str | None) -> None:
    uow.runs.upsert({"run_id": ctx.run_id, "service": ctx.service, "version": ctx.version,
                     "policy_path": ctx.policy_path, "policy_digest": policy.digest,
                     "evidence_dir": ctx.evidence_dir, "started_at": ctx.started, "status": "running",
                     "airflow_dag_run_id": airflow_run_id})
    record(uow, "run.started", f"{ctx.service}@{ctx.version}", {"policy_digest": policy.digest,
           "evidence_dir": ctx.evidence_dir, "airflow_dag_run_id": airflow_run_id}, ctx.started, ctx.run_id)


def policy_of(ctx: RunContext) -> Policy:
    policy = load_policy(ctx.policy_path)
    remember_policy(policy)
    return policy


# --- provision and stages ----------------------------------------------------------------------------

def provision_service(ctx: RunContext) -> Environment | None:
    """Start the service; its outcome is a stage result like any other (an error makes the verdict INCONCLUSIVE)."""
    return _provision(ctx)[0]


def _provision(ctx: RunContext) -> tuple[Environment | None, StageResult | None]:
    """The running service (None when there is none or it must not be used) and the provision result saved.

    A service whose provision result could not be saved is stopped at once: nothing runs against a service
    the run has no record of, and nothing is left running."""
    try:
        policy = policy_of(ctx)
    except Exception as exc:  # noqa: BLE001 - the policy changed or vanished since the run began
        return None, save_result(ctx, StageResult(stage=PROVISION, kind="environment", status=Status.error,
                                                  started=now(), finished=now(), summary="provision: no policy",
                                                  error=f"provision: the policy could not be read: {cause(exc)}"))
    if policy.environment is None:
        return None, None
    holder: dict[str, Environment] = {}

    def body(started: datetime) -> StageResult:
        try:
            holder["env"] = provision(policy, ctx)
        except ProvisionError as exc:
            return StageResult(stage=PROVISION, kind="environment", status=Status.error, started=started,
                               finished=now(), summary="provision: the service did not start", error=str(exc))
        env = holder["env"]
        remember_env(env.env)
        return StageResult(stage=PROVISION, kind="environment", status=Status.passed, started=started,
                           finished=now(), summary=f"provision: healthy at {env.base_url} (pid {env.pid})")

    try:
        saved = save_result(ctx, guarded(PROVISION, "environment", True, body))
    except BaseException:
        _stop_quietly(holder.get("env"))
        raise
    env = holder.get("env")
    if env is not None and saved.status is Status.error:
        log.error("provision: %s; stopping the service", saved.error)
        _stop_quietly(env)
        return None, saved
    return env, saved


def _stop_quietly(env: Environment | None) -> str | None:
    """Stop the environment; None when it stopped (or there was none), else what went wrong."""
    if env is None:
        return None
    try:
        teardown(env)
        return None
    except Exception as exc:  # noqa: BLE001 - reported by the caller; teardown stops what it can first
        log.error("teardown: %s", cause(exc))
        return cause(exc)


def stage_names(policy: Policy) -> list[str]:
    return [s.name for s in expected_stages(policy) if s.name != PROVISION]


def run_stage(ctx: RunContext, name: str, env: Environment | dict | None) -> StageResult:
    """Run one stage by its name, save its result as evidence and in the database; return what was saved.

    A fault of the gate while running it (not only of its tool) is that stage's `error` result."""
    started = now()
    try:
        policy = policy_of(ctx)
        runner = _runner(policy, name)
        environment = Environment.model_validate(env) if env else None
        if environment is not None:
            remember_env(environment.env)
            environment.require_local(name)
        result = runner(policy, ctx, environment)
    except ProvisionError as exc:
        result = StageResult(stage=name, kind="environment", status=Status.error, started=started, finished=now(),
                             summary=f"{name}: could not reach the service", error=str(exc))
    except KeyError:
        raise
    except Exception as exc:  # noqa: BLE001 - fail closed: the stage has a result, and it is an error
        log.error("%s: the gate failed running it: %s", name, cause(exc))
        result = StageResult(stage=name, kind=_kind(name), status=Status.error, started=started, finished=now(),
                             summary=f"{name}: the gate failed running it",
                             error=f"{name}: the gate failed running the stage: {cause(exc)}")
    return save_result(ctx, result)


def _kind(name: str) -> str:
    return "environment" if name == PROVISION else registry.kind_of(name)


def _runner(policy: Policy, name: str) -> Callable[[Policy, RunContext, Environment | None], StageResult]:
    plan = registry.find(policy, name)
    return lambda p, c, e: plan.stage.run(p, c, e, plan)


def redact_result(result: StageResult) -> StageResult:
    """The result with every descriptive text redacted (identifiers such as the stage name and fingerprints kept)."""
    return StageResult.model_validate(redact_data(result.model_dump(mode="json"), keep=IDENTIFIERS))


def save_result(ctx: RunContext, result: StageResult) -> StageResult:
    """Redact the result, then keep it: in the database, then as `stages/<stage>.json` (written whole); return
    what was kept.

    Never raises for a fault of the database or the disk: the result then becomes an `error` naming the fault,
    which is kept wherever it still can be, and returned (the caller holds it for the verdict)."""
    result = redact_result(result)
    try:
        store.transaction(lambda uow: _store_result(uow, ctx, result), what=f"saving {result.stage}")
        _write_result(ctx, result)
        return result
    except Exception as exc:  # noqa: BLE001 - the fault becomes the stage's result
        failed = result.model_copy(update={
            "status": Status.error, "finished": now(), "summary": f"{result.stage}: its result could not be saved",
            "error": f"{result.stage}: its result ({result.status.value}) could not be saved: {cause(exc)}"})
        log.error("%s", failed.error)
    for keep in (lambda: store.transaction(lambda uow: _store_result(uow, ctx, failed), what=f"saving {result.stage}"),
                 lambda: _write_result(ctx, failed)):
        try:
            keep()
        except Exception as exc:  # noqa: BLE001 - kept in memory at least
            log.warning("%s: the error result could not be kept either: %s", result.stage, cause(exc))
    return failed


def _store_result(uow, ctx: RunContext, result: StageResult) -> None:
    from releasegate.stages.suite_tally import read_spool

    spool = Path(result.cases_file) if result.cases_file else None
    cases = read_spool(spool) if spool is not None and spool.is_file() else ()
    uow.stages.upsert(ctx.run_id, result.model_dump(mode="json", exclude={"test_groups"}), cases=cases)
    record(uow, "stage.result", result.stage, {"status": result.status.value, "error": result.error,
           "evidence_empty": result.evidence_empty, "findings": sorted(f.fingerprint for f in result.findings)},
           result.finished, ctx.run_id)


def _write_result(ctx: RunContext, result: StageResult) -> None:
    write_atomic(ctx.evidence / "stages" / f"{safe_name(result.stage)}.json", result.model_dump_json(indent=2))


def load_results(ctx: RunContext) -> list[StageResult]:
    return read_results(ctx)[0]


def read_results(ctx: RunContext) -> tuple[list[StageResult], list[str]]:
    """The saved results in the order they ran, and a problem for each file that could not be read."""
    results, problems = [], []
    for path in sorted((ctx.evidence / "stages").glob("*.json")):
        if path.name.startswith("."):
            continue  # a temporary file of a write in progress (or one a crash left)
        try:
            results.append(StageResult.model_validate_json(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name} could not be read ({type(exc).__name__})")
    return sorted(results, key=lambda r: (r.started, r.stage)), problems


def merge_results(saved: Iterable[StageResult], known: Iterable[StageResult]) -> list[StageResult]:
    """One result per stage: the latest of the saved ones and those this process holds (a result that could not
    be written to the evidence folder exists only in memory)."""
    by_stage: dict[str, StageResult] = {}
    for result in [*saved, *known]:
        current = by_stage.get(result.stage)
        if current is None or result.finished >= current.finished:
            by_stage[result.stage] = result
    return sorted(by_stage.values(), key=lambda r: (r.started, r.stage))


# --- conclude ----------------------------------------------------------------------------------------

def conclude(ctx: RunContext, known: Iterable[StageResult] = ()) -> Outcome:
    """Decide, record defects, then keep the verdict: the database first, then the evidence files, the manifest last.

    `known`: results this process holds (the CLI's), preferred to the saved ones when newer. A fault in any step
    here makes the verdict INCONCLUSIVE naming it; nothing raises for a fault of the database or the disk. When
    even the database is gone the outcome says so (`recorded` False) and the evidence holds it. Safe to run again.
    """
    from releasegate.tools import tool_versions

    faults: list[StageResult] = []
    policy = _attempt(faults, "conclude", lambda: policy_of(ctx))
    saved, problems = _attempt(faults, "conclude", lambda: read_results(ctx)) or ([], [])
    faults += [gate_fault("results", f"a saved stage result {problem}") for problem in problems[:1]]
    results = merge_results(saved, known)
    expected = expected_stages(policy) if isinstance(policy, Policy) else []
    digest = policy.digest if isinstance(policy, Policy) else ""
    decided_at = max((r.finished for r in results if r.kind != GATE_KIND), default=ctx.started)
    waivers = _attempt(faults, "waivers", lambda: active_waivers(ctx.service, decided_at)) or {}
    recorded = _attempt(faults, "defects", lambda: _record_defects(ctx, results, decided_at, frozenset(waivers)))
    defects, changes = recorded if isinstance(recorded, tuple) else ([], [])
    versions = _attempt(faults, "tool_versions", tool_versions) or {}
    return _keep(_Conclusion(ctx, digest, results, faults, expected, decided_at, waivers, defects, changes, versions))


@dataclass
class _Conclusion:
    ctx: RunContext
    digest: str
    results: list[StageResult]
    faults: list[StageResult]
    expected: list[ExpectedStage]
    decided_at: datetime
    waivers: dict[str, AppliedWaiver]
    defects: list[dict]
    changes: list[DefectChange]
    versions: dict[str, str]

    @property
    def everything(self) -> list[StageResult]:
        return [*self.results, *self.faults]

    def verdict(self) -> Verdict:
        everything = self.everything
        gate_steps = [ExpectedStage(r.stage, r.required) for r in everything if r.kind == GATE_KIND]
        verdict = decide(everything, [*self.expected, *gate_steps], self.decided_at, self.digest, self.waivers)
        return verdict.model_copy(update={"defects": self.changes})

    def outcome(self, verdict: Verdict) -> Outcome:
        ctx = self.ctx
        return Outcome(ctx.run_id, ctx.service, ctx.version, verdict, str(ctx.evidence / "report.html"),
                       ctx.evidence_dir)

    def fail(self, step: str, exc: BaseException) -> Verdict:
        log.error("%s: %s", step, cause(exc))
        self.faults.append(gate_fault(step, exc))
        return self.verdict()


def _keep(c: _Conclusion) -> Outcome:
    """The database first, then the files (each whole), the manifest last; any fault makes it INCONCLUSIVE."""
    ctx = c.ctx
    verdict = c.verdict()
    try:
        staged, manifest_sha = _stage_evidence(c, verdict)
    except Exception as exc:  # noqa: BLE001 - e.g. a full disk: the verdict cannot stand on missing evidence
        verdict = c.fail("report", exc)
        staged, manifest_sha = _stage_verdict_only(c, verdict)
    try:
        store.transaction(lambda uow: _record_verdict(uow, ctx, verdict, c.versions, manifest_sha),
                          what="recording the verdict")
        recorded = True
    except Exception as exc:  # noqa: BLE001 - even the database is gone: the evidence and the caller say so
        staged.discard()
        verdict = c.fail("verdict", RuntimeError(f"the verdict could not be recorded in the gate database: "
                                                 f"{cause(exc)}"))
        recorded = False
        try:
            staged, manifest_sha = _stage_evidence(c, verdict)
        except Exception:  # noqa: BLE001
            staged, manifest_sha = _stage_verdict_only(c, verdict)
    try:
        (ctx.evidence / _manifest_name()).unlink(missing_ok=True)  # a folder torn from here on has no manifest
        staged.commit()
    except Exception as exc:  # noqa: BLE001 - the files did not all appear: the recorded verdict must not stand
        verdict = c.fail("report", exc)
        if recorded:
            recorded = _record_quietly(ctx, verdict, c.versions)
        with contextlib.suppress(Exception):
            write_atomic(ctx.evidence / "verdict.json", _verdict_json(c.outcome(verdict)))
    outcome = c.outcome(verdict)
    outcome.recorded = recorded
    log.info("verdict %s for %s %s: %d reason(s); report: %s%s", verdict.decision.value, ctx.service, ctx.version,
             len(verdict.reasons), outcome.report, "" if recorded else " (NOT recorded in the gate database)")
    return outcome


def _manifest_name() -> str:
    from releasegate.report import MANIFEST

    return MANIFEST


def _verdict_json(outcome: Outcome) -> str:
    return json.dumps(redact_data(outcome.as_json()), indent=2)


def _stage_evidence(c: _Conclusion, verdict: Verdict) -> tuple[Staged, str]:
    """Render every file and write each beside its place (nothing visible yet); the manifest's hash."""
    from releasegate.report import MANIFEST, manifest_text, render_report

    ctx = c.ctx
    # every result was redacted where it entered (save_result, gate_fault), and the reasons are made of them
    rendered = render_report(ctx, c.digest, c.everything, verdict, tool_versions=c.versions, defects=c.defects,
                             redacted=True)
    documents = {"verdict.json": _verdict_json(c.outcome(verdict)), **rendered.documents}
    encoded = {name: text.encode("utf-8") for name, text in documents.items()}
    manifest = manifest_text(ctx.evidence, encoded)
    staged = Staged()
    try:
        for name, data in encoded.items():
            staged.add(ctx.evidence / name, data)
        staged.add(ctx.evidence / MANIFEST, manifest)
    except BaseException:
        staged.discard()
        raise
    return staged, hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def _stage_verdict_only(c: _Conclusion, verdict: Verdict) -> tuple[Staged, str]:
    """When the report cannot be written: at least verdict.json, and no manifest (the folder is incomplete)."""
    staged = Staged()
    try:
        staged.add(c.ctx.evidence / "verdict.json", _verdict_json(c.outcome(verdict)))
    except Exception as exc:  # noqa: BLE001 - nothing fits: the database and the caller still have the verdict
        log.error("verdict.json: %s", cause(exc))
        staged.discard()
    return staged, ""


def _record_verdict(uow, ctx: RunContext, verdict: Verdict, versions: dict[str, str], manifest_sha256: str) -> None:
    report = str(ctx.evidence / "report.html") if manifest_sha256 else ""
    uow.verdicts.upsert(ctx.run_id, {**verdict.model_dump(mode="json"), "tool_versions": versions,
                                     "manifest_sha256": manifest_sha256, "report_path": report})
    uow.runs.finish(ctx.run_id, "finished", verdict.decision.value, verdict.decided_at)
    decision = {"decision": verdict.decision.value, "reasons": [r.fingerprint for r in verdict.reasons],
                "waivers": [w.id for w in verdict.waivers]}
    record(uow, "verdict", f"{ctx.service}@{ctx.version}", {**decision, "manifest_sha256": manifest_sha256},
           verdict.decided_at, ctx.run_id, identity=decision)


def _record_quietly(ctx: RunContext, verdict: Verdict, versions: dict[str, str]) -> bool:
    try:
        store.transaction(lambda uow: _record_verdict(uow, ctx, verdict, versions, ""), what="recording the verdict")
        return True
    except Exception as exc:  # noqa: BLE001
        log.error("the INCONCLUSIVE verdict could not be recorded either: %s", cause(exc))
        return False


def conclude_failed(ctx: RunContext, problem: BaseException | str) -> Outcome:
    """An INCONCLUSIVE verdict naming why the run could not be concluded, kept wherever possible (a conclusion
    that crashed, or never ran): the run row never stays `running` when the database can be reached."""
    fault = gate_fault("conclude", problem)
    verdict = decide([fault], [ExpectedStage(fault.stage)], ctx.started)
    outcome = Outcome(ctx.run_id, ctx.service, ctx.version, verdict, str(ctx.evidence / "report.html"),
                      ctx.evidence_dir)
    outcome.recorded = _record_quietly(ctx, verdict, {})
    try:
        write_atomic(ctx.evidence / "verdict.json", _verdict_json(outcome))
    except Exception as exc:  # noqa: BLE001
        log.error("verdict.json: %s", cause(exc))
    return outcome


def active_waivers(service: str, at: datetime) -> dict[str, AppliedWaiver]:
    """Waivers in force at `at`, by fingerprint (an expired or revoked one no longer counts)."""
    rows = store.transaction(lambda uow: uow.waivers.active(service, at), what="reading waivers")
    return {w["fingerprint"]: AppliedWaiver(id=w["id"], fingerprint=w["fingerprint"], reason=w["reason"],
                                            approver=w["approver"], requested_by=w["requested_by"],
                                            expires_on=str(w["expires_on"])) for w in rows}


def _record_defects(ctx: RunContext, results: list[StageResult], seen_at: datetime,
                    waived: frozenset[str]) -> tuple[list[dict], list[DefectChange]]:
    findings = [{**f.model_dump(mode="json"), "stage": r.stage} for r in results for f in r.findings]
    completed = {r.stage for r in results if r.status is not Status.error and not r.evidence_empty}

    def work(uow) -> tuple[list[dict], list[dict]]:
        # observed at the run's start (persistence/defects.py): a late retry of an older run fixes nothing a newer saw
        transitions, defects = uow.defects.record(ctx.service, ctx.run_id, findings, completed, ctx.started, waived)
        # last, in one batch: the audit chain's lock is held only from here to the commit
        stage_of = {d["fingerprint"]: d["stage"] for d in defects}
        record_many(uow, transition_events(ctx.service, transitions, stage_of), seen_at, ctx.run_id,
                    keep=frozenset({"fingerprints"}))
        return defects, transitions

    defects, transitions = store.transaction(work, what="recording defects")
    log_transitions(transitions)
    return defects, _changes_in_run(ctx.run_id, defects, {f["fingerprint"] for f in findings})


def log_transitions(transitions: list[dict], shown: int = 20) -> None:
    """Each defect that moved, up to ``shown`` of them, then a count per move (a large scan's log stays readable)."""
    for change in transitions[:shown]:
        log.info("defect %s: %s -> %s", change["fingerprint"][:12], change.get("from") or "-", change["to"])
    if len(transitions) > shown:
        moves = Counter(f"{c.get('from') or '-'} -> {c['to']}" for c in transitions)
        log.info("defects: %d moved in all (%s); every one is in the report and the audit trail", len(transitions),
                 ", ".join(f"{move}: {n}" for move, n in sorted(moves.items())))


def _changes_in_run(run_id: str, defects: list[dict], seen: set[str]) -> list[DefectChange]:
    """Each defect this run saw (new, recurring, reopened, waived) or fixed."""
    def touched(d: dict) -> bool:
        return d["fingerprint"] in seen or (d["state"] == "fixed" and d.get("changed_run_id") == run_id)

    return [DefectChange(fingerprint=d["fingerprint"], title=d["title"], stage=d.get("stage") or "",
                         severity=d.get("severity") or "", state=d["state"], previous=d.get("previous_state"))
            for d in sorted(defects, key=lambda d: d["fingerprint"]) if touched(d)]


def load_outcome(ctx: RunContext) -> Outcome:
    data = json.loads((ctx.evidence / "verdict.json").read_text(encoding="utf-8"))
    verdict = Verdict(decision=Decision(data["decision"]), reasons=data["reasons"], waivers=data["waivers"],
                      defects=data["defects"], decided_at=datetime.fromisoformat(data["decided_at"]),
                      advisory_data=data.get("advisory_data"))
    return Outcome(ctx.run_id, ctx.service, ctx.version, verdict, data["report"], ctx.evidence_dir)


# --- notify and finish -------------------------------------------------------------------------------

def notify(ctx: RunContext, outcome: Outcome) -> str:
    from releasegate.notify.slack import notify as slack_notify

    policy = policy_of(ctx)
    from releasegate.report import write_manifest

    result = slack_notify(ctx, outcome.verdict, policy.notify.slack, _report_link(policy, ctx, outcome))
    # the payload and the answer are evidence too; a folder without a manifest (torn) stays without one
    manifest_sha256 = write_manifest(ctx.evidence) if (ctx.evidence / _manifest_name()).exists() else ""
    channel = policy.notify.slack.channel if policy.notify.slack else "(none)"

    def work(uow) -> None:
        uow.notifications.upsert(ctx.run_id, channel, result.payload, result.status, result.attempts,
                                 result.response)
        stored = uow.verdicts.get(ctx.run_id)
        if stored is not None and manifest_sha256:
            uow.verdicts.upsert(ctx.run_id, {**stored, "manifest_sha256": manifest_sha256})
        record(uow, "notification", channel, {"status": result.status, "attempts": result.attempts},
               outcome.verdict.decided_at, ctx.run_id)

    store.transaction(work, what="recording the notification")
    outcome.notification = result.status
    return result.status


def notification_status(ctx: RunContext) -> str:
    """How the run's notification went ('' when none was attempted yet)."""
    rows = store.transaction(lambda uow: uow.notifications.for_run(ctx.run_id), what="reading notifications")
    return ", ".join(sorted({r["status"] for r in rows}))


def _report_link(policy: Policy, ctx: RunContext, outcome: Outcome) -> str:
    slack = policy.notify.slack
    if slack and slack.report_url:
        from releasegate.policy import render_report_url  # the renderer `policy check` validated it with

        return render_report_url(slack.report_url, service=ctx.service, version=ctx.version,
                                 run_id=safe_name(ctx.run_id))
    return outcome.report


def finish(ctx: RunContext, env: Environment | dict | None) -> str:
    """Stop the service, keep its logs (redacted) as evidence and drop the workspace copy; always safe to call
    again. Each part runs whatever the one before did; the first fault is raised at the end."""
    outcome = "nothing stopped"
    errors: list[BaseException] = []
    for part in (lambda: teardown(Environment.model_validate(env) if env else None),
                 lambda: publish_logs(ctx), lambda: close_run(ctx)):
        try:
            value = part()
        except Exception as exc:  # noqa: BLE001 - the next part still runs
            log.error("finish: %s", cause(exc))
            errors.append(exc)
        else:
            outcome = value if isinstance(value, str) else outcome
    if errors:
        raise errors[0]
    return outcome


def run_gate(policy_path: str | Path, version: str, evidence_dir: str | Path | None = None,
             progress: Callable[[str], None] = lambda _m: None) -> Outcome:
    """The whole gate in this process, in the DAG's order: the CLI's entry point.

    Raises PolicyError or RunNotStarted when the run could not start; once it has, it returns an Outcome
    whatever failed (the service stopped in any case)."""
    say = lambda message: progress(redact(message))  # noqa: E731
    ctx, fault = _begin(policy_path, version, evidence_dir=evidence_dir)
    known = [fault] if fault else []
    env = None
    try:
        say(f"run {ctx.run_id}: provisioning {ctx.service} {version}")
        env, provisioned = _provision(ctx)
        known += [provisioned] if provisioned else []
        for name in stage_names(policy_of(ctx)):
            say(f"stage {name}")
            result = run_stage(ctx, name, env)
            known.append(result)
            say(f"  {result.status.value}: {result.summary if result.status is not Status.error else result.error}")
    except Exception as exc:  # noqa: BLE001 - a fault between steps: the run still concludes
        log.error("run: %s", cause(exc))
        known.append(save_result(ctx, gate_fault("run", exc)))
    finally:
        try:
            finish(ctx, env)
        except Exception as exc:  # noqa: BLE001 - the verdict notes it; it does not decide on it
            known.append(save_result(ctx, gate_fault("teardown", exc, required=False)))
    outcome = conclude(ctx, known)
    try:
        notify(ctx, outcome)
    except Exception as exc:  # noqa: BLE001 - the verdict stands; the notification's fate is logged
        log.error("notify: %s", cause(exc))
        outcome.notification = f"failed: {cause(exc)}"
    return outcome
