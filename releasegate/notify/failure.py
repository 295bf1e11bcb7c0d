"""The DAG's failure notifier: a gate run that broke before it could tell its verdict (``open_run`` or
``compile_report`` failed, a worker died) still tells Slack, through the Slack provider's ``SlackNotifier`` and
the Airflow connection the gate's own messages use.

Airflow calls the DAG's ``on_failure_callback`` once a run has failed, with the context of the task that failed
last. A run whose verdict was told (a ``notify_*`` task succeeded, or the gate database holds the run's
notification) failed because of that verdict (``enforce_verdict`` fails NO_GO and INCONCLUSIVE): the verdict
message says everything, so nothing more is posted. Any other failed run gets one message: the service and
version, the DAG run id, the failed task(s) and a link to the Airflow run (when ``[api] base_url`` is set).

The channel and the connection are the policy's ``notify.slack``; a policy that cannot be read (often why
``open_run`` failed) falls back to $RELEASEGATE_SLACK_FAILURE_CHANNEL and the connection ``slack_api_default``.
Nothing here raises: Airflow would only log it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from releasegate.notify.links import dag_run_url
from releasegate.notify.slack_api import DEFAULT_CONNECTION
from releasegate.notify.slack_message import _escape, redact_payload
from releasegate.redact import redact

log = logging.getLogger("releasegate")

FAILURE_CHANNEL_ENV = "RELEASEGATE_SLACK_FAILURE_CHANNEL"
TOLD_TASKS = ("notify_go", "notify_no_go")   # the tasks that tell the verdict
FAILED_STATES = ("failed", "upstream_failed")


def on_gate_failure(context: dict[str, Any], repo_root: Path | None = None) -> str:
    """The DAG's ``on_failure_callback``. Returns what it did ("told", "verdict told", "no channel", "failed:
    ...") for the log and the tests."""
    try:
        return _on_gate_failure(context, repo_root)
    except Exception as exc:  # noqa: BLE001 (a callback that raises is only logged by Airflow: say it clearly)
        log.warning("Slack: could not tell that the gate run failed (%s: %s)", type(exc).__name__, redact(str(exc)))
        return f"failed: {type(exc).__name__}"


def _on_gate_failure(context: dict[str, Any], repo_root: Path | None) -> str:
    dag_run = context.get("dag_run")
    dag_id = str(getattr(context.get("dag"), "dag_id", "") or getattr(dag_run, "dag_id", "") or "")
    run_id = str(context.get("run_id") or getattr(dag_run, "run_id", "") or "")
    ti = context.get("ti") or context.get("task_instance")
    last_task = getattr(ti, "task_id", None)
    states = _task_states(dag_id, run_id)
    if _verdict_told(dag_id, run_id, states):
        log.info("Slack: run %s of %s failed on its verdict, which its message already tells: nothing more posted",
                 run_id, dag_id)
        return "verdict told"
    conf = dict(getattr(dag_run, "conf", None) or context.get("params") or {})
    channel, conn_id = _slack_settings(conf.get("policy"), repo_root)
    if not channel:
        log.warning("Slack: run %s of %s failed before its verdict, and no channel is known to tell (the policy "
                    "has no notify.slack and %s is not set)", run_id, dag_id, FAILURE_CHANNEL_ENV)
        return "no channel"
    failed = sorted(task for task, state in (states or {}).items() if state == "failed")
    message = failure_message(dag_id, run_id, conf, failed, str(context.get("reason") or ""), last_task)
    _send(conn_id, channel, message, context)
    log.info("Slack: told %s that run %s of %s failed (task(s): %s)", channel, run_id, dag_id,
             ", ".join(failed) or f"{last_task} failed last")
    return "told"


