"""waiver_requests: waivers asked for and not yet approved, and what became of them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

A NO_GO run whose blockers all have a pending request can go to Airflow's approval step; an approval by someone
other than each requester grants them (``granted``, with the waiver it became). Frozen: column types are spelled
out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "waiver_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("requested_at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
        sa.Column("waiver_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'granted', 'rejected')", name=op.f("ck_waiver_requests_status")),
        sa.ForeignKeyConstraint(["waiver_id"], ["waivers.id"], name=op.f("fk_waiver_requests_waiver_id_waivers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waiver_requests")),
    )
    op.create_index("ix_waiver_requests_service_status", "waiver_requests", ["service", "status"])


def downgrade() -> None:
    op.drop_index("ix_waiver_requests_service_status", table_name="waiver_requests")
    op.drop_table("waiver_requests")
