"""A person's decision on a run the gate could not pass: Airflow's approval step asks, this module records.

Two kinds of run can go to an approval step (the DAG's ``ask_approval``, Airflow's human-in-the-loop operator):
an INCONCLUSIVE one, whose missing evidence an approver may accept for this run; and a NO_GO one whose blockers
all have pending waiver requests (``releasegate waivers request``), which an approval grants (each waiver approved
by that Airflow user, who must be neither its requester nor the person who triggered the run).
The answer is kept in the audit trail (``run.approved``, ``run.approval_refused``, ``run.approval_rejected``:
hash-chained, naming the Airflow user), and an approval is an input of the verdict like a waiver: the run is
concluded again, and the accepted gaps stop deciding while everything else (a blocking finding, a gap it did
not name) still decides. Nothing is approved by silence: a timeout is a rejection.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.models import Approval, Decision, Severity
from releasegate.domain.verdict import NEVER_ACCEPTED, gap_key
from releasegate.domain.waiver_rules import canonical_identity
from releasegate.records import store
from releasegate.records.audit import record
from releasegate.redact import redact

log = logging.getLogger("releasegate")
APPROVE, REJECT = "Approve", "Reject"
APPROVED = "run.approved"
APPROVED_WAIVERS = "run.approved_waivers"  # the waivers it granted are the verdict's input (no Approval)


def needs_approval(outcome: dict[str, Any], pending: list[dict[str, Any]] | None = None) -> str | None:
    """What a person could decide on this concluded run: ``"inconclusive"`` (missing evidence to accept),
    ``"waivers"`` (a NO_GO whose every blocker has a pending waiver request in ``pending``), or None."""
    if outcome.get("decision") == Decision.INCONCLUSIVE.value and gaps(outcome):
        return "inconclusive"
    if outcome.get("decision") == Decision.NO_GO.value and requests_for(outcome, pending or []):
        return "waivers"
    return None


def blockers(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """Every reason that decides a NO_GO: all but the notes (missing evidence that does not decide), whatever the
    severity (a policy may block on low findings)."""
    return [r for r in outcome.get("reasons", []) if not (_is_gap(r) and r.get("severity") == Severity.low.value)]


def requests_for(outcome: dict[str, Any], pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pending waiver requests that cover every blocker of a NO_GO (one per blocker), or [] when any blocker
    has none (an approval can only grant what was asked for)."""
    by_fingerprint = {r["fingerprint"]: r for r in pending}
    wanted = blockers(outcome)
    if not wanted or any(r.get("fingerprint") not in by_fingerprint for r in wanted):
        return []
    return list({by_fingerprint[r["fingerprint"]]["id"]: by_fingerprint[r["fingerprint"]] for r in wanted}.values())


def pending_requests(service: str) -> list[dict[str, Any]]:
    with store.unit_of_work() as uow:
        return uow.waiver_requests.pending(service)


