"""The DAG's failure notifier: a gate run that broke before its verdict (open_run or compile_report failed) tells
Slack through the Slack provider's SlackNotifier and the gate's Slack connection; a run that failed on a verdict
it already told posts nothing more. Called as Airflow calls a DAG's on_failure_callback: with the template context
the DAG processor builds from the task that failed last (RuntimeTaskInstance.get_template_context)."""

import json
import uuid
from pathlib import Path

import pendulum
import pytest
import yaml

from releasegate.notify.failure import failure_message, on_gate_failure
from tests.support.slack_server import SlackServer

TOKEN = "xoxb-test-4242-failure"
DAG_RUN = "manual__2026-12-01T10:00:00+00:00"
AIRFLOW = "http://airflow.example:8080"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dag(tmp_path_factory):
    import os

    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home-failure")))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "release_gate.py"))
    assert bag.import_errors == {}
    return bag.dags["release_gate"]


@pytest.fixture
def slack(monkeypatch):
    """The gate's Slack connection (as the Airflow connection slack_api_default) at the loopback server."""
    with SlackServer(token=TOKEN) as server:
        conn = {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": server.url}}
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(conn))
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", AIRFLOW)
        monkeypatch.delenv("RELEASEGATE_SLACK_FAILURE_CHANNEL", raising=False)
        yield server


def failure_context(dag, failed_task: str, conf: dict) -> dict:
    """What the DAG processor passes a DAG's on_failure_callback (airflow/dag_processing/processor.py)."""
    from airflow.sdk.api.datamodels._generated import DagRun, TaskInstance, TIRunContext
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    now = pendulum.now("UTC")
    dag_run = DagRun(dag_id=dag.dag_id, run_id=DAG_RUN, logical_date=None, data_interval_start=None,
                     data_interval_end=None, run_after=now, start_date=now, end_date=now, run_type="manual",
                     state="failed", conf=conf, consumed_asset_events=[], partition_key=None)
    last_ti = TaskInstance(id=uuid.uuid4(), task_id=failed_task, dag_id=dag.dag_id, run_id=DAG_RUN, try_number=1,
                           dag_version_id=uuid.uuid4())
    task = dag.get_task(failed_task)
    runtime_ti = RuntimeTaskInstance.model_construct(
        **last_ti.model_dump(exclude_unset=True), task=task,
        _ti_context_from_server=TIRunContext.model_construct(dag_run=dag_run, max_tries=task.retries))
    context = runtime_ti.get_template_context()
    context["reason"] = "task_failure"
    return context


def policy(tmp_path, channel: str = "#releases") -> str:
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump({
        "service": "shop", "source": {"path": "."}, "suites": [{"name": "unit", "paths": ["t.py"]}],
        "notify": {"slack": {"channel": channel}}}))
    return str(tmp_path / "gate.yaml")


def text_of(body: dict) -> str:
    return json.dumps(body.get("blocks"), ensure_ascii=False) + body.get("text", "")


def test_a_run_that_broke_in_open_run_tells_slack_the_run_and_the_task(dag, slack, tmp_path, cli_db):
    context = failure_context(dag, "open_run", {"service": "shop", "version": "1.4.2", "policy": policy(tmp_path)})

    callbacks = dag.on_failure_callback                     # the DAG's own callback, called as Airflow calls it
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        callback(context)

    (message,) = slack.top_level()
    (request,) = [r for r in slack.requests if r.method == "chat.postMessage"]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}" and request.body["channel"] == "#releases"
    text = text_of(message)
    assert "The release gate broke before it could tell its verdict" in text and "shop@1.4.2" in text
    assert f"run `{DAG_RUN}`" in text and "failed last: `open_run`" in text   # no supervisor: the last one
    assert f"<{AIRFLOW}/dags/release_gate/runs/{DAG_RUN}|Open the Airflow run>" in text
    assert f"<{AIRFLOW}/dags/release_gate/runs/{DAG_RUN}/tasks/open_run|the log of open_run>" in text


def test_a_broken_compile_report_tells_slack_even_though_enforce_failed_last(dag, slack, tmp_path, cli_db):
    context = failure_context(dag, "enforce_verdict", {"service": "shop", "version": "1.4.2",
                                                       "policy": policy(tmp_path)})

    assert on_gate_failure(context, ROOT) == "told"          # no notification recorded: the verdict was not told
    assert "failed last: `enforce_verdict`" in text_of(slack.top_level()[0])


