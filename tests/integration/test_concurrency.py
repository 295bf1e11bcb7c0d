"""Eight gate runs of one service writing to PostgreSQL at once, each from its own OS process and engine.

No unique-violation crash, no deadlock, no lost defect sighting, and an audit chain that still verifies.
"""

from __future__ import annotations

import multiprocessing
import traceback
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from persistence import UnitOfWork, engine_from_url
from persistence.migrate import ensure_schema
from tests.support.builders import finding_record

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PROCESSES = 8
EVENTS_PER_RUN = 5  # run.started, two stage results, defects recorded, verdict


@pytest.fixture
def pg_db(pg_url):
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    ensure_schema(pg_url)
    return pg_url


def stage(name: str, fingerprints: list[str], at: datetime) -> dict:
    return {"stage": name, "kind": "sast", "status": "failed", "started": at, "finished": at + timedelta(seconds=5),
            "findings": [finding_record(fp) for fp in fingerprints]}


def gate_run(url: str, index: int, barrier, errors) -> None:
    """One whole run's writes, as the pipeline's tasks make them (one unit of work per task)."""
    try:
        engine = engine_from_url(url)
        run_id, at = f"rg-{index}", T0 + timedelta(seconds=index)
        stages = [stage("semgrep", ["fp-common", f"fp-pair-{index // 2}"], at), stage("pip-audit", [f"fp-own-{index}"], at)]
        barrier.wait(timeout=60)
        for attempt in range(2):  # the second pass is a retried task: the keyed audit events are not repeated
            with UnitOfWork(engine) as uow:
                uow.runs.upsert({"run_id": run_id, "service": "orders", "version": "1.0", "started_at": at})
                uow.audit.append("run.started", run_id, {"attempt": 1}, at, run_id=run_id, key=f"{run_id}:start")
                uow.commit()
            for result in stages:
                with UnitOfWork(engine) as uow:
                    uow.stages.upsert(run_id, result)
                    uow.audit.append("stage.result", result["stage"], {"n": len(result["findings"])}, at,
                                     run_id=run_id, key=f"{run_id}:{result['stage']}")
                    uow.commit()
            if attempt == 0:
                record_defects(engine, run_id, stages, at)
            with UnitOfWork(engine) as uow:
                uow.verdicts.upsert(run_id, {"decision": "NO_GO", "reasons": [], "decided_at": at})
                uow.runs.finish(run_id, "finished", "NO_GO", at)
                uow.audit.append("verdict", run_id, {"decision": "NO_GO"}, at, run_id=run_id, key=f"{run_id}:verdict")
                uow.commit()
        engine.dispose()
    except BaseException:
        errors.put(f"process {index}: {traceback.format_exc()}")


def record_defects(engine, run_id: str, stages: list[dict], at: datetime) -> None:
    found = [finding_ | {"stage": s["stage"]} for s in stages for finding_ in s["findings"]]
    with UnitOfWork(engine) as uow:
        changes = uow.defects.observe("orders", run_id, found, {s["stage"] for s in stages}, at)
        uow.audit.append("defects.recorded", run_id, {"changes": len(changes)}, at, run_id=run_id,
                         key=f"{run_id}:defects")
        uow.commit()


def test_eight_processes_write_whole_runs_of_one_service_at_once(pg_db):
    spawn = multiprocessing.get_context("spawn")
    barrier, errors = spawn.Barrier(PROCESSES), spawn.Queue()
    workers = [spawn.Process(target=gate_run, args=(pg_db, i, barrier, errors)) for i in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)

    failures = [errors.get(timeout=1) for _ in range(errors.qsize())] if not errors.empty() else []
    engine = engine_from_url(pg_db)
    with UnitOfWork(engine) as uow:
        defects = {d["fingerprint"]: d["occurrences"] for d in uow.defects.for_service("orders")}
        verdicts = [uow.verdicts.get(f"rg-{i}")["decision"] for i in range(PROCESSES)]
        findings = sum(len(uow.stages.findings(f"rg-{i}")) for i in range(PROCESSES))
        audit = uow.audit.verify()
    engine.dispose()

    assert failures == [] and [w.exitcode for w in workers] == [0] * PROCESSES
    assert defects["fp-common"] == PROCESSES
    assert [defects[f"fp-pair-{k}"] for k in range(PROCESSES // 2)] == [2] * (PROCESSES // 2)
    assert [defects[f"fp-own-{i}"] for i in range(PROCESSES)] == [1] * PROCESSES
    assert verdicts == ["NO_GO"] * PROCESSES and findings == 3 * PROCESSES
    assert audit == {"ok": True, "checked": PROCESSES * EVENTS_PER_RUN, "first_bad_id": None, "problem": None}
