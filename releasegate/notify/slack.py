"""The verdict as a Slack message: Block Kit payload, token resolution, a post that never raises.

Notification is a side effect of the verdict, never part of it: a failed post is logged as a
warning and recorded in the evidence, and the verdict stands. A notification that was not delivered
stays pending in the outbox (the notifications table) and is sent later: by the next run of the same
service once its own message got through, or by `releasegate notify --pending`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from releasegate.context import RunContext
from releasegate.errors import ReleaseGateError
from releasegate.models import Decision, Reason, Verdict
from releasegate.policy import Slack
from releasegate.redact import redact
from releasegate.report import utc

log = logging.getLogger("releasegate")

TOKEN_ENV = "RELEASEGATE_SLACK_TOKEN"
BASE_URL_ENV = "RELEASEGATE_SLACK_BASE_URL"
DEFAULT_CONNECTION = "slack_api_default"
PAYLOAD_FILE = "slack-payload.json"
RESPONSE_FILE = "slack-response.json"
MAX_RETRIES = 3         # per handler; slack_sdk counts retries of one call across all handlers
RETRY_BACKOFF_S = 0.5   # 5xx and connection errors: 0.5 s, 1 s, 2 s (429 waits for Retry-After)
TIMEOUT_S = 15
RETRY_LEASE = timedelta(minutes=10)   # how long a retry in flight keeps others off its notification

EMOJI = {Decision.GO: ":white_check_mark:", Decision.NO_GO: ":no_entry:", Decision.INCONCLUSIVE: ":warning:"}
TITLE = {Decision.GO: "GO", Decision.NO_GO: "NO-GO",
         Decision.INCONCLUSIVE: "INCONCLUSIVE — the gate could not decide"}
ADVICE = {
    Decision.GO: "Every required stage produced evidence and nothing blocks.",
    Decision.NO_GO: "The evidence is complete and something blocks: fix the service.",
    Decision.INCONCLUSIVE: "Fix the gate's inputs (a stage errored or produced no evidence), "
                           "not necessarily the service.",
}


@dataclass
class NotifyOutcome:
    status: str                      # "sent" | "written" | "failed"
    attempts: int
    payload: dict[str, Any]
    response: dict[str, Any] | None = None
    path: Path | None = None         # the payload file in the evidence folder
    error: str | None = None
    retried: list[dict[str, Any]] = field(default_factory=list)  # earlier notifications sent again


@dataclass(frozen=True)
class SlackTarget:
    token: str = field(repr=False)
    base_url: str | None
    source: str                      # where the token came from, for the log (never the token)


# --- the message -------------------------------------------------------------------------------------

def build_message(ctx: RunContext, verdict: Verdict, report_link: str, *,
                  max_reasons: int = 5) -> dict[str, Any]:
    """Block Kit message with a plain-text fallback; every string redacted."""
    decision = verdict.decision
    reasons = sorted(verdict.reasons, key=lambda r: -r.severity.rank)
    blocks = [_header(ctx, decision, len(verdict.waivers)), _summary(ctx, decision, len(reasons))]
    if reasons:
        blocks.append(_reasons_block(reasons, max_reasons))
    if verdict.defects:
        blocks.append(_defects_block(verdict))
    if verdict.waivers:
        blocks.append(_waivers_block(verdict))
    blocks += [_link_block(report_link), _context(ctx, verdict)]
    return redact_payload({"text": fallback_text(ctx, verdict, report_link), "blocks": blocks})


def fallback_text(ctx: RunContext, verdict: Verdict, report_link: str) -> str:
    """The notification text (Slack reads it as mrkdwn): every value escaped."""
    count = len(verdict.reasons)
    return (f"{TITLE[verdict.decision]}: {_escape(ctx.service)}@{_escape(ctx.version)} — {count} reason(s) — "
            f"report: {_escape(report_link)} — run {_escape(ctx.run_id)}")


def format_reason(reason: Reason, limit: int = 300) -> str:
    """'stage: message (value 312 vs threshold 250)' in Slack mrkdwn."""
    message = _escape(_clip(reason.message, limit))
    numbers = ""
    if reason.value is not None or reason.threshold is not None:
        numbers = f" (value {_num(reason.value)} vs threshold {_num(reason.threshold)})"
    return f"*{_escape(reason.stage)}*: {message}{numbers}"


def redact_payload(value: Any) -> Any:
    """Every string inside a payload, redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_payload(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_payload(v) for v in value]
    return value


