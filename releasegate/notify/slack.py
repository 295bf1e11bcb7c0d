"""The verdict to Slack: the message (slack_message) delivered (slack_api), or written to the evidence when Slack
is not configured; the payload and Slack's answer are kept in the evidence either way.

The verdict message links the report and the Airflow run (links); the reasons and the defect changes follow in
its thread. A re-run of the same run (same run id) that reaches another verdict updates that message in place
(chat.update) and says what changed in the thread; one that reaches the same verdict posts nothing.

Notification is a side effect of the verdict, never part of it: a failed post is logged as a
warning and recorded in the evidence, and the verdict stands. A notification that was not delivered
stays pending in the outbox (the notifications table) and is sent later: by the next run of the same
service once its own message got through, or by `releasegate notify --pending` (slack_outbox).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.models import Verdict
from releasegate.notify.links import gate_run_url
from releasegate.notify.slack_api import (
    DECISION_KEY,
    NOTE_KEY,
    THREAD_KEY,
    TOKEN_ENV,
    NotifyOutcome,
    deliver,
    resolve_target,
)
from releasegate.notify.slack_message import build_message, build_thread, change_note, redact_payload
from releasegate.notify.slack_outbox import previous_message, retry_quietly
from releasegate.policy import Slack

__all__ = ["PAYLOAD_FILE", "RESPONSE_FILE", "build_message", "build_payload", "build_thread", "notify"]

log = logging.getLogger("releasegate")

PAYLOAD_FILE = "slack-payload.json"
RESPONSE_FILE = "slack-response.json"


def notify(ctx: RunContext, verdict: Verdict, slack_cfg: Slack | None, report_link: str) -> NotifyOutcome:
    """Deliver the verdict to Slack, or write the payload when Slack is not configured. Never raises."""
    channel = slack_cfg.channel if slack_cfg else None
    target = resolve_target(slack_cfg) if slack_cfg else None
    previous = previous_message(ctx.run_id, channel) if target is not None and channel else None
    payload = build_payload(ctx, verdict, channel, report_link, previous)
    path = write_json(ctx.evidence / PAYLOAD_FILE, payload)
    if target is None:
        outcome = NotifyOutcome("written", 0, payload, path=path)
        _log_not_configured(slack_cfg, path)
    else:
        outcome = deliver(target, payload, previous)
        outcome.path = path
        if outcome.status == "sent":  # Slack answers again: deliver what this service still owes
            outcome.retried = retry_quietly(target, ctx.service, ctx.run_id)
    write_json(ctx.evidence / RESPONSE_FILE, _response_record(outcome))
    return outcome


def build_payload(ctx: RunContext, verdict: Verdict, channel: str | None, report_link: str,
                  previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the outbox keeps and `slack_api.deliver` sends: the verdict message, the reply in its thread, the
    decision it shows, and (when the run's message showed another decision) the note saying so."""
    payload = {"channel": channel, **build_message(ctx, verdict, report_link, run_link=gate_run_url(ctx.run_id)),
               THREAD_KEY: build_thread(ctx, verdict, report_link), DECISION_KEY: verdict.decision.value}
    shown = (previous or {}).get("shown_decision")
    if shown and shown != verdict.decision.value:
        payload[NOTE_KEY] = change_note(ctx, shown, verdict)
    return payload


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _log_not_configured(slack_cfg: Slack | None, path: Path) -> None:
    if slack_cfg is None:
        log.info("Slack not configured (no notify.slack in the policy): wrote the message payload to %s",
                 path)
        return
    log.info("Slack not configured (no %s or connection %r): wrote the message payload to %s",
             TOKEN_ENV, slack_cfg.connection_id, path)


def _response_record(outcome: NotifyOutcome) -> dict[str, Any]:
    return redact_payload({"status": outcome.status, "attempts": outcome.attempts, "action": outcome.action,
                           "response": outcome.response, "error": outcome.error, "thread": outcome.thread})
