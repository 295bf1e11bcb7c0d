"""The DAG's approval step (docs/decisions/0018): an INCONCLUSIVE run, or a NO_GO whose blockers all have pending
waiver requests, when the trigger asks for it (``approval_timeout_minutes`` > 0), waits in Airflow's
human-in-the-loop step ``ask_approval`` for an Airflow user other than the one who triggered it;
``settle_approval`` records the answer and concludes the run again.

Everything here runs inside a task; the DAG file imports nothing of it when it is parsed.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

log = logging.getLogger("releasegate")
MAX_MINUTES = 7 * 24 * 60


def wanted(outcome: dict, params: dict) -> bool:
    """Whether this run goes to the approval step: asked for by the trigger, and INCONCLUSIVE with missing
    evidence a person could accept, or NO_GO with a pending waiver request for every blocker."""
    from releasegate.pipeline.approval import needs_approval, pending_requests

    minutes = float(params.get("approval_timeout_minutes") or 0)
    if minutes <= 0:
        log.info("approval step: not asked for (approval_timeout_minutes is 0)")
        return False
    kind = needs_approval(outcome, pending_requests(str(outcome.get("service"))))
    if kind is None:
        log.info("approval step: not needed (%s%s)", outcome.get("decision"),
                 ": a blocker has no pending waiver request" if outcome.get("decision") == "NO_GO" else "")
        return False
    log.info("approval step (%s): %s %s is %s; waiting up to %g minute(s) for an Airflow user's answer", kind,
             outcome.get("service"), outcome.get("version"), outcome.get("decision"), minutes)
    return True


def request(outcome: dict, params: dict, dag_run: Any) -> tuple[str, str, timedelta]:
    """The approval step's subject, body and response timeout for this run."""
    from releasegate.pipeline.approval import pending_requests, request_text

    subject, body = request_text(outcome, getattr(dag_run, "triggering_user_name", None),
                                 pending=pending_requests(str(outcome.get("service"))))
    minutes = min(max(float(params.get("approval_timeout_minutes") or 0), 0.05), MAX_MINUTES)
    return subject, body, timedelta(minutes=minutes)


def settle(ctx: dict, outcome: dict, response: dict | None, dag_run: Any) -> dict:
    """Record the answer; after an approval, conclude the run again (the report, verdict.json and the gate
    database then show it) and notify anew. Returns the run's outcome as it stands."""
    from releasegate import pipeline
    from releasegate.context import RunContext
    from releasegate.pipeline.approval import settle as record_answer

    context = RunContext(**ctx)
    requested_by = getattr(dag_run, "triggering_user_name", None)
    what, why = record_answer(context, outcome, response, requested_by)
    log.info("approval step: %s — %s", what, why)
    if what != "approved":
        return outcome | {"approval": {"outcome": what, "why": why}}
    concluded = pipeline.conclude(context)
    try:
        concluded.notification = pipeline.notify(context, concluded)
    except Exception as exc:  # noqa: BLE001 - the verdict stands; the notification's fate is logged
        log.error("notify after the approval: %s", pipeline.cause(exc))
    return concluded.as_json()
