"""Drop snapshot_progress: a snapshot's progress is part of the source position now (the
``snapshot`` cursor in ``source_offsets``), nothing reads or writes this table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_table("snapshot_progress")


def downgrade() -> None:
    # as 0001 created it (left empty: its rows were never read)
    op.create_table(
        "snapshot_progress",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("table", sa.String(300), primary_key=True),
        sa.Column("last_key", sa.JSON(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
