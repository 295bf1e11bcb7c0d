"""notify(): real slack_sdk calls against a Slack-compatible server on loopback."""

import json
import logging

import pytest

from releasegate.domain.models import Decision, Reason, Severity
from releasegate.notify.slack import PAYLOAD_FILE, RESPONSE_FILE, build_payload, notify
from releasegate.policy import Slack
from tests.support import builders
from tests.support.slack_server import SlackServer

TOKEN = "xoxb-test-4242-abcdef"
LINK = "https://gate.example/reports/shop/1.4.2/report.html"
CFG = Slack(channel="#releases")


@pytest.fixture
def ctx(tmp_path):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    return builders.run_context(tmp_path, evidence_dir=str(evidence))


@pytest.fixture
def verdict():
    return builders.verdict(Decision.NO_GO, [
        Reason(stage="locust", message="p95 over budget on /search", severity=Severity.high,
               value=312, threshold=250, fingerprint="b" * 32)])


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr("releasegate.notify.slack_api.RETRY_BACKOFF_S", 0.05)


@pytest.fixture
def slack(monkeypatch):
    with SlackServer(token=TOKEN) as server:
        monkeypatch.setenv("RELEASEGATE_SLACK_TOKEN", TOKEN)
        monkeypatch.setenv("RELEASEGATE_SLACK_BASE_URL", server.url)
        yield server


@pytest.fixture
def no_slack(monkeypatch):
    monkeypatch.delenv("RELEASEGATE_SLACK_TOKEN", raising=False)
    monkeypatch.delenv("RELEASEGATE_SLACK_BASE_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)


def test_message_arrives_with_verdict_reasons_and_link(ctx, verdict, slack):
    outcome = notify(ctx, verdict, CFG, LINK)

    assert outcome.status == "sent" and outcome.attempts == 1 and outcome.action == "posted"
    assert outcome.response["ok"] is True and outcome.response["channel"] == "C123"
    received, reply = slack.requests
    assert received.headers["Authorization"] == f"Bearer {TOKEN}"
    assert received.content_type.startswith("application/json")
    body = json.dumps(received.body)
    assert received.body["channel"] == "#releases" and "thread" not in received.body
    assert "NO-GO" in body and "p95 over budget on /search" in body and LINK in body
    assert (reply.body["channel"], reply.body["thread_ts"]) == ("C123", outcome.response["ts"])
    assert "(value 312 vs threshold 250)" in json.dumps(reply.body)


def test_invalid_token_fails_without_touching_the_verdict(ctx, verdict, slack, monkeypatch, caplog):
    monkeypatch.setenv("RELEASEGATE_SLACK_TOKEN", "xoxb-wrong-0000-zzzzzz")
    before = verdict.model_dump()

    with caplog.at_level(logging.WARNING, logger="releasegate"):
        outcome = notify(ctx, verdict, CFG, LINK)

    assert outcome.status == "failed" and "invalid_auth" in outcome.error
    assert verdict.model_dump() == before
    assert slack.messages() == []
    assert "invalid_auth" in caplog.text and "xoxb-wrong-0000-zzzzzz" not in caplog.text
    assert json.loads((ctx.evidence / RESPONSE_FILE).read_text())["status"] == "failed"


def test_rate_limited_once_then_sent(ctx, verdict, slack):
    slack.fail_next(429, times=1, retry_after=1)

    outcome = notify(ctx, verdict, CFG, LINK)

    assert outcome.status == "sent" and outcome.attempts == 2
    assert [r.status for r in slack.requests] == [429, 200, 200]   # the message, then its thread


def test_server_error_twice_then_sent(ctx, verdict, slack):
    slack.fail_next(503, times=2)

    outcome = notify(ctx, verdict, CFG, LINK)

    assert outcome.status == "sent" and outcome.attempts == 3
    assert [r.status for r in slack.requests] == [503, 503, 200, 200]


def test_server_errors_beyond_the_retries_fail_softly(ctx, verdict, slack):
    slack.fail_next(500, times=10)

    outcome = notify(ctx, verdict, CFG, LINK)

    assert outcome.status == "failed" and outcome.attempts == 4
    assert len(slack.requests) == 4


def test_unreachable_server_fails_softly(ctx, verdict, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_SLACK_TOKEN", TOKEN)
    with SlackServer(token=TOKEN) as server:
        url = server.url
    monkeypatch.setenv("RELEASEGATE_SLACK_BASE_URL", url)   # nothing listens there any more

    outcome = notify(ctx, verdict, CFG, LINK)

    assert outcome.status == "failed" and outcome.attempts >= 1


def test_no_token_writes_the_exact_payload(ctx, verdict, no_slack, caplog):
    with caplog.at_level(logging.INFO, logger="releasegate"):
        outcome = notify(ctx, verdict, CFG, LINK)

    path = ctx.evidence / PAYLOAD_FILE
    assert outcome.status == "written" and outcome.attempts == 0 and outcome.path == path
    expected = build_payload(ctx, verdict, "#releases", LINK)
    assert json.loads(path.read_text()) == expected == outcome.payload
    assert ("Slack not configured (no RELEASEGATE_SLACK_TOKEN or connection 'slack_api_default'): "
            f"wrote the message payload to {path}") in caplog.text


def test_no_slack_section_in_the_policy_writes_the_payload(ctx, verdict, no_slack):
    outcome = notify(ctx, verdict, None, LINK)

    assert outcome.status == "written"
    assert json.loads((ctx.evidence / PAYLOAD_FILE).read_text())["channel"] is None


def test_payload_file_written_when_sent_too(ctx, verdict, slack):
    notify(ctx, verdict, CFG, LINK)

    assert json.loads((ctx.evidence / PAYLOAD_FILE).read_text())["channel"] == "#releases"
    assert json.loads((ctx.evidence / RESPONSE_FILE).read_text())["response"]["ok"] is True


def test_inside_airflow_the_connection_supplies_token_and_base_url(ctx, verdict, no_slack, monkeypatch):
    with SlackServer(token=TOKEN) as server:
        conn = {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": server.url}}
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(conn))
        monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "release_gate")

        outcome = notify(ctx, verdict, CFG, LINK)

    assert outcome.status == "sent"
    assert len(server.top_level()) == 1


def test_outside_airflow_the_connection_is_not_looked_up(ctx, verdict, no_slack, monkeypatch):
    conn = {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": "http://127.0.0.1:9/api/"}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(conn))

    outcome = notify(ctx, verdict, CFG, LINK)

    assert outcome.status == "written"


def test_missing_connection_inside_airflow_means_not_configured(ctx, verdict, no_slack, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "release_gate")

    outcome = notify(ctx, verdict, Slack(channel="#releases", connection_id="no_such_connection"), LINK)

    assert outcome.status == "written"
