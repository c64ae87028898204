"""google connections

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 05:23:39.640184
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('googleconnection',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('coach_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('google_user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('refresh_token_sealed', sa.Text(), nullable=True),
    sa.Column('subscription_name', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('subscription_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('connected_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['coach_id'], ['coach.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('coach_id')
    )
    with op.batch_alter_table('googleconnection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_googleconnection_subscription_name'), ['subscription_name'], unique=False)



def downgrade():
    with op.batch_alter_table('googleconnection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_googleconnection_subscription_name'))

    op.drop_table('googleconnection')
