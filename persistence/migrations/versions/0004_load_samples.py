"""load_samples: what a later run's baseline comparison needs of a run's load test

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Per run and percentile (p50_ms, p95_ms, p99_ms): the overall value and the per-interval values Locust recorded,
so a run compares its latency with the service's last GO (or a pinned version's) without reading that run's
evidence folder, which may be on another worker or purged. Frozen: column types are spelled out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "load_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("samples", JSON, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f("fk_load_samples_run_id_runs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_load_samples")),
        sa.UniqueConstraint("run_id", "metric", name=op.f("uq_load_samples_run_id_metric")),
    )


def downgrade() -> None:
    op.drop_table("load_samples")