def _header(ctx: RunContext, decision: Decision, waivers: int = 0) -> dict:
    with_waivers = f" (with {waivers} waiver{'s' if waivers != 1 else ''})" if waivers else ""
    text = _clip(f"{EMOJI[decision]} {TITLE[decision]}{with_waivers}: {_escape(ctx.service)}@{_escape(ctx.version)}",
                 150)
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _summary(ctx: RunContext, decision: Decision, count: int) -> dict:
    text = (f"*{_escape(ctx.service)}@{_escape(ctx.version)}* — *{TITLE[decision]}*\n{ADVICE[decision]}"
            f"\n{count} reason(s).")
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _reasons_block(reasons: list[Reason], max_reasons: int) -> dict:
    lines = [f"• {format_reason(r)}" for r in reasons[:max_reasons]]
    hidden = len(reasons) - len(lines)
    if hidden > 0:
        lines.append(f"…and {hidden} more reason(s) in the report")
    text = _clip("*Top reasons*\n" + "\n".join(lines), 3000)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _defects_block(verdict: Verdict, shown: int = 5) -> dict:
    """New defects (new, reopened) apart from old ones (recurring, waived), as the release train asks."""
    new, old = verdict.new_defects, verdict.old_defects
    fixed = [d for d in verdict.defects if d.state == "fixed"]
    lines = [f"*Defects*: {len(new)} new, {len(old)} still open, {len(fixed)} fixed"]
    lines += [f"• :new: {_escape(_clip(d.title, 200))}" + (" _(reopened)_" if d.state == "reopened" else "")
              for d in new[:shown]]
    if len(new) > shown:
        lines.append(f"…and {len(new) - shown} more new defect(s) in the report")
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), 3000)}}


def _waivers_block(verdict: Verdict) -> dict:
    lines = ["*Waived* (documented exceptions)"]
    lines += [f"• #{w.id} {_escape(_clip(w.title or w.fingerprint, 150))} — approved by {_escape(w.approver)}, "
              f"expires {w.expires_on}: {_escape(_clip(w.reason, 200))}" for w in verdict.waivers]
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), 3000)}}


def _link_block(report_link: str) -> dict:
    """A link only for an http(s) URL that cannot end Slack's <url|label> early; anything else as text."""
    if report_link.startswith(("http://", "https://")) and not _LINK_BREAKERS.search(report_link):
        text = f"<{_escape(report_link)}|Open the report>"
    else:
        text = f"Report: `{_escape(report_link)}`"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


_LINK_BREAKERS = re.compile(r"[\s<>|`]")


