"""Tasks are transactions: re-running every task of a run (as clearing it in Airflow does) writes the same
rows, never duplicates. Each task body is called exactly as the DAG calls it (releasegate.airflow_glue)."""

import pytest
from sqlalchemy import MetaData, func, select

from releasegate import airflow_glue
from releasegate.records import store
from tests.support.demo import ROOT

pytestmark = pytest.mark.slow

# Columns that legitimately change when a task runs again: clocks, measured values, and text that quotes them.
VOLATILE = {"id", "started_at", "finished_at", "decided_at", "updated_at", "last_seen_at", "first_seen_at",
            "at", "hash", "prev_hash", "metrics", "summary", "artifacts", "duration_s", "response", "payload",
            "evidence", "message", "data", "manifest_sha256", "tool_versions", "reasons", "seen_at", "evidence_dir",
            "title"}  # a budget finding's title quotes the value measured this time


def snapshot() -> dict[str, tuple[int, list]]:
    metadata = MetaData()
    metadata.reflect(store.engine())
    out = {}
    with store.engine().connect() as connection:
        for table in metadata.sorted_tables:
            if table.name in ("alembic_version", "audit_head"):
                continue
            stable = [c for c in table.columns if c.name not in VOLATILE]
            rows = sorted(tuple(str(v) for v in row) for row in connection.execute(select(*stable)))
            count = connection.execute(select(func.count()).select_from(table)).scalar_one()
            out[table.name] = (count, rows)
    return out


def run_all_tasks(params: dict, dag_run_id: str) -> None:
    ctx = airflow_glue.open_run(params, "release_gate", dag_run_id, ROOT)
    env = airflow_glue.provision(ctx)
    try:
        for stage in airflow_glue.planned(ctx, "all"):
            airflow_glue.run_stage(ctx, stage, env)
    finally:
        airflow_glue.stop(ctx, env)
    outcome = airflow_glue.conclude(ctx)
    airflow_glue.notify(ctx, outcome)


def test_rerunning_every_task_writes_the_same_rows(quick_policy, cli_db):
    params = {"service": "inventory", "version": "1.1.0", "policy": str(quick_policy)}
    run_all_tasks(params, "manual__2026-11-24T10:00:00+00:00")
    first = snapshot()
    assert first["stage_results"][0] > 0 and first["defects"][0] > 0 and first["audit_events"][0] > 0

    run_all_tasks(params, "manual__2026-11-24T10:00:00+00:00")   # the same DAG run, every task cleared
    second = snapshot()
    assert {t: c for t, (c, _) in second.items()} == {t: c for t, (c, _) in first.items()}
    assert second == first
