"""Slack's Web API: where the token comes from ($RELEASEGATE_SLACK_TOKEN, else the Airflow connection inside a
task), and delivering a verdict: chat.postMessage, or chat.update of the message the same run posted before, then
the details in its thread; retries on 429 and 5xx, never raises: a failure is an outcome."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasegate.policy import Slack
from releasegate.redact import redact

log = logging.getLogger("releasegate")

TOKEN_ENV = "RELEASEGATE_SLACK_TOKEN"
BASE_URL_ENV = "RELEASEGATE_SLACK_BASE_URL"
DEFAULT_CONNECTION = "slack_api_default"
MAX_RETRIES = 3         # per handler; slack_sdk counts retries of one call across all handlers
RETRY_BACKOFF_S = 0.5   # 5xx and connection errors: 0.5 s, 1 s, 2 s (429 waits for Retry-After)
TIMEOUT_S = 15


@dataclass
class NotifyOutcome:
    status: str                      # "sent" | "written" | "failed"
    attempts: int
    payload: dict[str, Any]
    response: dict[str, Any] | None = None
    path: Path | None = None         # the payload file in the evidence folder
    error: str | None = None
    retried: list[dict[str, Any]] = field(default_factory=list)  # earlier notifications sent again
    action: str = ""                 # "posted" | "updated" (in place) | "unchanged" (nothing new) when delivered
    message: dict[str, str | None] | None = None   # message_ts, channel_id, shown_decision once Slack has it
    thread: list[dict[str, Any]] = field(default_factory=list)   # each reply in the thread: status, ts, error


@dataclass(frozen=True)
class SlackTarget:
    token: str = field(repr=False)
    base_url: str | None
    source: str                      # where the token came from, for the log (never the token)


def resolve_target(slack_cfg: Slack) -> SlackTarget | None:
    """Token from $RELEASEGATE_SLACK_TOKEN, else the Airflow connection (only inside an Airflow task)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return SlackTarget(token, os.environ.get(BASE_URL_ENV) or None, TOKEN_ENV)
    return _target_from_connection(slack_cfg.connection_id)


# Keys of a stored payload that are the gate's, not Slack's: the reply in the thread, the decision it shows.
THREAD_KEY = "thread"
DECISION_KEY = "decision"
NOTE_KEY = "note"         # the thread note of a re-run that changed the verdict


def deliver(target: SlackTarget, payload: dict[str, Any], previous: dict[str, Any] | None = None) -> NotifyOutcome:
    """Make Slack show ``payload`` (as `slack.notify` builds it), given the message this run already has there
    (``previous``: a notifications row with ``message_ts``, ``channel_id``, ``shown_decision``, or None):

    - none: chat.postMessage, then the details (``payload["thread"]``) in its thread;
    - one showing the same decision: nothing is posted (a re-run that changed nothing stays quiet);
    - one showing another decision: chat.update of that message in place, then a note of the change
      (``note``) and the new details in its thread.

    The outcome's status is the verdict message's; a reply that fails is logged and listed in ``thread``.
    """
    decision = payload.get(DECISION_KEY)
    ts, channel_id = (previous or {}).get("message_ts"), (previous or {}).get("channel_id")
    shown = (previous or {}).get("shown_decision")
    if ts and channel_id and decision and shown == decision:
        log.info("Slack: the message of this run (ts %s) already shows %s: nothing new posted", ts, decision)
        return NotifyOutcome("sent", 0, payload, response=(previous or {}).get("response"), action="unchanged",
                             message={"message_ts": ts, "channel_id": channel_id, "shown_decision": shown})
    client, counter = _client(target)
    message = {k: v for k, v in payload.items() if k not in (THREAD_KEY, DECISION_KEY, NOTE_KEY)}
    if ts and channel_id:
        outcome = _call(client, counter, "update", payload,
                        lambda: client.chat_update(**{**message, "channel": channel_id, "ts": ts}))
        outcome.action = "updated"
    else:
        outcome = _call(client, counter, "post", payload, lambda: client.chat_postMessage(**message))
        outcome.action = "posted"
    if outcome.status != "sent":
        return outcome
    body = outcome.response or {}
    ts, channel_id = str(body.get("ts") or ts or ""), str(body.get("channel") or channel_id or "")
    outcome.message = {"message_ts": ts, "channel_id": channel_id, "shown_decision": decision}
    replies = [payload[NOTE_KEY]] if outcome.action == "updated" and payload.get(NOTE_KEY) else []
    replies += [payload[THREAD_KEY]] if payload.get(THREAD_KEY) else []
    outcome.thread = [_reply(target, channel_id, ts, reply) for reply in replies]
    return outcome