def _context(ctx: RunContext, verdict: Verdict) -> dict:
    text = f"run `{_escape(ctx.run_id)}` · decided {utc(verdict.decided_at):%Y-%m-%d %H:%M UTC}"
    if verdict.advisory_data is not None:
        text += f" · advisory data: {_escape(_clip(verdict.advisory_data.describe(), 300))}"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _escape(text: str) -> str:
    """Slack's control characters as entities, so text never becomes a mention (<!channel>), a link or a
    user reference; applied to every value in the message."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


# --- sending -----------------------------------------------------------------------------------------

def notify(ctx: RunContext, verdict: Verdict, slack_cfg: Slack | None, report_link: str) -> NotifyOutcome:
    """Post the verdict to Slack, or write the payload when Slack is not configured. Never raises."""
    channel = slack_cfg.channel if slack_cfg else None
    payload = {"channel": channel, **build_message(ctx, verdict, report_link)}
    path = write_json(ctx.evidence / PAYLOAD_FILE, payload)
    target = resolve_target(slack_cfg) if slack_cfg else None
    if target is None:
        outcome = NotifyOutcome("written", 0, payload, path=path)
        _log_not_configured(slack_cfg, path)
    else:
        outcome = post(target, payload)
        outcome.path = path
        if outcome.status == "sent":  # Slack answers again: deliver what this service still owes
            outcome.retried = _retry_quietly(target, ctx.service, ctx.run_id)
    write_json(ctx.evidence / RESPONSE_FILE, _response_record(outcome))
    return outcome


# --- the outbox: notifications not delivered yet -----------------------------------------------------

class SlackNotConfigured(ReleaseGateError):
    """No token to send with; the message says where to put one."""


def deliver_pending(service: str | None = None, at: datetime | None = None) -> list[dict[str, Any]]:
    """`releasegate notify --pending`: send every notification not delivered yet (of ``service``, or all)."""
    target = resolve_target(Slack(channel="(pending)"))
    if target is None:
        raise SlackNotConfigured(f"Slack is not configured: set {TOKEN_ENV} (and {BASE_URL_ENV} for a "
                                 "Slack-compatible server), or run inside an Airflow task with the connection "
                                 f"{DEFAULT_CONNECTION!r}")
    return retry_pending(target, service=service, at=at)


def retry_pending(target: SlackTarget, service: str | None = None, exclude_run: str | None = None,
                  at: datetime | None = None) -> list[dict[str, Any]]:
    """Send the stored payload of each pending notification again; each outcome is recorded with an audit event.

    Returns one ``{run_id, channel, service, status, attempts, error}`` per notification tried.
    """
    from releasegate import store

    at = at or datetime.now(UTC)
    with store.unit_of_work() as uow:
        pending = uow.notifications.pending(at, service=service, exclude_run=exclude_run)
    return [result for row in pending if (result := _retry_one(target, row, at)) is not None]


def _retry_one(target: SlackTarget, row: dict[str, Any], at: datetime) -> dict[str, Any] | None:
    from releasegate import store
    from releasegate.audit import record

    with store.unit_of_work() as uow:
        if not uow.notifications.claim(row, at, at + RETRY_LEASE):
            return None  # another process is sending it, or sent it since we looked
        uow.commit()
    payload = dict(row["payload"] or {})
    payload["channel"] = payload.get("channel") or row["channel"]
    outcome = post(target, payload)
    attempts = row["attempts"] + outcome.attempts
    with store.unit_of_work() as uow:
        response = redact_payload(outcome.response or ({"error": outcome.error} if outcome.error else None))
        uow.notifications.settle(row["id"], outcome.status, attempts, response, datetime.now(UTC))
        record(uow, "notification.retried", row["channel"], {"status": outcome.status, "attempts": attempts},
               datetime.now(UTC), row["run_id"])
        uow.commit()
    log.info("Slack: pending notification of run %s to %s: %s (%d attempt(s) in all)",
             row["run_id"], row["channel"], outcome.status, attempts)
    return {"run_id": row["run_id"], "channel": row["channel"], "service": row["service"],
            "status": outcome.status, "attempts": attempts, "error": outcome.error}


def _retry_quietly(target: SlackTarget, service: str, run_id: str) -> list[dict[str, Any]]:
    try:
        return retry_pending(target, service=service, exclude_run=run_id)
    except Exception as exc:  # noqa: BLE001 (the outbox is best effort here; `notify --pending` reports it)
        log.warning("Slack: could not retry pending notifications of %s (%s: %s); `releasegate notify "
                    "--pending` sends them later", service, type(exc).__name__, redact(str(exc)))
        return []


def resolve_target(slack_cfg: Slack) -> SlackTarget | None:
    """Token from $RELEASEGATE_SLACK_TOKEN, else the Airflow connection (only inside an Airflow task)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return SlackTarget(token, os.environ.get(BASE_URL_ENV) or None, TOKEN_ENV)
    if not _inside_airflow_task():
        return None
    return _target_from_connection(slack_cfg.connection_id)


