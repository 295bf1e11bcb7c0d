"""Concluding a run: decide, record defects, then keep the verdict: the database first, then the evidence files
(each written whole), the manifest last, so a folder whose writing stopped half way never verifies. Any fault
here makes the verdict INCONCLUSIVE naming it; nothing raises for a fault of the database or the disk."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from releasegate.atomic import Staged, write_atomic
from releasegate.context import RunContext
from releasegate.domain.models import AppliedWaiver, Approval, DefectChange, StageResult, Verdict
from releasegate.domain.verdict import ExpectedStage, decide
from releasegate.pipeline.approval import run_approval
from releasegate.pipeline.defects import active_waivers, record_defects
from releasegate.pipeline.faults import GATE_KIND, attempt, cause, gate_fault
from releasegate.pipeline.outcome import Outcome, verdict_json
from releasegate.pipeline.results import expected_stages, merge_results, policy_of, read_results
from releasegate.policy import Policy
from releasegate.records import store
from releasegate.records.audit import record

log = logging.getLogger("releasegate")



def conclude(ctx: RunContext, known: Iterable[StageResult] = ()) -> Outcome:
    """Decide, record defects, then keep the verdict: the database first, then the evidence files, the manifest last.

    `known`: results this process holds (the CLI's), preferred to the saved ones when newer. A fault in any step
    here makes the verdict INCONCLUSIVE naming it; nothing raises for a fault of the database or the disk. When
    even the database is gone the outcome says so (`recorded` False) and the evidence holds it. Safe to run again.
    """
    from releasegate.tools import tool_versions

    faults: list[StageResult] = []
    policy = attempt(faults, "conclude", lambda: policy_of(ctx))
    saved, problems = attempt(faults, "conclude", lambda: read_results(ctx)) or ([], [])
    faults += [gate_fault("results", f"a saved stage result {problem}") for problem in problems[:1]]
    results = merge_results(saved, known)
    expected = expected_stages(policy) if isinstance(policy, Policy) else []
    digest = policy.digest if isinstance(policy, Policy) else ""
    decided_at = max((r.finished for r in results if r.kind != GATE_KIND), default=ctx.started)
    waivers = attempt(faults, "waivers", lambda: active_waivers(ctx.service, decided_at)) or {}
    recorded = attempt(faults, "defects", lambda: record_defects(ctx, results, decided_at, frozenset(waivers)))
    defects, changes = recorded if isinstance(recorded, tuple) else ([], [])
    versions = attempt(faults, "tool_versions", tool_versions) or {}
    approval = attempt(faults, "approval", lambda: run_approval(ctx))
    return _keep(_Conclusion(ctx, digest, results, faults, expected, decided_at, waivers, defects, changes, versions,
                             approval))


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
    approval: Approval | None = None  # missing evidence a person accepted in the run's approval step

    @property
    def everything(self) -> list[StageResult]:
        return [*self.results, *self.faults]

    def verdict(self) -> Verdict:
        everything = self.everything
        gate_steps = [ExpectedStage(r.stage, r.required) for r in everything if r.kind == GATE_KIND]
        verdict = decide(everything, [*self.expected, *gate_steps], self.decided_at, self.digest, self.waivers,
                         self.approval)
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
        (ctx.evidence / manifest_name()).unlink(missing_ok=True)  # a folder torn from here on has no manifest
        staged.commit()
    except Exception as exc:  # noqa: BLE001 - the files did not all appear: the recorded verdict must not stand
        verdict = c.fail("report", exc)
        if recorded:
            recorded = _record_quietly(ctx, verdict, c.versions)
        with contextlib.suppress(Exception):
            write_atomic(ctx.evidence / "verdict.json", verdict_json(c.outcome(verdict)))
    if (ctx.evidence / manifest_name()).exists():
        attest_evidence(ctx, verdict.decision.value, c.digest, verdict.decided_at)
    outcome = c.outcome(verdict)
    outcome.recorded = recorded
    log.info("verdict %s for %s %s: %d reason(s); report: %s%s", verdict.decision.value, ctx.service, ctx.version,
             len(verdict.reasons), outcome.report, "" if recorded else " (NOT recorded in the gate database)")
    return outcome


def manifest_name() -> str:
    from releasegate.report import MANIFEST

    return MANIFEST


def attest_evidence(ctx: RunContext, decision: str, policy_digest: str, decided_at: datetime) -> None:
    """Sign the folder as its manifest now lists it (docs/decisions/0016); a key that is set but unusable is logged
    as an error and leaves no attestation: the statement is an export, the verdict stands on its evidence."""
    from releasegate.exports.attestation import ATTESTATION, Attested, attest

    try:
        attest(ctx.evidence, Attested(ctx.service, ctx.version, ctx.run_id, decision, policy_digest, decided_at))
    except Exception as exc:  # noqa: BLE001 - e.g. a missing key file: said, and no stale statement is left
        with contextlib.suppress(OSError):
            (ctx.evidence / ATTESTATION).unlink(missing_ok=True)
        log.error("attestation: not written: %s", cause(exc))


def _stage_evidence(c: _Conclusion, verdict: Verdict) -> tuple[Staged, str]:
    """Render every file and write each beside its place (nothing visible yet); the manifest's hash."""
    from releasegate.report import MANIFEST, manifest_text, render_report

    ctx = c.ctx
    # every result was redacted where it entered (save_result, gate_fault), and the reasons are made of them
    rendered = render_report(ctx, c.digest, c.everything, verdict, tool_versions=c.versions, defects=c.defects,
                             redacted=True)
    documents = {"verdict.json": verdict_json(c.outcome(verdict)), **rendered.documents}
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
        staged.add(c.ctx.evidence / "verdict.json", verdict_json(c.outcome(verdict)))
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
        write_atomic(ctx.evidence / "verdict.json", verdict_json(outcome))
    except Exception as exc:  # noqa: BLE001
        log.error("verdict.json: %s", cause(exc))
    return outcome
