"""Jobs gain when they started and finished (frames per second, ETA); a frame result may
record why the frame could not be analysed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # batch_alter_table: SQLite alters a table by copying it; PostgreSQL alters in place.
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("started", sa.DateTime(timezone=True), nullable=True))
        jobs.add_column(sa.Column("finished", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("frame_results") as frame_results:
        frame_results.add_column(sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("frame_results") as frame_results:
        frame_results.drop_column("error")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("finished")
        jobs.drop_column("started")