def post(target: SlackTarget, payload: dict[str, Any]) -> NotifyOutcome:
    """chat.postMessage with retries on 429 (Retry-After) and 5xx; failures become an outcome."""
    client, counter = _client(target)
    message = {k: v for k, v in payload.items() if k not in (THREAD_KEY, DECISION_KEY, NOTE_KEY)}
    return _call(client, counter, "post", payload, lambda: client.chat_postMessage(**message))


def _reply(target: SlackTarget, channel_id: str, ts: str, reply: dict[str, Any]) -> dict[str, Any]:
    client, counter = _client(target)
    outcome = _call(client, counter, "reply", reply,
                    lambda: client.chat_postMessage(**{**reply, "channel": channel_id, "thread_ts": ts}))
    return {"status": outcome.status, "attempts": outcome.attempts,
            "ts": (outcome.response or {}).get("ts") if outcome.status == "sent" else None, "error": outcome.error}


def _client(target: SlackTarget) -> tuple[Any, _AttemptCounter]:
    from slack_sdk import WebClient

    counter = _AttemptCounter()
    return WebClient(token=target.token, base_url=target.base_url or WebClient.BASE_URL, timeout=TIMEOUT_S,
                     retry_handlers=counter.handlers()), counter


def _call(client: Any, counter: _AttemptCounter, what: str, payload: dict[str, Any], call: Any) -> NotifyOutcome:
    from slack_sdk.errors import SlackApiError

    try:
        response = call()
    except SlackApiError as exc:
        data = exc.response.data if isinstance(exc.response.data, dict) else {"body": str(exc.response.data)}
        return _failed(payload, counter.attempts, _api_error(exc), data, what)
    except Exception as exc:  # noqa: BLE001 (refused, timeout, unreadable body: a failed post never raises)
        return _failed(payload, counter.attempts, f"{type(exc).__name__}: {exc}", None, what)
    log.info("Slack: %s (%s) in %d attempt(s) (ts %s)", _VERB[what], payload.get("channel") or "thread",
             counter.attempts, response.get("ts"))
    body = dict(response.data) if isinstance(response.data, dict) else {"body": str(response.data)}
    return NotifyOutcome("sent", counter.attempts, payload, response=body)


_VERB = {"post": "posted the message", "update": "updated the message in place", "reply": "replied in the thread"}


def _target_from_connection(conn_id: str) -> SlackTarget | None:
    """The SlackHook convention: the password is the token, extra 'base_url' (or its old prefixed key). The Airflow
    glue looks the connection up, and only inside an Airflow task."""
    from releasegate.airflow_glue import slack_connection

    conn = slack_connection(conn_id)
    if conn is None or not conn.password:
        return None
    extra = conn.extra_dejson or {}
    base_url = extra.get("base_url") or extra.get("extra__slack__base_url") or None
    return SlackTarget(conn.password, base_url, f"connection {conn_id!r}")


def _failed(payload: dict, attempts: int, error: str, response: dict | None, what: str = "post") -> NotifyOutcome:
    error = redact(error)
    doing = {"update": "update the message in", "reply": "reply in the thread in"}.get(what, "post to")
    log.warning("Slack: could not %s %s after %d attempt(s): %s — the verdict stands; "
                "check the token, the channel and that the bot is invited",
                doing, payload.get("channel"), attempts, error)
    return NotifyOutcome("failed", attempts, payload, response=response, error=error)


def _api_error(exc: Any) -> str:
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    return f"Slack API error {exc.response.status_code}: {data.get('error') or exc.response.data}"


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
