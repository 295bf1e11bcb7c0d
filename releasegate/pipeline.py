"""The gate run as a sequence of steps. The DAG calls each step from one task; the CLI calls them in order.

Each step reads what it needs from the run's evidence folder and the gate database, so a task that runs
again (retry, clear) finds the same inputs and writes the same rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from releasegate import store
from releasegate.audit import record
from releasegate.context import RunContext, close_run, open_run, safe_name
from releasegate.environment import Environment, provision, teardown
from releasegate.errors import ProvisionError
from releasegate.models import AppliedWaiver, Decision, DefectChange, StageResult, Status, Verdict
from releasegate.policy import Policy, load_policy
from releasegate.stages.base import guarded, now
from releasegate.verdict import ExpectedStage, decide

log = logging.getLogger("releasegate")
PROVISION = "provision"


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
    stages = [ExpectedStage(PROVISION)] if policy.environment else []
    stages += [ExpectedStage(f"pytest[{s.name}]", s.required) for s in policy.suites]
    if policy.load:
        stages.append(ExpectedStage("locust", policy.load.required))
    if policy.chaos:
        stages.append(ExpectedStage("chaos", policy.chaos.required))
    if policy.scans.semgrep:
        stages.append(ExpectedStage("semgrep", policy.scans.semgrep.required))
    if policy.scans.pip_audit:
        stages.append(ExpectedStage("pip-audit", policy.scans.pip_audit.required))
    if policy.alerts:
        stages.append(ExpectedStage("alerts", policy.alerts.required))
    return stages


def begin(policy_path: str | Path, version: str, *, run_id: str | None = None, evidence_dir: str | Path | None = None,
          airflow_run_id: str | None = None) -> RunContext:
    """Validate the policy, open the run (evidence folder, workspace) and record it."""
    policy = load_policy(policy_path)
    ctx = open_run(policy, version, run_id=run_id, evidence_dir=evidence_dir)
    (ctx.evidence / "policy.yaml").write_bytes(policy.path.read_bytes())
    with store.unit_of_work() as uow:
        uow.runs.upsert({"run_id": ctx.run_id, "service": ctx.service, "version": version,
                         "policy_path": ctx.policy_path, "policy_digest": policy.digest,
                         "evidence_dir": ctx.evidence_dir, "started_at": ctx.started, "status": "running",
                         "airflow_dag_run_id": airflow_run_id})
        record(uow, "run.started", f"{ctx.service}@{version}", {"policy_digest": policy.digest,
               "evidence_dir": ctx.evidence_dir, "airflow_dag_run_id": airflow_run_id}, ctx.started, ctx.run_id)
        uow.commit()
    log.info("run %s: %s %s, policy %s (%s); evidence: %s", ctx.run_id, ctx.service, version, ctx.policy_path,
             policy.digest[:19], ctx.evidence_dir)
    return ctx


def policy_of(ctx: RunContext) -> Policy:
    return load_policy(ctx.policy_path)


def provision_service(ctx: RunContext) -> Environment | None:
    """Start the service; its outcome is a stage result like any other (an error makes the verdict INCONCLUSIVE)."""
    policy = policy_of(ctx)
    if policy.environment is None:
        return None
    holder: dict[str, Environment] = {}

    def body(started: datetime) -> StageResult:
        try:
            holder["env"] = provision(policy, ctx)
        except ProvisionError as exc:
            return StageResult(stage=PROVISION, kind="environment", status=Status.error, started=started,
                               finished=now(), summary="provision: the service did not start", error=str(exc))
        env = holder["env"]
        return StageResult(stage=PROVISION, kind="environment", status=Status.passed, started=started,
                           finished=now(), summary=f"provision: healthy at {env.base_url} (pid {env.pid})")

    save_result(ctx, guarded(PROVISION, "environment", True, body))
    return holder.get("env")


def stage_names(policy: Policy) -> list[str]:
    return [s.name for s in expected_stages(policy) if s.name != PROVISION]


def run_stage(ctx: RunContext, name: str, env: Environment | dict | None) -> StageResult:
    """Run one stage by its name, save its result as evidence and in the database."""
    policy = policy_of(ctx)
    environment = Environment.model_validate(env) if env else None
    try:
        if environment is not None:
            environment.require_local(name)
    except ProvisionError as exc:
        result = StageResult(stage=name, kind="environment", status=Status.error, started=now(), finished=now(),
                             summary=f"{name}: could not reach the service", error=str(exc))
    else:
        result = _runner(policy, name)(policy, ctx, environment)
    save_result(ctx, result)
    return result


def _runner(policy: Policy, name: str) -> Callable[[Policy, RunContext, Environment | None], StageResult]:
    import importlib

    if name.startswith("pytest["):
        from releasegate.stages import pytest_suites

        suite = next(s for s in policy.suites if f"pytest[{s.name}]" == name)
        return lambda p, c, e: pytest_suites.run(p, c, suite, e)
    modules = {"locust": "locust_load", "chaos": "chaos", "semgrep": "semgrep", "pip-audit": "pip_audit",
               "alerts": "alerts"}
    if name not in modules:
        raise KeyError(f"unknown stage {name!r}; the policy plans: {', '.join(stage_names(policy))}")
    module = importlib.import_module(f"releasegate.stages.{modules[name]}")
    if name in ("locust", "chaos"):  # these need the running service
        return module.run
    return lambda p, c, e: module.run(p, c)


def save_result(ctx: RunContext, result: StageResult) -> None:
    folder = ctx.evidence / "stages"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{safe_name(result.stage)}.json").write_text(result.model_dump_json(indent=2), encoding="utf-8")
    with store.unit_of_work() as uow:
        uow.stages.upsert(ctx.run_id, result.model_dump(mode="json"))
        record(uow, "stage.result", result.stage, {"status": result.status.value, "error": result.error,
               "evidence_empty": result.evidence_empty, "findings": sorted(f.fingerprint for f in result.findings)},
               result.finished, ctx.run_id)
        uow.commit()


def load_results(ctx: RunContext) -> list[StageResult]:
    folder = ctx.evidence / "stages"
    results = [StageResult.model_validate_json(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")]
    return sorted(results, key=lambda r: (r.started, r.stage))  # the order they ran in


def conclude(ctx: RunContext) -> Outcome:
    """Decide, record defects, compile the report and store the verdict."""
    from releasegate.report import compile_report
    from releasegate.tools import tool_versions

    policy = policy_of(ctx)
    results = load_results(ctx)
    decided_at = max((r.finished for r in results), default=ctx.started)
    waivers = active_waivers(ctx.service, decided_at)
    verdict = decide(results, expected_stages(policy), decided_at, policy.digest, waivers)
    defects, changes = _record_defects(ctx, results, decided_at, frozenset(waivers))
    verdict = verdict.model_copy(update={"defects": changes})
    versions = tool_versions()
    outcome = Outcome(ctx.run_id, ctx.service, ctx.version, verdict, str(ctx.evidence / "report.html"), ctx.evidence_dir)
    (ctx.evidence / "verdict.json").write_text(json.dumps(outcome.as_json(), indent=2), encoding="utf-8")
    paths = compile_report(ctx, policy.digest, results, verdict, tool_versions=versions, defects=defects)
    with store.unit_of_work() as uow:
        uow.verdicts.upsert(ctx.run_id, {**verdict.model_dump(mode="json"), "tool_versions": versions,
                                         "manifest_sha256": paths.manifest_sha256, "report_path": str(paths.html)})
        uow.runs.finish(ctx.run_id, "finished", verdict.decision.value, decided_at)
        decision = {"decision": verdict.decision.value, "reasons": [r.fingerprint for r in verdict.reasons],
                    "waivers": [w.id for w in verdict.waivers]}
        record(uow, "verdict", f"{ctx.service}@{ctx.version}", {**decision, "manifest_sha256": paths.manifest_sha256},
               decided_at, ctx.run_id, identity=decision)
        uow.commit()
    log.info("verdict %s for %s %s: %d reason(s); report: %s", verdict.decision.value, ctx.service, ctx.version,
             len(verdict.reasons), paths.html)
    return outcome


def active_waivers(service: str, at: datetime) -> dict[str, AppliedWaiver]:
    """Waivers in force at `at`, by fingerprint (an expired or revoked one no longer counts)."""
    with store.unit_of_work() as uow:
        rows = uow.waivers.active(service, at)
    return {w["fingerprint"]: AppliedWaiver(id=w["id"], fingerprint=w["fingerprint"], reason=w["reason"],
                                            approver=w["approver"], requested_by=w["requested_by"],
                                            expires_on=str(w["expires_on"])) for w in rows}


def _record_defects(ctx: RunContext, results: list[StageResult], seen_at: datetime,
                    waived: frozenset[str]) -> tuple[list[dict], list[DefectChange]]:
    findings = [{**f.model_dump(mode="json"), "stage": r.stage} for r in results for f in r.findings]
    completed = {r.stage for r in results if r.status is not Status.error and not r.evidence_empty}
    with store.unit_of_work() as uow:
        # observed at the run's start (persistence/defects.py): a late retry of an older run fixes nothing a newer saw
        transitions = uow.defects.observe(ctx.service, ctx.run_id, findings, completed, ctx.started, waived=waived)
        for change in transitions:
            record(uow, "defect.transition", change["fingerprint"], {"from": change.get("from"), "to": change["to"]},
                   seen_at, ctx.run_id)
        defects = uow.defects.for_service(ctx.service)
        uow.commit()
    for change in transitions:
        log.info("defect %s: %s -> %s", change["fingerprint"][:12], change.get("from") or "-", change["to"])
    return defects, _changes_in_run(ctx.run_id, defects, {f["fingerprint"] for f in findings})


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


def notify(ctx: RunContext, outcome: Outcome) -> str:
    from releasegate.notify.slack import notify as slack_notify

    policy = policy_of(ctx)
    from releasegate.report import write_manifest

    result = slack_notify(ctx, outcome.verdict, policy.notify.slack, _report_link(policy, ctx, outcome))
    manifest_sha256 = write_manifest(ctx.evidence)  # the payload and the answer are evidence too
    with store.unit_of_work() as uow:
        channel = policy.notify.slack.channel if policy.notify.slack else "(none)"
        uow.notifications.upsert(ctx.run_id, channel, result.payload, result.status, result.attempts,
                                 result.response)
        stored = uow.verdicts.get(ctx.run_id)
        if stored is not None:
            uow.verdicts.upsert(ctx.run_id, {**stored, "manifest_sha256": manifest_sha256})
        record(uow, "notification", channel, {"status": result.status, "attempts": result.attempts},
               outcome.verdict.decided_at, ctx.run_id)
        uow.commit()
    outcome.notification = result.status
    return result.status


def notification_status(ctx: RunContext) -> str:
    """How the run's notification went ('' when none was attempted yet)."""
    with store.unit_of_work() as uow:
        rows = uow.notifications.for_run(ctx.run_id)
    return ", ".join(sorted({r["status"] for r in rows}))