def test_a_run_whose_verdict_was_told_posts_nothing_more(dag, slack, tmp_path, cli_db):
    from datetime import UTC, datetime

    from releasegate.records import store

    with store.unit_of_work() as uow:
        uow.runs.upsert({"run_id": f"release_gate__{DAG_RUN}", "service": "shop", "version": "1.4.2",
                         "policy_path": "gate.yaml", "policy_digest": "", "evidence_dir": str(tmp_path),
                         "started_at": datetime.now(UTC), "status": "finished"})
        uow.notifications.upsert(f"release_gate__{DAG_RUN}", "#releases", {}, "sent", 1, None)
        uow.commit()
    context = failure_context(dag, "enforce_verdict", {"service": "shop", "version": "1.4.2",
                                                       "policy": policy(tmp_path)})

    assert on_gate_failure(context, ROOT) == "verdict told"
    assert slack.requests == []


def test_an_unreadable_policy_falls_back_to_the_failure_channel(dag, slack, tmp_path, cli_db, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_SLACK_FAILURE_CHANNEL", "#gate-ops")
    (tmp_path / "gate.yaml").write_text("service: [unclosed\n")
    context = failure_context(dag, "open_run", {"service": "shop", "version": "1.4.2",
                                                "policy": str(tmp_path / "gate.yaml")})

    assert on_gate_failure(context, ROOT) == "told"
    (request,) = slack.requests
    assert request.body["channel"] == "#gate-ops" and "shop@1.4.2" in text_of(request.body)


def test_the_failure_message_keeps_hostile_values_text(slack):
    message = failure_message("release_gate", "manual__<!here>", {"service": "<@U1>", "version": "1.0<!channel>"},
                              ["open_run"], "task_failure", "open_run")

    assert not any(c in json.dumps(message) for c in ("<!", "<@"))
    assert "&lt;@U1&gt;@1.0&lt;!channel&gt;" in text_of(message) and "manual__&lt;!here&gt;" in text_of(message)


def test_no_channel_anywhere_posts_nothing_and_says_why(dag, slack, tmp_path, cli_db, caplog):
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump({
        "service": "shop", "source": {"path": "."}, "suites": [{"name": "unit", "paths": ["t.py"]}]}))
    context = failure_context(dag, "open_run", {"service": "shop", "version": "1.4.2",
                                                "policy": str(tmp_path / "gate.yaml")})

    with caplog.at_level("WARNING", logger="releasegate"):
        assert on_gate_failure(context, ROOT) == "no channel"
    assert slack.requests == [] and "RELEASEGATE_SLACK_FAILURE_CHANNEL is not set" in caplog.text


def test_slack_refusing_the_token_is_logged_not_raised(dag, slack, tmp_path, cli_db, monkeypatch, caplog):
    conn = {"conn_type": "slack", "password": "xoxb-wrong-0000-zzzz", "extra": {"base_url": slack.url}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(conn))
    context = failure_context(dag, "open_run", {"service": "shop", "version": "1.4.2", "policy": policy(tmp_path)})

    with caplog.at_level("WARNING", logger="releasegate"):
        assert on_gate_failure(context, ROOT).startswith("failed")
    assert "invalid_auth" in caplog.text and "xoxb-wrong-0000-zzzz" not in caplog.text


class DagProcessorComms:
    """Stands where the DAG processor's channel to its manager stands in a callback (task_runner.SUPERVISOR_COMMS):
    answers GetTaskStates with the states given, as the execution API's /task-instances/states does."""

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states
        self.asked: list = []

    def send(self, msg):
        from airflow.sdk.execution_time.comms import GetTaskStates, TaskStatesResult

        assert isinstance(msg, GetTaskStates)
        self.asked.append((msg.dag_id, msg.run_ids))
        return TaskStatesResult(task_states={DAG_RUN: self.states})


@pytest.fixture
def comms(monkeypatch):
    from airflow.sdk.execution_time import task_runner

    def install(states: dict[str, str]) -> DagProcessorComms:
        channel = DagProcessorComms(states)
        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", channel, raising=False)
        return channel

    return install


def test_with_airflow_telling_the_states_every_failed_task_is_named(dag, slack, tmp_path, cli_db, comms):
    channel = comms({"open_run": "failed", "provision": "upstream_failed", "verdict": "failed",
                     "notify_no_go": "upstream_failed", "enforce_verdict": "upstream_failed"})
    context = failure_context(dag, "verdict", {"service": "shop", "version": "1.4.2", "policy": policy(tmp_path)})

    assert on_gate_failure(context, ROOT) == "told"
    assert channel.asked == [("release_gate", [DAG_RUN])]
    assert "failed task(s): `open_run`, `verdict`" in text_of(slack.top_level()[0])


def test_with_airflow_telling_a_notify_task_succeeded_nothing_more_is_posted(dag, slack, tmp_path, cli_db, comms):
    comms({"open_run": "success", "compile_report": "success", "notify_no_go": "success",
           "notify_go": "skipped", "verdict": "success", "enforce_verdict": "failed"})
    context = failure_context(dag, "enforce_verdict", {"service": "shop", "version": "1.4.2",
                                                       "policy": policy(tmp_path)})

    assert on_gate_failure(context, ROOT) == "verdict told"
    assert slack.requests == []
