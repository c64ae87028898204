"""summaries in two tiers, client memory, transcript search

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 05:08:46.984676
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('clientmemory',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('coach_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('sessions_seen', sa.JSON(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['client.id'], ),
    sa.ForeignKeyConstraint(['coach_id'], ['coach.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('coach_id', 'client_id')
    )
    with op.batch_alter_table('clientmemory', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clientmemory_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_clientmemory_coach_id'), ['coach_id'], unique=False)

    op.create_table('coachinsight',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('coach_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('session_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('engine', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('coach_tier', sa.JSON(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['coach_id'], ['coach.id'], ),
    sa.ForeignKeyConstraint(['session_id'], ['coachingsession.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('session_id')
    )
    with op.batch_alter_table('coachinsight', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coachinsight_coach_id'), ['coach_id'], unique=False)

    op.create_table('transcriptpassage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('coach_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('session_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('start', sa.Float(), nullable=False),
    sa.Column('end', sa.Float(), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['client.id'], ),
    sa.ForeignKeyConstraint(['coach_id'], ['coach.id'], ),
    sa.ForeignKeyConstraint(['session_id'], ['coachingsession.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('transcriptpassage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transcriptpassage_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transcriptpassage_coach_id'), ['coach_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transcriptpassage_session_id'), ['session_id'], unique=False)

    with op.batch_alter_table('summary', schema=None) as batch_op:
        batch_op.add_column(sa.Column('basic', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.drop_column('coach_tier')

    with op.batch_alter_table('coach', schema=None) as batch_op:
        batch_op.alter_column('trash_refused_recordings', new_column_name='trash_zoom_copies')
        batch_op.add_column(sa.Column('drop_media_after_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('allow_platform_transcript', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))

    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.add_column(sa.Column('label', sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    with op.batch_alter_table('deletionreceipt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('completed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.alter_column('signature', server_default='')

    # Full-text search over passages. Deleting a passage row removes its index entries too
    # (the triggers / the generated column), so erasure leaves nothing searchable behind.
    if op.get_bind().dialect.name == "sqlite":
        # The coach id is indexed too, so a search is scoped inside the index, not after it.
        op.execute("CREATE VIRTUAL TABLE transcriptpassage_fts USING fts5(coach_id, text, "
                   "content='transcriptpassage', content_rowid='id', tokenize='porter unicode61')")
        op.execute("CREATE TRIGGER transcriptpassage_ai AFTER INSERT ON transcriptpassage BEGIN "
                   "INSERT INTO transcriptpassage_fts(rowid, coach_id, text) "
                   "VALUES (new.id, new.coach_id, new.text); END")
        op.execute("CREATE TRIGGER transcriptpassage_ad AFTER DELETE ON transcriptpassage BEGIN "
                   "INSERT INTO transcriptpassage_fts(transcriptpassage_fts, rowid, coach_id, text) "
                   "VALUES ('delete', old.id, old.coach_id, old.text); END")
        op.execute("CREATE TRIGGER transcriptpassage_au AFTER UPDATE ON transcriptpassage BEGIN "
                   "INSERT INTO transcriptpassage_fts(transcriptpassage_fts, rowid, coach_id, text) "
                   "VALUES ('delete', old.id, old.coach_id, old.text); "
                   "INSERT INTO transcriptpassage_fts(rowid, coach_id, text) "
                   "VALUES (new.id, new.coach_id, new.text); END")
    else:
        op.execute("ALTER TABLE transcriptpassage ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
                   "(to_tsvector('english', coalesce(text, ''))) STORED")
        op.execute("CREATE INDEX ix_transcriptpassage_tsv ON transcriptpassage USING GIN (tsv)")



def downgrade():
    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.drop_column('label')
    with op.batch_alter_table('deletionreceipt', schema=None) as batch_op:
        batch_op.drop_column('completed_at')
    with op.batch_alter_table('coach', schema=None) as batch_op:
        batch_op.drop_column('allow_platform_transcript')
        batch_op.drop_column('drop_media_after_days')
        batch_op.alter_column('trash_zoom_copies', new_column_name='trash_refused_recordings')
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS transcriptpassage_{trigger}")
        op.execute("DROP TABLE IF EXISTS transcriptpassage_fts")
    with op.batch_alter_table('summary', schema=None) as batch_op:
        batch_op.add_column(sa.Column('coach_tier', sa.JSON(), nullable=True))
        batch_op.drop_column('basic')

    with op.batch_alter_table('transcriptpassage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transcriptpassage_session_id'))
        batch_op.drop_index(batch_op.f('ix_transcriptpassage_coach_id'))
        batch_op.drop_index(batch_op.f('ix_transcriptpassage_client_id'))

    op.drop_table('transcriptpassage')
    with op.batch_alter_table('coachinsight', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coachinsight_coach_id'))

    op.drop_table('coachinsight')
    with op.batch_alter_table('clientmemory', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clientmemory_coach_id'))
        batch_op.drop_index(batch_op.f('ix_clientmemory_client_id'))

    op.drop_table('clientmemory')
