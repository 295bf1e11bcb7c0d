"""Slack tells the whole story: the verdict message links the report and the Airflow run, the reasons and the
defect changes follow in its thread, and a re-run of the same run updates that message in place (chat.update)
when its verdict changed and posts nothing when it did not. Real slack_sdk calls against the loopback Slack
server; the run's notification recorded in the gate database (SQLite and PostgreSQL) as the pipeline records it."""

import json

import pytest
import yaml

from releasegate import pipeline
from releasegate.domain.models import Decision, DefectChange, Reason, Severity, Verdict
from releasegate.notify.slack_outbox import deliver_pending
from releasegate.pipeline.outcome import Outcome
from releasegate.records import store
from tests.support.builders import T0
from tests.support.slack_server import SlackServer

TOKEN = "xoxb-test-4242-story"
DAG_RUN = "manual__2026-12-01T10:00:00+00:00"
AIRFLOW = "http://airflow.example:8080"
REPORT = "https://gate.example/shop/1.4.2/release_gate__manual__2026-12-01T10_00_00_00_00/report.html"


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr("releasegate.notify.slack_api.RETRY_BACKOFF_S", 0.01)


@pytest.fixture
def slack(monkeypatch, cli_db):
    with SlackServer(token=TOKEN) as server:
        monkeypatch.setenv("RELEASEGATE_SLACK_TOKEN", TOKEN)
        monkeypatch.setenv("RELEASEGATE_SLACK_BASE_URL", server.url)
        yield server


@pytest.fixture
def in_airflow(monkeypatch):
    """As inside the DAG's notify task: Airflow exports the run into the environment; its base URL is set."""
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "release_gate")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", DAG_RUN)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", AIRFLOW + "/")


def begin(tmp_path, slack: dict):
    (tmp_path / "svc").mkdir()
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump({
        "service": "shop", "source": {"path": "svc"}, "suites": [{"name": "unit", "paths": ["t.py"]}],
        "notify": {"slack": slack}}))
    return pipeline.begin(tmp_path / "gate.yaml", "1.4.2", run_id=f"release_gate__{DAG_RUN}")


@pytest.fixture
def ctx(tmp_path):
    return begin(tmp_path, {"channel": "#releases",
                            "report_url": "https://gate.example/{service}/{version}/{run_id}/report.html"})


def tell(ctx, decision: Decision, reasons=(), defects=()) -> Outcome:
    verdict = Verdict(decision=decision, decided_at=T0, reasons=list(reasons), defects=list(defects))
    outcome = Outcome(run_id=ctx.run_id, service=ctx.service, version=ctx.version, verdict=verdict,
                      report=str(ctx.evidence / "report.html"), evidence_dir=ctx.evidence_dir)
    pipeline.notify(ctx, outcome)
    return outcome


def stored(ctx) -> dict:
    with store.unit_of_work() as uow:
        (row,) = uow.notifications.for_run(ctx.run_id)
    return row


def text_of(message: dict) -> str:
    return json.dumps(message.get("blocks"), ensure_ascii=False) + message.get("text", "")


P95 = Reason(stage="locust", message="p95 over budget on /search", severity=Severity.high, value=312, threshold=250)
DEFECTS = [DefectChange(fingerprint="a" * 32, title="SQL injection in /search", stage="semgrep", state="new"),
           DefectChange(fingerprint="b" * 32, title="flaky checkout", stage="pytest[api]", state="reopened"),
           DefectChange(fingerprint="c" * 32, title="slow login", stage="locust", state="fixed")]


def test_the_message_links_the_report_and_the_run_and_its_thread_has_the_details(slack, in_airflow, ctx):
    tell(ctx, Decision.NO_GO, [P95], DEFECTS)

    (message,) = slack.top_level()
    run_link = f"{AIRFLOW}/dags/release_gate/runs/{DAG_RUN}"
    assert f"<{REPORT}|Open the report> · <{run_link}|Open the Airflow run>" in text_of(message)
    (details,) = slack.replies(message["ts"])
    assert "*locust*: p95 over budget on /search (value 312 vs threshold 250)" in text_of(details)
    assert "1 new, 1 reopened, 1 fixed, 0 waived, 0 still open" in text_of(details)
    assert "SQL injection in /search (semgrep)" in text_of(details) and "slow login (locust)" in text_of(details)
    row = stored(ctx)
    assert (row["status"], row["message_ts"], row["channel_id"], row["shown_decision"]) == (
        "sent", message["ts"], message["channel"], "NO_GO")