def failure_message(dag_id: str, run_id: str, conf: dict[str, Any], failed: list[str], reason: str,
                    last_task: str | None) -> dict[str, Any]:
    """The message: what broke (service, version, DAG run, the failed tasks when Airflow told them, else the task
    that failed last), that there is no verdict, and where to look. Every value escaped and redacted."""
    what = f"{_escape(conf.get('service') or '?')}@{_escape(conf.get('version') or '?')}"
    if failed:
        tasks = "failed task(s): " + ", ".join(f"`{_escape(t)}`" for t in failed)
    else:
        tasks = f"failed last: `{_escape(last_task)}`" if last_task else "failed task: unknown"
    lines = [f":rotating_light: *The release gate broke before it could tell its verdict*: {what}",
             f"DAG `{_escape(dag_id)}`, run `{_escape(run_id)}` — {tasks}" + (f" ({_escape(reason)})" if reason else ""),
             "There is no verdict for this release: read the failed task's log, fix the cause, then clear the "
             "task (a re-run of the same run tells its verdict as usual)."]
    links = [f"<{_escape(url)}|{label}>" for url, label in (
        (dag_run_url(dag_id, run_id), "Open the Airflow run"),
        (dag_run_url(dag_id, run_id, last_task) if last_task else None, f"the log of {_escape(last_task or '')}"))
        if url]
    if links:
        lines.append(" · ".join(links))
    text = f"Release gate broke: {what} — DAG run {_escape(run_id)} — {tasks}"
    return redact_payload({"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                                                 "text": "\n".join(lines)}}]})


def _send(conn_id: str, channel: str, message: dict[str, Any], context: dict[str, Any]) -> None:
    """The Slack provider's notifier, called directly: no template rendering of values that came from a run."""
    from airflow.providers.slack.notifications.slack import SlackNotifier

    from releasegate.notify.slack_api import TIMEOUT_S, _AttemptCounter

    SlackNotifier(slack_conn_id=conn_id, channel=channel, text=message["text"], blocks=message["blocks"],
                  username="releasegate", timeout=TIMEOUT_S, retry_handlers=_AttemptCounter().handlers(),
                  unfurl_links=False).notify(context)


def _task_states(dag_id: str, run_id: str) -> dict[str, Any] | None:
    """The run's task states from Airflow (the Task SDK, as the DAG processor serves them); None when not
    available (no supervisor, as in a test)."""
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id])
        return dict(states.get(run_id) or {})
    except Exception as exc:  # noqa: BLE001 (no supervisor to ask: the gate database decides)
        log.info("Slack: the task states of run %s are not available here (%s: %s); the gate database decides",
                 run_id, type(exc).__name__, redact(str(exc)))
        return None


def _verdict_told(dag_id: str, run_id: str, states: dict[str, Any] | None) -> bool:
    if states is not None and any(str(states.get(task)) == "success" for task in TOLD_TASKS):
        return True
    try:  # the gate database: notify records the run's notification, delivered or pending in the outbox
        from releasegate.records import store

        with store.unit_of_work() as uow:
            return bool(uow.notifications.for_run(f"{dag_id}__{run_id}"))
    except Exception as exc:  # noqa: BLE001 (unknown: better one message too many than a broken gate unheard)
        log.info("Slack: could not ask the gate database whether run %s told its verdict (%s)", run_id,
                 type(exc).__name__)
        return False


def _slack_settings(policy: Any, repo_root: Path | None) -> tuple[str | None, str]:
    """The policy's channel and connection; the fallback channel from the environment."""
    fallback = os.environ.get(FAILURE_CHANNEL_ENV, "").strip() or None
    if not policy:
        return fallback, DEFAULT_CONNECTION
    try:
        from releasegate.policy import load_policy

        path = Path(str(policy))
        if not path.is_absolute() and repo_root is not None:
            path = repo_root / path
        slack = load_policy(path).notify.slack
    except Exception as exc:  # noqa: BLE001 (the policy may be why the run broke)
        log.info("Slack: policy %s not readable for the failure message (%s); channel from %s", policy,
                 type(exc).__name__, FAILURE_CHANNEL_ENV)
        return fallback, DEFAULT_CONNECTION
    if slack is None:
        return fallback, DEFAULT_CONNECTION
    return slack.channel, slack.connection_id
