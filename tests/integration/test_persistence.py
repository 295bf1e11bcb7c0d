"""Repositories and unit of work on SQLite and PostgreSQL: a retried write gives the same rows."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from persistence import UnitOfWork, engine_from_url, resolve_url
from persistence.engine import connection_to_url
from persistence.migrate import ensure_schema
from persistence.tables import FindingRow, NotificationRow, Run, StageResultRow, TestCaseRow, VerdictRow
from releasegate.domain.models import Decision, Finding, Reason, Severity, StageResult, Status, Verdict
from tests.support.builders import stage_result

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def run_dict(run_id: str = "rg-1", version: str = "1.0.0", started: datetime = T0) -> dict:
    return {"run_id": run_id, "service": "orders", "version": version, "policy_path": "/p/gate.yaml",
            "policy_digest": "sha256:abc", "evidence_dir": f"/e/{run_id}", "started_at": started,
            "status": "running", "airflow_dag_run_id": f"manual__{run_id}"}


def finding(rule: str, severity: Severity = Severity.high) -> Finding:
    return Finding(kind="sast", rule=rule, severity=severity, title=f"{rule} found", location="app/db.py",
                   evidence="cursor.execute(f'...')", fingerprint=f"fp-{rule}", data={"cwe": ["CWE-89"]})


def stage_dict(name: str = "semgrep", rules: tuple[str, ...] = ("sqli", "xss")) -> dict:
    result = stage_result(name, "sast", Status.failed, started=T0, seconds=9, attempts=2,
                          summary=f"{name}: {len(rules)} findings", findings=[finding(r) for r in rules])
    return result.model_dump(mode="json")


def suite_dict(cases: list[dict]) -> dict:
    result = stage_result("pytest[unit]", "suite", started=T0)
    return result.model_dump(mode="json") | {"test_cases": cases}


def count(engine, model) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def write(engine, action) -> None:
    with UnitOfWork(engine) as uow:
        action(uow)
        uow.commit()


def snapshot(engine) -> dict:
    with UnitOfWork(engine) as uow:
        return {"run": uow.runs.get("rg-1"), "stages": uow.stages.for_run("rg-1"),
                "cases": uow.stages.test_cases("rg-1"), "verdict": uow.verdicts.get("rg-1"),
                "counts": [count(engine, m) for m in (Run, StageResultRow, FindingRow, TestCaseRow, VerdictRow)]}


# --- runs, stages, findings, test cases, verdicts -------------------------------------------------------------

def write_whole_run(uow: UnitOfWork) -> None:
    uow.runs.upsert(run_dict())
    uow.stages.upsert("rg-1", stage_dict())
    uow.stages.upsert("rg-1", suite_dict([{"node_id": "tests/test_a.py::test_ok", "outcome": "passed",
                                           "duration_s": 0.2, "attempts": 1, "message": ""},
                                          {"node_id": "tests/test_a.py::test_flaky", "outcome": "flaky",
                                           "duration_s": 1.5, "attempts": 2, "message": "passed on rerun"}]))
    verdict = Verdict(decision=Decision.NO_GO, decided_at=T0 + timedelta(minutes=5), policy_digest="sha256:abc",
                      reasons=[Reason(stage="semgrep", message="sqli blocks", severity=Severity.high)])
    uow.verdicts.upsert("rg-1", verdict.model_dump(mode="json") | {
        "tool_versions": {"semgrep": "1.100.0"}, "manifest_sha256": "f" * 64, "report_path": "/e/rg-1/report.html"})


def test_writing_the_same_run_twice_keeps_the_same_rows(engine):
    write(engine, write_whole_run)
    first = snapshot(engine)
    write(engine, write_whole_run)

    assert snapshot(engine) == first
    assert first["counts"] == [1, 2, 2, 2, 1]


def test_stages_read_back_as_stage_results(engine):
    write(engine, write_whole_run)

    with UnitOfWork(engine) as uow:
        stages = {s["stage"]: StageResult.model_validate(s) for s in uow.stages.for_run("rg-1")}
        cases = uow.stages.test_cases("rg-1", suite="pytest[unit]")

    assert stages["semgrep"] == StageResult.model_validate(stage_dict())
    assert stages["semgrep"].started.tzinfo is not None
    assert [(c["node_id"], c["outcome"], c["attempts"]) for c in cases] == [
        ("tests/test_a.py::test_flaky", "flaky", 2), ("tests/test_a.py::test_ok", "passed", 1)]


def test_rerun_of_a_stage_replaces_its_findings_and_test_cases(engine):
    write(engine, write_whole_run)

    write(engine, lambda uow: (uow.stages.upsert("rg-1", stage_dict(rules=("sqli",))),
                               uow.stages.upsert("rg-1", suite_dict([]))))

    with UnitOfWork(engine) as uow:
        findings = uow.stages.findings("rg-1")
        cases = uow.stages.test_cases("rg-1")
    assert [(f["stage"], f["fingerprint"]) for f in findings] == [("semgrep", "fp-sqli")]
    assert cases == []


def test_a_fingerprint_another_stage_held_moves_to_the_stage_that_now_reports_it(engine):
    write(engine, lambda uow: (uow.runs.upsert(run_dict()), uow.stages.upsert("rg-1", stage_dict("semgrep")),
                               uow.stages.upsert("rg-1", stage_dict("bandit", rules=("b1",)))))

    write(engine, lambda uow: uow.stages.upsert("rg-1", stage_dict("bandit", rules=("xss", "b2"))))

    with UnitOfWork(engine) as uow:
        findings = [(f["stage"], f["fingerprint"]) for f in uow.stages.findings("rg-1")]
    assert findings == [("bandit", "fp-b2"), ("bandit", "fp-xss"), ("semgrep", "fp-sqli")]


def test_verdict_round_trips(engine):
    write(engine, write_whole_run)

    with UnitOfWork(engine) as uow:
        verdict = uow.verdicts.get("rg-1")

    assert verdict["decision"] == "NO_GO"
    assert verdict["reasons"][0]["message"] == "sqli blocks"
    assert verdict["decided_at"] == T0 + timedelta(minutes=5)
    assert verdict["tool_versions"] == {"semgrep": "1.100.0"}


def test_unit_of_work_rolls_back_unless_committed(engine):
    with UnitOfWork(engine) as uow:
        uow.runs.upsert(run_dict())

    assert count(engine, Run) == 0


def test_finish_and_latest_runs(engine):
    def two_runs(uow: UnitOfWork) -> None:
        uow.runs.upsert(run_dict("rg-1", "1.0.0", T0))
        uow.runs.upsert(run_dict("rg-2", "1.1.0", T0 + timedelta(hours=1)))
        uow.runs.finish("rg-1", "finished", "GO", T0 + timedelta(minutes=3))
    write(engine, two_runs)

    with UnitOfWork(engine) as uow:
        latest = [r["run_id"] for r in uow.runs.latest(service="orders")]
        only_1_0 = [r["run_id"] for r in uow.runs.latest(version="1.0.0")]
        first = uow.runs.get("rg-1")
        with pytest.raises(LookupError, match="runs.upsert"):
            uow.runs.finish("rg-missing", "finished", None, T0)

    assert latest == ["rg-2", "rg-1"] and only_1_0 == ["rg-1"]
    assert (first["status"], first["decision"], first["finished_at"]) == ("finished", "GO", T0 + timedelta(minutes=3))


def test_datetimes_come_back_in_utc_whatever_offset_went_in(engine):
    tokyo = datetime(2026, 11, 24, 21, 0, tzinfo=timezone(timedelta(hours=9)))
    write(engine, lambda uow: uow.runs.upsert(run_dict(started=tokyo)))

    with UnitOfWork(engine) as uow:
        started = uow.runs.get("rg-1")["started_at"]

    assert started == tokyo and started.utcoffset() == timedelta(0)


# --- defects ------------------------------------------------------------------------------------------------

def seen(finding_: Finding, stage: str = "semgrep") -> dict:
    return finding_.model_dump(mode="json") | {"stage": stage}


def observe(engine, run_id: str, at: datetime, found: list[dict], completed: set[str]) -> list[dict]:
    with UnitOfWork(engine) as uow:
        uow.runs.upsert(run_dict(run_id, started=at))
        transitions = uow.defects.observe("orders", run_id, found, completed, at)
        uow.commit()
    return sorted(transitions, key=lambda t: t["fingerprint"])


def defects(engine) -> dict[str, tuple[str, int]]:
    with UnitOfWork(engine) as uow:
        return {d["fingerprint"]: (d["state"], d["occurrences"]) for d in uow.defects.for_service("orders")}


def test_defect_lifecycle_new_recurring_fixed_reopened(engine):
    sqli, cve = seen(finding("sqli")), seen(finding("CVE-1"), stage="pip_audit")
    both = {"semgrep", "pip_audit"}
    t = [T0 + timedelta(days=i) for i in range(4)]

    run1 = observe(engine, "r1", t[0], [sqli, cve], both)
    run2 = observe(engine, "r2", t[1], [sqli], {"semgrep"})        # pip_audit did not complete
    run2_again = observe(engine, "r2", t[1], [sqli], {"semgrep"})  # a retried task
    after_run2 = defects(engine)
    run3 = observe(engine, "r3", t[2], [], both)
    run4 = observe(engine, "r4", t[3], [sqli], {"semgrep"})

    assert run1 == [{"fingerprint": "fp-CVE-1", "from": None, "to": "new"},
                    {"fingerprint": "fp-sqli", "from": None, "to": "new"}]
    assert run2 == [{"fingerprint": "fp-sqli", "from": "new", "to": "recurring"}]
    assert run2_again == []
    assert after_run2 == {"fp-sqli": ("recurring", 2), "fp-CVE-1": ("new", 1)}
    assert run3 == [{"fingerprint": "fp-CVE-1", "from": "new", "to": "fixed"},
                    {"fingerprint": "fp-sqli", "from": "recurring", "to": "fixed"}]
    assert run4 == [{"fingerprint": "fp-sqli", "from": "fixed", "to": "reopened"}]
    assert defects(engine) == {"fp-sqli": ("reopened", 3), "fp-CVE-1": ("fixed", 1)}


def test_defects_of_a_stage_that_did_not_complete_are_untouched(engine):
    observe(engine, "r1", T0, [seen(finding("sqli"))], {"semgrep"})

    transitions = observe(engine, "r2", T0 + timedelta(days=1), [], {"pip_audit"})

    assert transitions == []
    assert defects(engine) == {"fp-sqli": ("new", 1)}


def test_a_retry_that_now_sees_the_defect_undoes_its_own_fix_without_double_counting(engine):
    observe(engine, "r1", T0, [seen(finding("sqli"))], {"semgrep"})
    observe(engine, "r2", T0 + timedelta(days=1), [], {"semgrep"})  # first attempt: fixed

    transitions = observe(engine, "r2", T0 + timedelta(days=1), [seen(finding("sqli"))], {"semgrep"})

    assert transitions == [{"fingerprint": "fp-sqli", "from": "fixed", "to": "recurring"}]
    assert defects(engine) == {"fp-sqli": ("recurring", 2)}


def test_a_late_retry_of_an_older_run_does_not_fix_what_a_newer_run_saw(engine):
    observe(engine, "r1", T0, [seen(finding("sqli"))], {"semgrep"})
    observe(engine, "r2", T0 + timedelta(days=1), [seen(finding("sqli"))], {"semgrep"})

    transitions = observe(engine, "r0", T0 - timedelta(days=1), [], {"semgrep"})

    assert transitions == []
    assert defects(engine) == {"fp-sqli": ("recurring", 2)}


# --- notifications ------------------------------------------------------------------------------------------

def test_notification_outbox_keeps_one_row_per_run_and_channel(engine):
    payload = {"text": "orders 1.0.0: NO_GO"}

    def first_attempt(uow: UnitOfWork) -> None:
        uow.runs.upsert(run_dict())
        uow.notifications.upsert("rg-1", "slack", payload, "failed", 1, {"error": "timeout"})
    write(engine, first_attempt)
    write(engine, lambda uow: uow.notifications.upsert("rg-1", "slack", payload, "sent", 2, {"ok": True}))
    write(engine, lambda uow: uow.notifications.upsert("rg-1", "slack", payload, "sent", 2, {"ok": True}))

    with UnitOfWork(engine) as uow:
        sent = uow.notifications.get("rg-1", "slack")
    assert count(engine, NotificationRow) == 1
    assert (sent["status"], sent["attempts"], sent["response"], sent["payload"]) == ("sent", 2, {"ok": True}, payload)


# --- engine and URL -----------------------------------------------------------------------------------------

def test_sqlite_engine_enforces_foreign_keys_and_uses_wal(sqlite_url):
    engine = engine_from_url(sqlite_url)
    with engine.connect() as connection:
        pragmas = [connection.execute(text(f"PRAGMA {p}")).scalar() for p in ("foreign_keys", "journal_mode",
                                                                             "busy_timeout")]
    engine.dispose()

    assert pragmas == [1, "wal", 30000]


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_postgres_urls_use_psycopg2_and_pass_options_to_it(scheme):
    engine = engine_from_url(f"{scheme}://gate@db.internal:5432/gate?sslmode=require")

    assert (engine.dialect.driver, engine.url.query, engine.pool._pre_ping) == ("psycopg2", {"sslmode": "require"}, True)


def test_url_from_environment_first_then_default_sqlite(tmp_path, monkeypatch):
    default = tmp_path / "home" / "gate.db"
    from_default = resolve_url(default)
    monkeypatch.setenv("RELEASEGATE_DB_URL", "postgresql://gate@db/gate")

    assert from_default == f"sqlite:///{default}" and default.parent.is_dir()
    assert resolve_url(default) == "postgresql://gate@db/gate"


def test_url_from_the_airflow_connection(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AIRFLOW_CONN_RELEASEGATE_DB", "postgresql://gate:s3cret@db:5433/gate?sslmode=verify-full")

    assert resolve_url(tmp_path / "gate.db") == "postgresql+psycopg2://gate:s3cret@db:5433/gate?sslmode=verify-full"


def test_sqlite_airflow_connection_becomes_a_sqlite_url():
    class Conn:
        conn_type, host, schema = "sqlite", "/data/gate.db", None

    assert connection_to_url(Conn()) == "sqlite:////data/gate.db"


def test_concurrent_read_then_write_units_of_work_queue_on_sqlite(sqlite_url):
    """Two tasks recording defects at once: the second waits for the first instead of 'database is locked'."""
    ensure_schema(sqlite_url)
    engine = engine_from_url(sqlite_url)
    write(engine, lambda uow: [uow.runs.upsert(run_dict(r)) for r in ("r1", "r2")])

    def record(run_id: str) -> None:
        with UnitOfWork(engine) as uow:
            uow.defects.for_service("orders")  # read first ...
            time.sleep(0.2)                    # ... while the other task writes
            uow.defects.observe("orders", run_id, [seen(finding(run_id))], {"semgrep"}, T0)
            uow.commit()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(record, ["r1", "r2"]))  # re-raises a worker's error
    engine.dispose()

    assert count_defects(sqlite_url) == 2


def count_defects(url: str) -> int:
    engine = engine_from_url(url)
    with UnitOfWork(engine) as uow:
        total = len(uow.defects.for_service("orders"))
    engine.dispose()
    return total


def test_sslmode_comes_from_configuration(monkeypatch, tmp_path):
    from persistence import resolve_url

    monkeypatch.setenv("RELEASEGATE_DB_URL", "postgresql+psycopg2://gate:pw@db.internal:5432/releasegate")
    monkeypatch.setenv("RELEASEGATE_DB_SSLMODE", "verify-full")
    assert resolve_url(tmp_path / "x.db").endswith("/releasegate?sslmode=verify-full")
    monkeypatch.setenv("RELEASEGATE_DB_SSLMODE", "yes-please")
    with pytest.raises(ValueError, match="not a libpq sslmode"):
        resolve_url(tmp_path / "x.db")


@pytest.mark.postgres
def test_sslmode_require_is_enforced_by_the_driver(monkeypatch, pg_url):
    """The local server has no TLS: 'require' must fail to connect rather than fall back to plain text."""
    from sqlalchemy.exc import OperationalError

    from persistence import engine_from_url, resolve_url

    monkeypatch.setenv("RELEASEGATE_DB_URL", pg_url)
    monkeypatch.setenv("RELEASEGATE_DB_SSLMODE", "require")
    engine = engine_from_url(resolve_url(Path("unused.db")))
    with pytest.raises(OperationalError, match="SSL"):
        with engine.connect():
            pass
