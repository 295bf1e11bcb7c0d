"""Faults of the gate's own footing during a real CLI run of the healthy demo 1.0.0 (GO when nothing fails):
the gate database dropped mid-run, the database gone to the end, the disk full when the report is written.

Never GO; exit 3 with the fault named and no traceback; a verdict row whenever the database is reachable at
the end; no process of the run left behind. The database is PostgreSQL (taken away with ALLOW_CONNECTIONS
false and every session terminated); the full disk is RLIMIT_FSIZE set on the running gate (prlimit)."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest

from releasegate.records import store
from releasegate.report import MANIFEST
from tests.conftest import _empty_pg_schema
from tests.support.faults import CliRun, database_outage, processes_of

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
RUN_TIMEOUT_S = 420
FILE_SIZE_LIMIT = 20_000  # bytes: above every stage's own files in this run, below report.html and evidence.json


@pytest.fixture
def pg_gate(pg_url, monkeypatch) -> str:
    _empty_pg_schema(pg_url)
    monkeypatch.setenv("RELEASEGATE_DB_URL", pg_url)
    store.forget_engines()
    yield pg_url
    store.forget_engines()


def rows(run_id: str | None = None) -> tuple[dict, dict | None]:
    with store.unit_of_work() as uow:
        run = uow.runs.get(run_id) if run_id else uow.runs.latest(limit=1)[0]
        return run, uow.verdicts.get(run["run_id"])


def assert_clean_ending(code: int, out: str, err: str, home: Path) -> None:
    assert code == 3, f"exit {code}: {out[-2000:]} {err[-3000:]}"
    assert out.splitlines()[0].startswith("inventory 1.0.0: INCONCLUSIVE"), out
    assert "Traceback" not in out + err
    assert processes_of(home) == [], "a process of the run outlived it"


def test_database_dropped_mid_run_and_back_gives_a_recorded_inconclusive(quick_policy, pg_gate, releasegate_home):
    with database_outage(pg_gate) as outage, CliRun(quick_policy, "1.0.0") as run:
        run.wait_for("stage pytest[unit]", 180)
        outage.start()  # while the suite runs: saving its result meets a database that refuses everyone
        saved = run.wait_for("could not be saved", 180)
        outage.restore()
        code, out, err = run.finish(RUN_TIMEOUT_S)

    assert_clean_ending(code, out, err, releasegate_home)
    assert "pytest[unit]: its result (passed) could not be saved: the gate database failed" in saved
    run_row, verdict = rows()
    assert (run_row["status"], run_row["decision"], verdict["decision"]) == ("finished", "INCONCLUSIVE", "INCONCLUSIVE")
    why = [r["message"] for r in verdict["reasons"] if r["stage"] == "pytest[unit]"]
    assert why and "could not be saved: the gate database failed" in why[0], verdict["reasons"]
    assert "not currently accepting connections" in why[0] or "terminating connection" in why[0]
    assert (Path(run_row["evidence_dir"]) / MANIFEST).is_file()


def test_database_gone_to_the_end_still_prints_an_inconclusive_naming_it(quick_policy, pg_gate, releasegate_home):
    with database_outage(pg_gate) as outage, CliRun(quick_policy, "1.0.0") as run:
        run.wait_for("stage alerts", 300)
        outage.start()
        code, out, err = run.finish(RUN_TIMEOUT_S)

    assert_clean_ending(code, out, err, releasegate_home)
    assert "could not be recorded in the gate database" in out
    assert "(this verdict could not be recorded in the gate database)" in out
    run_row, verdict = rows()  # the database is back: it never heard of a verdict, and never of a GO
    assert verdict is None and run_row["decision"] is None
    on_disk = json.loads((Path(run_row["evidence_dir"]) / "verdict.json").read_text())
    assert on_disk["decision"] == "INCONCLUSIVE"
    assert any(r["stage"] == "gate:verdict" for r in on_disk["reasons"])


def test_full_disk_when_the_report_is_written_gives_a_recorded_inconclusive(quick_policy, pg_gate,
                                                                            releasegate_home):
    with CliRun(quick_policy, "1.0.0") as run:
        run.wait_for("stage alerts", 300)
        resource.prlimit(run.pid, resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
        code, out, err = run.finish(RUN_TIMEOUT_S)

    assert_clean_ending(code, out, err, releasegate_home)
    run_row, verdict = rows()
    assert (run_row["status"], verdict["decision"]) == ("finished", "INCONCLUSIVE")
    why = [r["message"] for r in verdict["reasons"] if r["stage"] == "gate:report"]
    assert why and "File too large" in why[0], verdict["reasons"]
    evidence = Path(run_row["evidence_dir"])
    assert not (evidence / MANIFEST).exists(), "a folder without its report must never verify"
    assert not (evidence / "report.html").exists() and not list(evidence.rglob(".tmp-*"))
    assert json.loads((evidence / "verdict.json").read_text())["decision"] == "INCONCLUSIVE"
