"""Slack's Web API: where the token comes from ($RELEASEGATE_SLACK_TOKEN, else the Airflow connection inside a
task) and a chat.postMessage with retries on 429 and 5xx that never raises: a failure is an outcome."""

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


def _failed(payload: dict, attempts: int, error: str, response: dict | None) -> NotifyOutcome:
    error = redact(error)
    log.warning("Slack: could not post to %s after %d attempt(s): %s — the verdict stands; "
                "check the token, the channel and that the bot is invited",
                payload.get("channel"), attempts, error)
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
