"""log streams: log_streams (head of each stream) and log_segments

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_streams",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("head_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_end", sa.BigInteger(), nullable=False),
        sa.Column("head_sha256", sa.String(length=64), nullable=True),
        sa.Column("head_entry_hash", sa.String(length=64), nullable=True),
        sa.Column("head_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org", "name"),
    )
    op.create_table(
        "log_segments",
        sa.Column("stream_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("document_id", sa.String(length=64), nullable=False),
        sa.Column("start_offset", sa.BigInteger(), nullable=False),
        sa.Column("end_offset", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("cut_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"]),
        sa.ForeignKeyConstraint(["stream_id"], ["log_streams.id"]),
        sa.PrimaryKeyConstraint("stream_id", "seq"),
        sa.UniqueConstraint("document_id"),
    )
    with op.batch_alter_table("log_segments", schema=None) as batch_op:
        batch_op.create_index("ix_log_segments_stream_cut", ["stream_id", "cut_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("log_segments", schema=None) as batch_op:
        batch_op.drop_index("ix_log_segments_stream_cut")
    op.drop_table("log_segments")
    op.drop_table("log_streams")
