"""baseline: runs, stage results, test cases, findings, defects, verdicts, notifications

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Written from `alembic revision --autogenerate` output, then frozen: column types are spelled
out here (UTCDateTime stores as DateTime(timezone=True)) so later model changes cannot alter
what this revision creates.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
RUN_ID = sa.String(length=250)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f(f"fk_{table}_run_id_runs"),
                                   ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("policy_path", sa.Text(), nullable=False),
        sa.Column("policy_digest", sa.String(length=128), nullable=False),
        sa.Column("evidence_dir", sa.Text(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("airflow_dag_run_id", sa.String(length=250), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_service_version_started_at", "runs", ["service", "version", "started_at"])

    op.create_table(
        "stage_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("stage", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("evidence_empty", sa.Boolean(), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("artifacts", JSON, nullable=False),
        sa.CheckConstraint("status IN ('passed', 'failed', 'error')", name=op.f("ck_stage_results_status")),
        _run_fk("stage_results"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_results")),
        sa.UniqueConstraint("run_id", "stage", name=op.f("uq_stage_results_run_id_stage")),
    )

    op.create_table(
        "test_cases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("suite", sa.String(length=200), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.CheckConstraint("outcome IN ('passed', 'failed', 'error', 'skipped', 'flaky')",
                           name=op.f("ck_test_cases_outcome")),
        _run_fk("test_cases"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_cases")),
        sa.UniqueConstraint("run_id", "suite", "node_id", name=op.f("uq_test_cases_run_id_suite_node_id")),
    )

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("blocking", sa.Boolean(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        _run_fk("findings"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
        sa.UniqueConstraint("run_id", "fingerprint", name=op.f("uq_findings_run_id_fingerprint")),
    )
    op.create_index("ix_findings_run_id_stage", "findings", ["run_id", "stage"])

    op.create_table(
        "defects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("previous_state", sa.String(length=16), nullable=True),
        sa.Column("first_run_id", RUN_ID, nullable=False),
        sa.Column("last_run_id", RUN_ID, nullable=False),
        sa.Column("changed_run_id", RUN_ID, nullable=False),
        sa.Column("first_seen_at", TIMESTAMP, nullable=False),
        sa.Column("last_seen_at", TIMESTAMP, nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("remediation", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("state IN ('new', 'recurring', 'fixed', 'reopened', 'waived')",
                           name=op.f("ck_defects_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_defects")),
        sa.UniqueConstraint("service", "fingerprint", name=op.f("uq_defects_service_fingerprint")),
    )

    op.create_table(
        "verdicts",
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("decided_at", TIMESTAMP, nullable=False),
        sa.Column("policy_digest", sa.String(length=128), nullable=False),
        sa.Column("tool_versions", JSON, nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("report_path", sa.Text(), nullable=False),
        _run_fk("verdicts"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_verdicts")),
    )

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("response", JSON, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("status IN ('sent', 'written', 'failed')", name=op.f("ck_notifications_status")),
        _run_fk("notifications"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("run_id", "channel", name=op.f("uq_notifications_run_id_channel")),
    )


def downgrade() -> None:
    for table in ("notifications", "verdicts", "defects", "findings", "test_cases", "stage_results"):
        op.drop_table(table)
    op.drop_index("ix_runs_service_version_started_at", table_name="runs")
    op.drop_table("runs")
