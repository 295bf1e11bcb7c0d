"""Every run that started ends with a recorded verdict: a fault of the gate in any step (a crash, a dropped
database, a full disk) is that step's error, the verdict INCONCLUSIVE naming it, the service stopped.

A small real service (a Python HTTP server) and a one-test suite keep each run to a few seconds."""

from __future__ import annotations

import errno
import json

import pytest
from sqlalchemy.exc import OperationalError

from persistence import uow as uow_module
from releasegate import pipeline
from releasegate.atomic import Staged
from releasegate.domain.models import Decision
from releasegate.records import store
from releasegate.report import MANIFEST
from tests.conftest import _empty_pg_schema
from tests.support.faults import database_outage, descendants, left_running, tiny_policy


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(uow_module, "RETRY_PAUSES_S", (0.05, 0.1))


@pytest.fixture
def started(monkeypatch) -> list:
    """Every environment provisioned in the test, so it can check each process is gone."""
    envs = []
    real = pipeline.provision

    def recording(policy, ctx):
        envs.append(real(policy, ctx))
        return envs[-1]

    monkeypatch.setattr(pipeline, "provision", recording)
    return envs


@pytest.fixture
def pg_gate(pg_url, monkeypatch):
    """The session's PostgreSQL database, emptied, as the gate database."""
    _empty_pg_schema(pg_url)
    monkeypatch.setenv("RELEASEGATE_DB_URL", pg_url)
    store.forget_engines()
    yield pg_url
    store.forget_engines()


def pids(envs) -> list[int]:
    return [e.pid for e in envs] + [d.pid for e in envs for d in e.dependencies]


def reasons(outcome) -> list[str]:
    return [f"{r.stage}: {r.message}" for r in outcome.verdict.reasons]


def stored(run_id: str) -> tuple[dict, dict | None, list[dict]]:
    with store.unit_of_work() as uow:
        return uow.runs.get(run_id), uow.verdicts.get(run_id), uow.audit.events(run_id=run_id, kind="verdict")


def test_the_tiny_service_is_go_when_nothing_fails(cli_db, tmp_path, started):
    outcome = pipeline.run_gate(tiny_policy(tmp_path), "1.0.0")

    run, verdict, _events = stored(outcome.run_id)
    assert outcome.verdict.decision is Decision.GO, reasons(outcome)
    assert (run["status"], run["decision"], verdict["decision"]) == ("finished", "GO", "GO")
    assert left_running(pids(started)) == [] and len(started) == 1


def test_a_crash_inside_a_stage_is_that_stages_error(cli_db, tmp_path, monkeypatch, started):
    def crash(*_args):
        raise RuntimeError("the stage runner blew up")

    monkeypatch.setattr("releasegate.stages.pytest_suites.run", crash)

    outcome = pipeline.run_gate(tiny_policy(tmp_path), "1.0.0")

    run, verdict, _events = stored(outcome.run_id)
    assert outcome.verdict.decision is Decision.INCONCLUSIVE
    assert any(r.startswith("pytest[unit]:") and "RuntimeError: the stage runner blew up" in r
               for r in reasons(outcome)), reasons(outcome)
    assert (run["status"], verdict["decision"]) == ("finished", "INCONCLUSIVE")
    assert left_running(pids(started)) == []


def test_a_failed_save_of_the_provision_result_stops_the_service(cli_db, tmp_path, monkeypatch, started):
    real = pipeline._store_result

    def dropped(uow, ctx, result):
        if result.stage == "provision":
            raise OperationalError("INSERT INTO stage_results", {}, Exception("server closed the connection"))
        real(uow, ctx, result)

    monkeypatch.setattr(pipeline, "_store_result", dropped)
    ctx = pipeline.begin(tiny_policy(tmp_path), "1.0.0")

    env = pipeline.provision_service(ctx)

    assert env is None and len(started) == 1
    assert left_running(pids(started)) == [], "the service outlived a provision result that was not saved"
    saved = json.loads((ctx.evidence / "stages" / "provision.json").read_text())
    assert saved["status"] == "error" and "could not be saved" in saved["error"] and "server closed" in saved["error"]
    outcome = pipeline.conclude(ctx)
    assert outcome.verdict.decision is Decision.INCONCLUSIVE
    assert any("provision" in r and "could not be saved" in r for r in reasons(outcome))


@pytest.mark.postgres
def test_database_dropped_between_steps_gives_a_recorded_inconclusive(pg_gate, tmp_path, started):
    ctx = pipeline.begin(tiny_policy(tmp_path), "1.0.0")
    env = pipeline.provision_service(ctx)
    with database_outage(pg_gate) as outage:
        outage.start()
        result = pipeline.run_stage(ctx, "pytest[unit]", env)  # the suite passes; saving it cannot
        outage.restore()
    pipeline.finish(ctx, env)
    outcome = pipeline.conclude(ctx, [result])
    run, verdict, events = stored(ctx.run_id)

    assert result.status.value == "error" and "could not be saved" in result.error
    assert "not currently accepting connections" in result.error or "terminating connection" in result.error
    assert outcome.recorded and outcome.verdict.decision is Decision.INCONCLUSIVE
    assert (run["status"], run["decision"], verdict["decision"]) == ("finished", "INCONCLUSIVE", "INCONCLUSIVE")
    assert any("pytest[unit]" in r and "gate database failed" in r for r in reasons(outcome)), reasons(outcome)
    assert len(events) == 1 and left_running(pids(started)) == []


