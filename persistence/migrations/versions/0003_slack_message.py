"""notifications: the Slack message a run's notification became (channel id, ts, the decision it shows)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

A re-run of the same run updates its message in place (chat.update needs the channel id and the ts Slack
answered with) and posts nothing when the decision it shows has not changed. Nullable: a notification that
was written or failed has no message, and rows from before this revision have none either.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("message_ts", "channel_id", "shown_decision")


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("message_ts", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("channel_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("shown_decision", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
