"""Telling people: the run's Slack message, kept as evidence and in the gate database with how it went."""

from __future__ import annotations

from releasegate.context import RunContext, safe_name
from releasegate.pipeline.conclusion import attest_evidence, manifest_name
from releasegate.pipeline.outcome import Outcome
from releasegate.pipeline.results import policy_of
from releasegate.policy import Policy
from releasegate.records import store
from releasegate.records.audit import record


def notify(ctx: RunContext, outcome: Outcome) -> str:
    from releasegate.notify.slack import notify as slack_notify

    policy = policy_of(ctx)
    from releasegate.report import write_manifest

    result = slack_notify(ctx, outcome.verdict, policy.notify.slack, _report_link(policy, ctx, outcome))
    # the payload and the answer are evidence too; a folder without a manifest (torn) stays without one
    manifest_sha256 = write_manifest(ctx.evidence) if (ctx.evidence / manifest_name()).exists() else ""
    if manifest_sha256:  # the manifest changed: the statement signs it again
        attest_evidence(ctx, outcome.verdict.decision.value, policy.digest, outcome.verdict.decided_at)
    channel = policy.notify.slack.channel if policy.notify.slack else "(none)"

    def work(uow) -> None:
        uow.notifications.upsert(ctx.run_id, channel, result.payload, result.status, result.attempts,
                                 result.response, result.message)
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
    from releasegate.notify.links import gate_report_url  # in Airflow: the report the plugin serves

    return gate_report_url(ctx.run_id) or outcome.report