def test_outside_airflow_there_is_no_run_link(slack, ctx, monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", AIRFLOW)   # known Airflow, but this run is not one of its tasks

    tell(ctx, Decision.GO)

    (message,) = slack.top_level()
    assert "Open the Airflow run" not in text_of(message) and f"<{REPORT}|Open the report>" in text_of(message)


def test_without_a_base_url_there_is_no_run_link(slack, in_airflow, ctx, monkeypatch):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL")

    tell(ctx, Decision.GO)

    assert "Open the Airflow run" not in text_of(slack.top_level()[0])


def test_without_a_report_url_the_report_is_the_one_the_plugin_serves(slack, in_airflow, tmp_path):
    from plugins.releasegate_plugin import ReleaseGatePlugin

    ctx = begin(tmp_path, {"channel": "#releases"})

    tell(ctx, Decision.GO)

    link = f"{AIRFLOW}/releasegate/runs/{DAG_RUN}/report"
    assert f"<{link}|Open the report>" in text_of(slack.top_level()[0])
    (app,) = ReleaseGatePlugin.fastapi_apps                           # the route the link names is the plugin's
    assert app["url_prefix"] == "/releasegate"
    assert "/runs/{airflow_run_id}/report" in {getattr(r, "path", "") for r in app["app"].routes}


def test_outside_airflow_without_a_report_url_the_report_path_is_text(slack, tmp_path):
    ctx = begin(tmp_path, {"channel": "#releases"})

    tell(ctx, Decision.GO)

    text = text_of(slack.top_level()[0])
    assert f"Report: `{ctx.evidence / 'report.html'}`" in text and "Open the report" not in text


def test_a_rerun_that_changes_the_verdict_updates_the_message_in_place(slack, in_airflow, ctx):
    tell(ctx, Decision.NO_GO, [P95])
    (first,) = slack.top_level()
    first_ts = first["ts"]

    tell(ctx, Decision.GO)

    (message,) = slack.top_level()                                   # still one message, now showing GO
    assert message["ts"] == first_ts and message.get("edited") is True
    assert ":white_check_mark: GO: shop@1.4.2" in text_of(message) and "NO-GO" not in text_of(message)
    (update,) = slack.updates()
    assert (update["channel"], update["ts"]) == (first["channel"], first_ts)
    replies = [text_of(r) for r in slack.replies(first_ts)]
    assert len(replies) == 3 and "p95 over budget" in replies[0]    # the first verdict's details, then:
    assert "the verdict changed from *NO-GO* to *GO*" in replies[1]
    assert "*Reasons*: none." in replies[2]
    assert (stored(ctx)["shown_decision"], stored(ctx)["message_ts"]) == ("GO", first_ts)


def test_a_rerun_with_the_same_verdict_posts_nothing(slack, in_airflow, ctx):
    tell(ctx, Decision.NO_GO, [P95])
    before = len(slack.requests)

    outcome = tell(ctx, Decision.NO_GO, [P95])

    assert len(slack.requests) == before and outcome.notification == "sent"
    assert json.loads((ctx.evidence / "slack-response.json").read_text())["action"] == "unchanged"
    assert len(slack.top_level()) == 1 and stored(ctx)["shown_decision"] == "NO_GO"


def test_an_update_slack_did_not_take_is_made_later_by_the_outbox_in_place(slack, in_airflow, ctx):
    tell(ctx, Decision.NO_GO, [P95])
    (first,) = slack.top_level()
    slack.fail_next(503, times=4)

    tell(ctx, Decision.GO)
    pending = stored(ctx)
    results = deliver_pending()

    assert (pending["status"], pending["shown_decision"], pending["message_ts"]) == ("failed", "NO_GO", first["ts"])
    assert [(r["run_id"], r["status"]) for r in results] == [(ctx.run_id, "sent")]
    (message,) = slack.top_level()
    assert message["ts"] == first["ts"] and ":white_check_mark: GO" in text_of(message)
    assert "changed from *NO-GO* to *GO*" in text_of(slack.replies(first["ts"])[1])
    assert stored(ctx)["shown_decision"] == "GO"


def test_hostile_names_stay_text_in_the_thread_and_the_note(slack, in_airflow, ctx):
    hostile = Reason(stage="<!channel>", message="<@U1> & <https://evil.example|click>", severity=Severity.high)
    tell(ctx, Decision.NO_GO, [hostile], [DefectChange(fingerprint="d" * 32, title="<!here>", state="new")])
    tell(ctx, Decision.INCONCLUSIVE, [hostile])

    bodies = [r.raw.decode("utf-8") for r in slack.requests]
    assert len(bodies) == 5 and not any("<!" in b or "<@" in b or "<https://evil" in b for b in bodies)
    assert "&lt;@U1&gt; &amp; &lt;https://evil.example|click&gt;" in text_of(slack.replies(slack.top_level()[0]["ts"])[0])