@pytest.mark.postgres
def test_database_gone_at_the_end_still_gives_an_inconclusive_naming_it(pg_gate, tmp_path, started):
    ctx = pipeline.begin(tiny_policy(tmp_path), "1.0.0")
    env = pipeline.provision_service(ctx)
    result = pipeline.run_stage(ctx, "pytest[unit]", env)
    pipeline.finish(ctx, env)
    with database_outage(pg_gate) as outage:
        outage.start()
        outcome = pipeline.conclude(ctx, [result])

    assert result.status.value == "passed"
    assert not outcome.recorded and outcome.verdict.decision is Decision.INCONCLUSIVE
    assert any(r.startswith("gate:verdict:") and "could not be recorded in the gate database" in r
               for r in reasons(outcome)), reasons(outcome)
    on_disk = json.loads((ctx.evidence / "verdict.json").read_text())
    assert on_disk["decision"] == "INCONCLUSIVE" and left_running(pids(started)) == []


def test_a_full_disk_at_the_report_is_recorded_inconclusive_without_a_manifest(cli_db, tmp_path, monkeypatch):
    real = Staged.add

    def full(self, path, data):
        if path.name == "report.html":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(self, path, data)

    monkeypatch.setattr(Staged, "add", full)
    ctx = pipeline.begin(tiny_policy(tmp_path, environment=False), "1.0.0")
    pipeline.run_stage(ctx, "pytest[unit]", None)

    outcome = pipeline.conclude(ctx)

    run, verdict, _events = stored(ctx.run_id)
    assert outcome.verdict.decision is Decision.INCONCLUSIVE and outcome.recorded
    assert verdict["decision"] == "INCONCLUSIVE" and verdict["manifest_sha256"] == ""
    assert any(r.startswith("gate:report:") and "No space left on device" in r for r in reasons(outcome))
    assert json.loads((ctx.evidence / "verdict.json").read_text())["decision"] == "INCONCLUSIVE"
    assert not (ctx.evidence / MANIFEST).exists() and not (ctx.evidence / "report.html").exists()
    assert not [p for p in ctx.evidence.rglob(".tmp-*")]


def test_conclude_runs_again_to_the_same_verdict(cli_db, tmp_path):
    ctx = pipeline.begin(tiny_policy(tmp_path, environment=False), "1.0.0")
    pipeline.run_stage(ctx, "pytest[unit]", None)

    first = pipeline.conclude(ctx)
    manifest = (ctx.evidence / MANIFEST).read_text()
    again = pipeline.conclude(ctx)

    _run, verdict, events = stored(ctx.run_id)
    assert first.verdict.decision is again.verdict.decision is Decision.GO
    assert (ctx.evidence / MANIFEST).read_text() == manifest and len(events) == 1
    assert verdict["manifest_sha256"] and verdict["decision"] == "GO"


def test_a_run_that_cannot_be_recorded_does_not_start(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_DB_URL", "postgresql://postgres@127.0.0.1:1/none")
    store.forget_engines()
    already = {p.pid for p in descendants()}  # servers other tests' fixtures keep running
    try:
        with pytest.raises(pipeline.RunNotStarted, match="could not be recorded: the gate database failed"):
            pipeline.run_gate(tiny_policy(tmp_path), "1.0.0")
    finally:
        store.forget_engines()
    assert [p for p in descendants() if p.pid not in already] == []


def test_result_task_of_a_run_that_never_started_fails_naming_open_run():
    from airflow.sdk.exceptions import AirflowFailException

    from releasegate.airflow_glue import verdict_json

    with pytest.raises(AirflowFailException, match="open_run failed before the run started"):
        verdict_json(None)


def test_result_task_answers_inconclusive_when_compile_report_left_no_verdict(cli_db, tmp_path):
    from releasegate.airflow_glue import verdict_json

    ctx = pipeline.begin(tiny_policy(tmp_path, environment=False), "1.0.0")
    pipeline.run_stage(ctx, "pytest[unit]", None)  # compile_report then failed before it wrote anything

    answer = verdict_json(ctx.model_dump(mode="json"))

    run, verdict, _events = stored(ctx.run_id)
    assert answer["decision"] == "INCONCLUSIVE"
    assert [r["stage"] for r in answer["reasons"]] == ["gate:conclude"]
    assert "compile_report left no verdict" in answer["reasons"][0]["message"]
    assert (run["status"], verdict["decision"]) == ("finished", "INCONCLUSIVE")
