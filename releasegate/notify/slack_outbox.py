"""The outbox: notifications that were not delivered stay pending (the notifications table) and are sent
again, by the next run of the same service once its own message got through, or by `releasegate notify
--pending`. Each retry claims its notification first, so two senders never post it twice, and is recorded in
the audit trail."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from releasegate.domain.errors import ReleaseGateError
from releasegate.notify.slack_api import (
    BASE_URL_ENV,
    DEFAULT_CONNECTION,
    TOKEN_ENV,
    SlackTarget,
    deliver,
    resolve_target,
)
from releasegate.notify.slack_message import redact_payload
from releasegate.policy import Slack
from releasegate.redact import redact

log = logging.getLogger("releasegate")

RETRY_LEASE = timedelta(minutes=10)   # how long a retry in flight keeps others off its notification


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
    from releasegate.records import store

    at = at or datetime.now(UTC)
    with store.unit_of_work() as uow:
        pending = uow.notifications.pending(at, service=service, exclude_run=exclude_run)
    return [result for row in pending if (result := _retry_one(target, row, at)) is not None]


def _retry_one(target: SlackTarget, row: dict[str, Any], at: datetime) -> dict[str, Any] | None:
    from releasegate.records import store
    from releasegate.records.audit import record

    with store.unit_of_work() as uow:
        if not uow.notifications.claim(row, at, at + RETRY_LEASE):
            return None  # another process is sending it, or sent it since we looked
        uow.commit()
    payload = dict(row["payload"] or {})
    payload["channel"] = payload.get("channel") or row["channel"]
    outcome = deliver(target, payload, row)   # the run's message, if Slack has one, is updated in place
    attempts = row["attempts"] + outcome.attempts
    with store.unit_of_work() as uow:
        response = redact_payload(outcome.response or ({"error": outcome.error} if outcome.error else None))
        uow.notifications.settle(row["id"], outcome.status, attempts, response, datetime.now(UTC), outcome.message)
        record(uow, "notification.retried", row["channel"], {"status": outcome.status, "attempts": attempts},
               datetime.now(UTC), row["run_id"])
        uow.commit()
    log.info("Slack: pending notification of run %s to %s: %s (%d attempt(s) in all)",
             row["run_id"], row["channel"], outcome.status, attempts)
    return {"run_id": row["run_id"], "channel": row["channel"], "service": row["service"],
            "status": outcome.status, "attempts": attempts, "error": outcome.error}


def retry_quietly(target: SlackTarget, service: str, run_id: str) -> list[dict[str, Any]]:
    try:
        return retry_pending(target, service=service, exclude_run=run_id)
    except Exception as exc:  # noqa: BLE001 (the outbox is best effort here; `notify --pending` reports it)
        log.warning("Slack: could not retry pending notifications of %s (%s: %s); `releasegate notify "
                    "--pending` sends them later", service, type(exc).__name__, redact(str(exc)))
        return []


def previous_message(run_id: str, channel: str) -> dict[str, Any] | None:
    """The notification this run already has on ``channel`` (with the Slack message it became), or None.
    A gate database that cannot be read is logged, and the message is posted as new."""
    from releasegate.records import store

    try:
        with store.unit_of_work() as uow:
            return uow.notifications.get(run_id, channel)
    except Exception as exc:  # noqa: BLE001 (best effort: without it a re-run posts a new message)
        log.warning("Slack: could not read the earlier notification of run %s (%s: %s); posting a new message",
                    run_id, type(exc).__name__, redact(str(exc)))
        return None
