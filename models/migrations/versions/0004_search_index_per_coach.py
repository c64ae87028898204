"""search index per coach on Postgres

The text index alone cannot narrow a search to one coach, so common words were ranked across
every coach's passages before the coach filter applied; one GIN index over (coach_id, tsv)
narrows both at once. btree_gin (a trusted extension since PostgreSQL 13) lets a GIN index
hold the coach id. SQLite's FTS5 table already indexes the coach id (0002).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
        op.execute("CREATE INDEX ix_transcriptpassage_coach_tsv ON transcriptpassage USING gin (coach_id, tsv)")
        op.execute("DROP INDEX ix_transcriptpassage_tsv")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_transcriptpassage_tsv ON transcriptpassage USING gin (tsv)")
        op.execute("DROP INDEX ix_transcriptpassage_coach_tsv")