def post(target: SlackTarget, payload: dict[str, Any]) -> NotifyOutcome:
    """chat.postMessage with retries on 429 (Retry-After) and 5xx; failures become an outcome."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    counter = _AttemptCounter()
    client = WebClient(token=target.token, base_url=target.base_url or WebClient.BASE_URL, timeout=TIMEOUT_S,
                       retry_handlers=counter.handlers())
    try:
        response = client.chat_postMessage(**payload)
    except SlackApiError as exc:
        data = exc.response.data if isinstance(exc.response.data, dict) else {"body": str(exc.response.data)}
        return _failed(payload, counter.attempts, _api_error(exc), data)
    except Exception as exc:  # noqa: BLE001 (refused, timeout, unreadable body: a failed post never raises)
        return _failed(payload, counter.attempts, f"{type(exc).__name__}: {exc}", None)
    log.info("Slack: posted to %s in %d attempt(s) (ts %s; token from %s)",
             payload.get("channel"), counter.attempts, response.get("ts"), target.source)
    body = dict(response.data) if isinstance(response.data, dict) else {"body": str(response.data)}
    return NotifyOutcome("sent", counter.attempts, payload, response=body)


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _inside_airflow_task() -> bool:
    """Airflow exports AIRFLOW_CTX_* into a running task's environment; elsewhere we skip the lookup."""
    return bool(os.environ.get("AIRFLOW_CTX_DAG_ID"))


def _target_from_connection(conn_id: str) -> SlackTarget | None:
    """The SlackHook convention: the password is the token, extra 'base_url' (or its old prefixed key)."""
    try:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
        extra = conn.extra_dejson or {}
    except Exception as exc:  # noqa: BLE001 (not found, no API server, backend down: "not configured")
        log.info("Slack: connection %r not usable (%s); treating Slack as not configured",
                 conn_id, type(exc).__name__)
        return None
    if not conn.password:
        return None
    base_url = extra.get("base_url") or extra.get("extra__slack__base_url") or None
    return SlackTarget(conn.password, base_url, f"connection {conn_id!r}")


def _log_not_configured(slack_cfg: Slack | None, path: Path) -> None:
    if slack_cfg is None:
        log.info("Slack not configured (no notify.slack in the policy): wrote the message payload to %s",
                 path)
        return
    log.info("Slack not configured (no %s or connection %r): wrote the message payload to %s",
             TOKEN_ENV, slack_cfg.connection_id, path)


def _failed(payload: dict, attempts: int, error: str, response: dict | None) -> NotifyOutcome:
    error = redact(error)
    log.warning("Slack: could not post to %s after %d attempt(s): %s — the verdict stands; "
                "check the token, the channel and that the bot is invited",
                payload.get("channel"), attempts, error)
    return NotifyOutcome("failed", attempts, payload, response=response, error=error)


def _api_error(exc: Any) -> str:
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    return f"Slack API error {exc.response.status_code}: {data.get('error') or exc.response.data}"


def _response_record(outcome: NotifyOutcome) -> dict[str, Any]:
    return redact_payload({"status": outcome.status, "attempts": outcome.attempts,
                           "response": outcome.response, "error": outcome.error})


class _AttemptCounter:
    """Retry handlers that count the HTTP attempts the client makes (1 + retries)."""

    def __init__(self) -> None:
        self.retries = 0

    @property
    def attempts(self) -> int:
        return 1 + self.retries

    def handlers(self) -> list:
        from slack_sdk.http_retry.builtin_handlers import (
            ConnectionErrorRetryHandler,
            RateLimitErrorRetryHandler,
            ServerErrorRetryHandler,
        )
        from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

        backoff = BackoffRetryIntervalCalculator(backoff_factor=RETRY_BACKOFF_S)
        return [self._counting(cls)(max_retry_count=MAX_RETRIES, interval_calculator=backoff)
                for cls in (RateLimitErrorRetryHandler, ServerErrorRetryHandler, ConnectionErrorRetryHandler)]

    def _counting(self, base: type) -> type:
        counter = self

        class Counting(base):
            def prepare_for_next_attempt(self, **kwargs: Any) -> None:
                counter.retries += 1
                super().prepare_for_next_attempt(**kwargs)

        Counting.__name__ = f"Counting{base.__name__}"
        return Counting
