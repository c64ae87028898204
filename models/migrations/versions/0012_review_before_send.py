"""review before send, and the coach's settings

`coach.delivery_mode` (auto | review), `coach.notify_by` (slack | email),
`coach.show_mood_to_client`; `coachingsession.approved_at`, set when a coach in review mode
sends the reviewed summary. Existing coaches keep automatic delivery.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade():
    with op.batch_alter_table("coach") as batch:
        batch.add_column(sa.Column("delivery_mode", _STR(), nullable=False, server_default="auto"))
        batch.add_column(sa.Column("notify_by", _STR(), nullable=False, server_default="slack"))
        batch.add_column(sa.Column("show_mood_to_client", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("coachingsession") as batch:
        batch.add_column(sa.Column("approved_at", _TIME(), nullable=True))


def downgrade():
    with op.batch_alter_table("coachingsession") as batch:
        batch.drop_column("approved_at")
    with op.batch_alter_table("coach") as batch:
        batch.drop_column("show_mood_to_client")
        batch.drop_column("notify_by")
        batch.drop_column("delivery_mode")
