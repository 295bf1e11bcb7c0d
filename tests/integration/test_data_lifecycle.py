"""The data's life: migrations through 0002, retention that keeps what still matters, backup and restore."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from persistence import UnitOfWork, engine_from_url, metadata
from persistence.backup import BackupError, backup, restore
from persistence.migrate import current, downgrade, head, upgrade
from persistence.retention import purge
from releasegate.cli import main
from releasegate.records import store
from tests.support.builders import finding_record
from tests.support.db import table_names

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=120)
CUTOFF = NOW - timedelta(days=90)


def test_migration_0002_goes_up_down_and_up(db_url):
    upgrade(db_url, "0001")
    at_0001 = table_names(db_url)
    upgrade(db_url, "0002")
    at_0002 = table_names(db_url)
    upgrade(db_url)
    downgrade(db_url, "0001")
    after_down = (table_names(db_url), current(db_url))
    upgrade(db_url)

    assert after_down == (at_0001, "0001")
    assert at_0002 - at_0001 == {"waivers", "audit_events", "audit_head"}  # what 0002 adds, whatever comes later
    assert current(db_url) == head()


# --- retention -----------------------------------------------------------------------------------------------

def record_run(uow, run_id: str, started: datetime, decision: str, evidence_dir: str = "") -> None:
    uow.runs.upsert({"run_id": run_id, "service": "orders", "version": run_id, "started_at": started,
                     "evidence_dir": evidence_dir or f"/nonexistent/{run_id}"})
    uow.stages.upsert(run_id, {"stage": "semgrep", "kind": "sast", "status": "failed", "started": started,
                               "finished": started, "findings": [finding_record(f"fp-{run_id}")],
                               "test_cases": [{"node_id": "t::a", "outcome": "passed"}]})
    uow.verdicts.upsert(run_id, {"decision": decision, "reasons": [], "decided_at": started})
    uow.notifications.upsert(run_id, "#releases", {"text": decision}, "sent", 1)
    uow.runs.finish(run_id, "finished", decision, started)


def defect(uow, run_id: str, fingerprint: str, state: str) -> None:
    stage = f"scan-{fingerprint}"  # one stage per defect: a run that completes it fixes only this one
    uow.defects.observe("orders", run_id, [finding_record(fingerprint) | {"stage": stage}], {stage}, OLD)
    if state == "fixed":
        uow.defects.observe("orders", f"{run_id}-later", [], {stage}, OLD + timedelta(days=1))


def history(uow, folders: dict[str, Path] | None = None) -> None:
    """Old runs: one GO, one an open defect points at, one with a fixed but waived defect, three unprotected."""
    folders = folders or {}
    for run_id, decision in [("go", "GO"), ("open", "NO_GO"), ("waived", "NO_GO"), ("plain", "NO_GO"),
                             ("fixed", "NO_GO"), ("expired", "NO_GO")]:
        record_run(uow, run_id, OLD, decision, str(folders.get(run_id, "")))
    record_run(uow, "recent", NOW - timedelta(days=1), "NO_GO", str(folders.get("recent", "")))
    defect(uow, "open", "fp-open", "new")
    defect(uow, "waived", "fp-waived", "fixed")
    defect(uow, "fixed", "fp-fixed", "fixed")
    defect(uow, "expired", "fp-expired", "fixed")
    uow.waivers.grant("orders", "fp-waived", "accepted", "alice", "bob", date(2099, 1, 1), OLD)
    uow.waivers.grant("orders", "fp-expired", "accepted", "alice", "bob", date(2026, 9, 1), OLD)


def test_purge_keeps_go_defect_and_waiver_runs_and_deletes_the_rest_with_their_rows(engine):
    with UnitOfWork(engine) as uow:
        history(uow)
        uow.commit()
    with UnitOfWork(engine) as uow:
        events_before = uow.audit.count()
        report = purge(uow, CUTOFF, at=NOW)
        uow.commit()

    with UnitOfWork(engine) as uow:
        left = sorted(r["run_id"] for r in uow.runs.latest(limit=100))
        orphans = {name: uow.session.execute(text(f"SELECT count(*) FROM {name} WHERE run_id IN "
                                                  "('plain', 'fixed', 'expired')")).scalar_one()
                   for name in ("stage_results", "findings", "test_cases", "verdicts", "notifications")}
        purge_event = uow.audit.events(kind="data.purged")[0]
        audit = uow.audit.verify()

    assert sorted(r["run_id"] for r in report.runs_deleted) == ["expired", "fixed", "plain"]
    assert report.runs_deleted[0] == {"run_id": "expired", "evidence_dir": "/nonexistent/expired"}
    assert report.kept == {"go_verdict": 1, "open_defect": 1, "live_waiver": 1}
    assert left == ["go", "open", "recent", "waived"]
    assert orphans == dict.fromkeys(orphans, 0)
    assert purge_event["payload"]["run_ids"] == ["expired", "fixed", "plain"]
    assert audit == {"ok": True, "checked": events_before + 1, "first_bad_id": None, "problem": None}


def test_cli_purge_removes_the_evidence_of_purged_runs_only(cli_db, releasegate_home, tmp_path, capsys):
    evidence = releasegate_home / "evidence" / "orders"
    folders = {r: evidence / r for r in ("go", "open", "waived", "plain", "recent")} | {
        "fixed": tmp_path / "elsewhere" / "fixed", "expired": tmp_path / "custom"}
    with UnitOfWork(store.engine()) as uow:
        history(uow, folders)
        uow.commit()
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / "report.html").write_text("evidence")
    (tmp_path / "elsewhere" / "fixed" / "verdict.json").write_text(json.dumps({"run_id": "fixed"}))

    code = main(["db", "purge", "--older-than", str((datetime.now(UTC) - CUTOFF).days)])

    out = capsys.readouterr().out
    assert code == 0
    assert sorted(p.name for p in evidence.iterdir()) == ["go", "open", "recent", "waived"]
    assert not (tmp_path / "elsewhere" / "fixed").exists()        # outside, but its verdict.json names the run
    assert (tmp_path / "custom" / "report.html").exists()           # outside and unproven: left alone
    assert out.startswith("purged 3 run(s)") and "removed 2 evidence folder(s)" in out
    assert f"left alone: {tmp_path / 'custom'}" in out


# --- backup and restore --------------------------------------------------------------------------------------

def contents(url: str) -> dict[str, list[dict]]:
    engine = engine_from_url(url)
    try:
        with engine.connect() as connection:
            return {table.name: [dict(r) for r in connection.execute(
                        select(table).order_by(*table.primary_key.columns)).mappings()]
                    for table in metadata.sorted_tables} | {
                "alembic_version": [dict(r) for r in connection.execute(
                    text("SELECT version_num FROM alembic_version")).mappings()]}
    finally:
        engine.dispose()


@pytest.fixture
def second_db(db_url, tmp_path):
    """An empty database of the same backend as ``db_url``, to restore into."""
    if make_url(db_url).get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    name = f"releasegate_restore_{secrets.token_hex(4)}"
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(db_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_backup_then_restore_into_an_empty_database_reproduces_every_table(engine, db_url, second_db, tmp_path):
    with UnitOfWork(engine) as uow:
        history(uow)
        uow.defects.plan("orders", "fp-open", "fix it", "team-orders")
        uow.commit()
    original = contents(db_url)

    file = backup(db_url, tmp_path / "gate.backup")
    restore(second_db, file)

    engine2 = engine_from_url(second_db)
    with UnitOfWork(engine2) as uow:
        audit = uow.audit.verify()
    engine2.dispose()
    assert contents(second_db) == original
    assert all(original[name] for name in ("runs", "findings", "defects", "waivers", "audit_events", "audit_head"))
    assert audit["ok"] and audit["checked"] == len(original["audit_events"])


def test_a_missing_tool_or_a_failed_dump_says_what_to_do(tmp_path, monkeypatch):
    url = "postgresql://postgres:s3cret@127.0.0.1:5432/releasegate_no_such_db"
    with pytest.raises(BackupError, match="does not exist") as failed:
        backup(url, tmp_path / "x.dump")
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(BackupError, match="pg_dump not found on PATH — install the PostgreSQL client tools"):
        backup(url, tmp_path / "x.dump")
    assert "s3cret" not in str(failed.value)
    assert not (tmp_path / "x.dump").exists() and not (tmp_path / "x.dump.partial").exists()


def test_restoring_a_backup_of_the_other_backend_is_refused(sqlite_url, tmp_path):
    dump = tmp_path / "pg.dump"
    dump.write_bytes(b"PGDMP\x01\x0e\x00")

    with pytest.raises(BackupError, match="is a PostgreSQL dump, and the database is SQLite"):
        restore(sqlite_url, dump)


def test_cli_backup_and_restore_round_trip(cli_db, tmp_path, capsys):
    main(["db", "upgrade"])
    with UnitOfWork(store.engine()) as uow:
        history(uow)
        uow.commit()
    before = contents(cli_db)
    file = tmp_path / "backups" / "gate.backup"

    backed_up = main(["db", "backup", str(file)])
    with UnitOfWork(store.engine()) as uow:
        purge(uow, CUTOFF, at=NOW)  # a mistake to undo
        uow.commit()
    restored = main(["db", "restore", str(file)])
    missing = main(["db", "restore", str(tmp_path / "nope.backup")])

    err = capsys.readouterr().err
    assert (backed_up, restored, missing) == (0, 0, 2)
    assert contents(cli_db) == before
    assert "no such backup file" in err