def gaps(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """The reasons an approval can accept: the missing evidence that decides (a gate fault included), never a
    policy that checks nothing."""
    return [r for r in outcome.get("reasons", []) if _is_gap(r) and r.get("severity") != Severity.low.value
            and r.get("fingerprint") not in NEVER_ACCEPTED]


def _is_gap(reason: dict[str, Any]) -> bool:
    return str(reason.get("message", "")).startswith("missing_evidence")


def request_text(outcome: dict[str, Any], requested_by: str | None, shown: int = 10,
                 pending: list[dict[str, Any]] | None = None) -> tuple[str, str]:
    """The approval step's subject and body (Markdown, as Airflow's UI shows it)."""
    asked = requests_for(outcome, pending or []) if outcome.get("decision") == Decision.NO_GO.value else []
    if asked:
        subject = f"{outcome['service']} {outcome['version']}: NO_GO — grant the {len(asked)} waiver(s) asked for?"
        lines = ["Every blocker of this release has a pending waiver request. **Approve** grants them all, approved "
                 "by you (you may not be a requester, nor the person who triggered the run); **Reject** or no "
                 "answer keeps the run NO_GO.", ""]
        lines += [f"- #{r['id']} {_code(str(r['fingerprint'])[:12])} until {r['expires_on']}, asked by "
                  f"{_code(r['requested_by'])}: {_code(r['reason'])}" for r in asked[:shown]]
        if len(asked) > shown:
            lines.append(f"- and {len(asked) - shown} more (`releasegate waivers requests --service "
                         f"{outcome['service']}`)")
        lines += ["", f"Triggered by: {_code(requested_by or 'unknown')}. Report: {_code(outcome.get('report', ''))}"]
        return redact(subject), "\n".join(lines)
    subject = f"{outcome['service']} {outcome['version']}: INCONCLUSIVE — accept the missing evidence?"
    lines = ["The gate could not decide this release: the evidence below is missing. **Approve** accepts it for "
             "this run only (it stops deciding; every finding still decides); **Reject** or no answer keeps the "
             "run INCONCLUSIVE.", ""]
    found = gaps(outcome)
    lines += [f"- {_code(r['stage'])}: {_code(r['message'])}" for r in found[:shown]]
    if len(found) > shown:
        lines.append(f"- and {len(found) - shown} more (see the report)")
    lines += ["", f"Triggered by: {_code(requested_by or 'unknown')} (who may not approve it). Report: "
                  f"{_code(outcome.get('report', ''))}"]
    return redact(subject), "\n".join(lines)


def _code(text: Any, limit: int = 300) -> str:
    """A value shown as itself in Airflow's Markdown: one line, in a code span (no link, image or emphasis a
    tool's output or a requester could slip in)."""
    text = " ".join(redact(str(text)).replace("`", "'").split())  # each value redacted whole, then quoted
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return f"`{text}`" if text else "` `"


def settle(ctx: RunContext, outcome: dict[str, Any], response: dict[str, Any] | None,
           requested_by: str | None) -> tuple[str, str]:
    """Record the approval step's answer; (what happened, why) — ``approved`` (the run must be concluded again),
    ``rejected``, ``timed_out`` or ``refused`` (the approver triggered the run, or the answer names nobody)."""
    now = datetime.now(UTC)
    chosen = (response or {}).get("chosen_options") or []
    user = (response or {}).get("responded_by_user") or {}
    approver = str(user.get("name") or user.get("id") or "")
    asked = requests_for(outcome, pending_requests(ctx.service)) if outcome.get("decision") == "NO_GO" else []
    accepted = ([r["fingerprint"] for r in asked] if asked else
                [gap_key(r["stage"], r["message"]) for r in gaps(outcome)])
    base = {"decision_before": outcome.get("decision"), "requested_by": requested_by or "", "accepted": accepted}
    if chosen != [APPROVE]:
        what = "timed_out" if response is None or not approver else "rejected"
        why = ("no answer before the approval step's deadline (a timeout rejects)" if what == "timed_out"
               else f"{approver} rejected it")
        _audit(ctx, "run.approval_rejected", base | {"outcome": what, "by": approver}, now, approver or None)
        return what, why
    refusal = _refusal(approver, requested_by) or (_grant_refusal(ctx, asked, approver, now) if asked else None)
    if refusal:
        _audit(ctx, "run.approval_refused", base | {"by": approver, "why": refusal}, now, approver or None)
        return "refused", refusal
    if asked:
        granted = _grant(ctx, asked, approver, now, base)
        return "approved", f"{approver} granted waiver(s) #{', #'.join(str(w['id']) for w in granted)}"
    approval = Approval(approver=approver, requested_by=requested_by or "", approved_at=now, service=ctx.service,
                        version=ctx.version, accepted=accepted)
    _audit(ctx, APPROVED, base | approval.model_dump(mode="json"), now, approver)
    return "approved", f"{approver} accepted {len(accepted)} missing piece(s) of evidence"


def _refusal(approver: str, requested_by: str | None) -> str | None:
    """Why this approval cannot stand, if it cannot: no approver, a run nobody is known to have triggered (so
    self-approval could not be ruled out), or the approver is the person who triggered it (in any spelling)."""
    if not approver:
        return "the approval names no Airflow user"
    if not requested_by:
        return ("nobody is recorded as having triggered this run, so approving it yourself could not be ruled out: "
                "trigger it as a named Airflow user (the UI, the REST API or `releasegate trigger`)")
    try:
        same = canonical_identity(approver, "approver") == canonical_identity(requested_by, "requester")
    except ValueError as exc:
        return f"cannot compare the approver with the requester: {exc}"
    if same:
        return (f"{approver} triggered this run and cannot approve it: another Airflow user with access to the "
                "release_gate DAG must answer")
    return None


def _grant_refusal(ctx: RunContext, asked: list[dict[str, Any]], approver: str, now: datetime) -> str | None:
    """Why these waivers cannot be granted by ``approver`` now (the rules a CLI grant obeys), if they cannot."""
    from releasegate.domain.waiver_rules import check_grant
    from releasegate.records.admin import waiver_max_days

    max_days = waiver_max_days(ctx.service, ctx.policy_path)
    for request in asked:
        try:
            check_grant(request["reason"], request["requested_by"], approver, request["expires_on"], now, max_days)
        except ValueError as exc:
            return f"waiver request #{request['id']}: {exc}"
    return None


def _grant(ctx: RunContext, asked: list[dict[str, Any]], approver: str, now: datetime,
           base: dict[str, Any]) -> list[dict[str, Any]]:
    """Every request granted by ``approver``, and the approval recorded, in one transaction."""
    who = canonical_identity(approver, "approver")

    def work(uow) -> list[dict[str, Any]]:
        granted = [uow.waiver_requests.grant(request, who, now) for request in asked]
        record(uow, APPROVED_WAIVERS, f"{ctx.service}:{ctx.version}",
               base | {"approver": who, "waivers": [w["id"] for w in granted]}, now, ctx.run_id, actor=who)
        return granted

    granted: list[dict[str, Any]] = store.transaction(work, what="granting the requested waivers")
    log.info("run.approved: %s granted %d waiver(s) for %s %s", who, len(granted), ctx.service, ctx.version)
    return granted


def _audit(ctx: RunContext, kind: str, payload: dict[str, Any], at: datetime, actor: str | None) -> None:
    store.transaction(lambda uow: record(uow, kind, f"{ctx.service}:{ctx.version}", payload, at, ctx.run_id,
                                         actor=actor), what=f"recording {kind}")
    log.info("%s for %s %s: %s", kind, ctx.service, ctx.version, {k: v for k, v in payload.items() if k != "accepted"})


def run_approval(ctx: RunContext) -> Approval | None:
    """The run's approval (its last ``run.approved`` event for this service and version), if anyone gave one."""
    with store.unit_of_work() as uow:
        events = [e for e in uow.audit.events(run_id=ctx.run_id, kind=APPROVED)
                  if e["payload"].get("service") == ctx.service and e["payload"].get("version") == ctx.version]
    if not events:
        return None
    payload = events[-1]["payload"]
    return Approval(approver=payload["approver"], requested_by=payload.get("requested_by", ""),
                    approved_at=datetime.fromisoformat(payload["approved_at"]), service=ctx.service,
                    version=ctx.version, accepted=payload.get("accepted", []))