def _report_link(policy: Policy, ctx: RunContext, outcome: Outcome) -> str:
    slack = policy.notify.slack
    if slack and slack.report_url:
        from releasegate.policy import render_report_url  # the renderer `policy check` validated it with

        return render_report_url(slack.report_url, service=ctx.service, version=ctx.version,
                                 run_id=safe_name(ctx.run_id))
    return outcome.report


def finish(ctx: RunContext, env: Environment | dict | None) -> str:
    """Stop the service and drop the workspace copy; always safe to call again."""
    outcome = teardown(Environment.model_validate(env) if env else None)
    close_run(ctx)
    return outcome


def run_gate(policy_path: str | Path, version: str, evidence_dir: str | Path | None = None,
             progress: Callable[[str], None] = lambda _m: None) -> Outcome:
    """The whole gate in this process, in the DAG's order: the CLI's entry point."""
    ctx = begin(policy_path, version, evidence_dir=evidence_dir)
    env = None
    try:
        progress(f"run {ctx.run_id}: provisioning {ctx.service} {version}")
        env = provision_service(ctx)
        for name in stage_names(policy_of(ctx)):
            progress(f"stage {name}")
            result = run_stage(ctx, name, env)
            progress(f"  {result.status.value}: {result.summary if result.status is not Status.error else result.error}")
    finally:
        finish(ctx, env)
    outcome = conclude(ctx)
    notify(ctx, outcome)
    return outcome
