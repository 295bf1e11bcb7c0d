"""Database faults at the unit-of-work level: a dropped connection is retried (bounded), other errors are not,
and the audit trail never receives a secret (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from persistence import uow as uow_module
from releasegate import redact as redaction
from releasegate.records import store
from releasegate.records.audit import record
from tests.conftest import _empty_pg_schema

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = "canary-db-4Kd9sQ"


def run_row(run_id: str = "rg-db-1") -> dict:
    return {"run_id": run_id, "service": "inventory", "version": "1.0.0", "policy_path": "/p/gate.yaml",
            "policy_digest": "sha256:x", "evidence_dir": "/e", "started_at": T0, "status": "running"}


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(uow_module, "RETRY_PAUSES_S", (0.05, 0.1, 0.2))


@pytest.mark.postgres
def test_a_backend_terminated_mid_unit_of_work_is_retried_and_writes_once(pg_url, monkeypatch, fast_retries):
    _empty_pg_schema(pg_url)  # an earlier test may have left a tampered audit chain in the session's database
    monkeypatch.setenv("RELEASEGATE_DB_URL", pg_url)
    store.forget_engines()
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    attempts = []

    def work(uow):
        attempts.append(1)
        uow.runs.upsert(run_row())
        if len(attempts) == 1:  # the server drops this session between two statements
            pid = uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with admin.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        record(uow, "run.started", "inventory@1.0.0", {"n": 1}, T0, "rg-db-1")

    try:
        store.transaction(work)
        with store.unit_of_work() as uow:
            events = uow.audit.events(run_id="rg-db-1")
            row = uow.runs.get("rg-db-1")
            chain = uow.audit.verify()
    finally:
        admin.dispose()
        store.forget_engines()
    assert len(attempts) == 2
    assert row["status"] == "running" and len(events) == 1 and chain["ok"]


@pytest.mark.postgres
def test_an_unreachable_server_is_given_up_on_after_bounded_attempts(monkeypatch, fast_retries):
    monkeypatch.setenv("RELEASEGATE_DB_URL", "postgresql://postgres@127.0.0.1:1/none")
    store.forget_engines()
    calls = []
    started = time.monotonic()
    with pytest.raises(OperationalError):
        store.transaction(lambda uow: calls.append(uow.runs.upsert(run_row())))
    store.forget_engines()
    assert time.monotonic() - started < 10


def test_errors_of_the_statement_are_not_retried(cli_db, fast_retries):
    attempts = []

    def duplicate(uow):
        attempts.append(1)
        uow.runs.upsert(run_row())
        uow.session.execute(text("INSERT INTO runs (run_id, service, version, policy_path, policy_digest, "
                                 "evidence_dir, started_at, status) SELECT run_id, service, version, policy_path, "
                                 "policy_digest, evidence_dir, started_at, status FROM runs"))

    with pytest.raises(IntegrityError):
        store.transaction(duplicate)
    with pytest.raises(ValueError):
        store.transaction(lambda uow: (attempts.append(1), (_ for _ in ()).throw(ValueError("bad input"))))
    assert len(attempts) == 2


def test_the_audit_trail_never_receives_a_secret(cli_db):
    redaction.remember([SECRET])
    try:
        def work(uow):
            uow.runs.upsert(run_row())
            record(uow, "stage.result", f"pytest[{SECRET}]", {"error": f"login with {SECRET} failed",
                   "url": "https:/gate:osv-pw-1234@osv/v1"}, T0, "rg-db-1")
            uow.audit.append("waiver.granted", f"inventory:{SECRET}", {"reason": f"token={SECRET}"}, T0,
                             run_id="rg-db-1", actor=f"ci {SECRET}", key=f"k:{SECRET}")

        store.transaction(work)
        with store.unit_of_work() as uow:
            events = uow.audit.events(run_id="rg-db-1")
            chain = uow.audit.verify()
    finally:
        redaction.forget()
    dumped = repr(events)
    assert len(events) == 2 and chain["ok"]
    assert SECRET not in dumped and "osv-pw-1234" not in dumped and dumped.count("[REDACTED]") >= 6
