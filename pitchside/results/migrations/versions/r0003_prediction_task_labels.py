"""Predictions gain their task (``detect`` or ``classify``) and a classification's labels:
``POST /api/classify`` records in the same history as ``POST /api/predict``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Every prediction recorded before this revision came from POST /api/predict.
    with op.batch_alter_table("predictions") as predictions:
        predictions.add_column(
            sa.Column("task", sa.String(16), nullable=False, server_default="detect")
        )
        predictions.add_column(sa.Column("labels", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as predictions:
        predictions.drop_column("labels")
        predictions.drop_column("task")
