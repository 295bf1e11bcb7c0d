"""A Slack notification that was not delivered stays pending and is delivered later: by `releasegate notify
--pending`, or by the next run of the same service; real slack_sdk calls against a loopback Slack server,
on SQLite and PostgreSQL."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from persistence import UnitOfWork
from releasegate.context import RunContext
from releasegate.domain.models import Decision, Verdict
from releasegate.notify.slack import build_payload, notify
from releasegate.policy import Slack
from releasegate.records import store
from tests.support.builders import run_context
from tests.support.slack_server import SlackServer

TOKEN = "xoxb-test-4242-pending"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CFG = Slack(channel="#releases")


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr("releasegate.notify.slack_api.RETRY_BACKOFF_S", 0.01)


@pytest.fixture
def slack(monkeypatch, cli_db):
    with SlackServer(token=TOKEN) as server:
        monkeypatch.setenv("RELEASEGATE_SLACK_TOKEN", TOKEN)
        monkeypatch.setenv("RELEASEGATE_SLACK_BASE_URL", server.url)
        monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
        yield server


def context(tmp_path, run_id: str, service: str = "shop", version: str = "1.4.2") -> RunContext:
    evidence = tmp_path / run_id
    evidence.mkdir(parents=True, exist_ok=True)
    return run_context(tmp_path, run_id=run_id, service=service, version=version, evidence_dir=str(evidence),
                       started=T0)


def failed_notification(tmp_path, run_id: str, service: str = "shop", channel: str = "#releases",
                        status: str = "failed", attempts: int = 4) -> dict:
    """A run whose notification could not be sent, recorded as pipeline.notify records it."""
    ctx = context(tmp_path, run_id, service)
    payload = build_payload(ctx, Verdict(decision=Decision.NO_GO, decided_at=T0), channel,
                            f"https://gate.example/{run_id}")
    with store.unit_of_work() as uow:
        uow.runs.upsert({"run_id": run_id, "service": service, "version": "1.4.2", "policy_path": "gate.yaml",
                         "policy_digest": "sha256:x", "evidence_dir": ctx.evidence_dir, "started_at": T0,
                         "status": "finished"})
        uow.notifications.upsert(run_id, channel, payload, status, attempts, None)
        uow.commit()
    return payload


def notification(run_id: str, channel: str = "#releases") -> dict:
    with store.unit_of_work() as uow:
        return uow.notifications.get(run_id, channel)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    from releasegate.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def test_notify_pending_delivers_a_failed_notification_once(slack, tmp_path, capsys):
    payload = failed_notification(tmp_path, "rg-1")

    code, out, _ = cli(capsys, "notify", "--pending", "--json")
    again = cli(capsys, "notify", "--pending")

    assert code == 0
    assert [(r["run_id"], r["status"], r["attempts"]) for r in json.loads(out)] == [("rg-1", "sent", 5)]
    (message,) = slack.top_level()
    assert message["text"] == payload["text"]
    assert [r["text"] for r in slack.replies(message["ts"])] == [payload["thread"]["text"]]   # and its thread
    assert notification("rg-1")["status"] == "sent"
    assert again == (0, "", "")                                     # delivered once, never twice
    with store.unit_of_work() as uow:
        events = uow.audit.events(kind="notification.retried")
    assert [(e["run_id"], e["payload"]) for e in events] == [("rg-1", {"status": "sent", "attempts": 5})]


def test_a_notification_that_still_fails_stays_pending_and_is_sent_when_slack_answers(slack, tmp_path, capsys):
    failed_notification(tmp_path, "rg-1", status="written", attempts=0)   # Slack was not configured then
    slack.fail_next(503, times=4)

    down = cli(capsys, "notify", "--pending")
    still = notification("rg-1")
    up = cli(capsys, "notify", "--pending")

    assert down[0] == 1 and "rg-1  #releases: failed (4 attempt(s) in all)" in down[1]
    assert (still["status"], still["attempts"]) == ("failed", 4)
    assert up[0] == 0 and "sent (5 attempt(s) in all)" in up[1]
    assert len(slack.top_level()) == 1


def test_a_new_run_of_the_service_delivers_what_it_still_owes(slack, tmp_path):
    failed_notification(tmp_path, "rg-old", service="shop")
    failed_notification(tmp_path, "rg-other", service="billing")
    failed_notification(tmp_path, "rg-none", service="shop", channel="(none)", status="written", attempts=0)
    ctx = context(tmp_path, "rg-new", service="shop")

    outcome = notify(ctx, Verdict(decision=Decision.GO, decided_at=T0), CFG, "https://gate.example/rg-new")

    assert outcome.status == "sent"
    assert [(r["run_id"], r["status"]) for r in outcome.retried] == [("rg-old", "sent")]
    assert [notification(run)["status"] for run in ("rg-old", "rg-other")] == ["sent", "failed"]
    assert len(slack.top_level()) == 2


def test_a_run_whose_own_message_fails_leaves_the_outbox_alone(slack, tmp_path):
    failed_notification(tmp_path, "rg-old")
    slack.fail_next(500, times=4)

    outcome = notify(context(tmp_path, "rg-new"), Verdict(decision=Decision.GO, decided_at=T0), CFG, "x")

    assert outcome.status == "failed" and outcome.retried == []
    assert notification("rg-old")["attempts"] == 4


def test_without_a_token_notify_pending_says_what_to_set(cli_db, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RELEASEGATE_SLACK_TOKEN", raising=False)
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    failed_notification(tmp_path, "rg-1")

    code, _, err = cli(capsys, "notify", "--pending")

    assert code == 2 and "Slack is not configured: set RELEASEGATE_SLACK_TOKEN" in err
    assert notification("rg-1")["status"] == "failed"


def test_a_lease_keeps_a_second_sender_off_and_ends_with_the_outcome(cli_db, tmp_path):
    failed_notification(tmp_path, "rg-1")
    now = datetime.now(UTC)
    with store.unit_of_work() as uow:
        (row,) = uow.notifications.pending(now)
    with UnitOfWork(store.engine()) as first, UnitOfWork(store.engine()) as second:
        won = first.notifications.claim(row, now, now + timedelta(minutes=10))
        first.commit()
        lost = second.notifications.claim(row, now, now + timedelta(minutes=10))
        second.commit()
    with store.unit_of_work() as uow:
        leased = uow.notifications.pending(now + timedelta(minutes=1))
        after_lease = uow.notifications.pending(now + timedelta(minutes=11))
        uow.notifications.settle(row["id"], "failed", 8, None, now + timedelta(minutes=2))
        uow.commit()
    with store.unit_of_work() as uow:
        settled = uow.notifications.pending(now + timedelta(minutes=3))

    assert (won, lost) == (True, False)
    assert leased == [] and [r["run_id"] for r in after_lease] == ["rg-1"]   # a dead sender's lease ends
    assert [(r["run_id"], r["attempts"], r["service"]) for r in settled] == [("rg-1", 8, "shop")]


def test_hostile_text_arrives_at_slack_escaped(slack, tmp_path):
    ctx = context(tmp_path, "rg-1", version="1.0<!channel>")

    notify(ctx, Verdict(decision=Decision.NO_GO, decided_at=T0), CFG, "/evidence/<!here>/report.html")

    received, reply = [r for r in slack.requests if r.method == "chat.postMessage"]
    assert "<!" not in received.raw.decode("utf-8") and "&lt;!channel&gt;" in received.body["text"]
    assert "<!" not in reply.raw.decode("utf-8") and "&lt;!channel&gt;" in reply.body["text"]
