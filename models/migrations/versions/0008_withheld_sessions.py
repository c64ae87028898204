"""sessions the coach withheld

`coachingsession.withheld_at` is set when the coach revokes a session's links: the session
leaves the client's journey and no fresh link is sent for it until the coach shares it again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("coachingsession") as batch:
        batch.add_column(sa.Column("withheld_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("coachingsession") as batch:
        batch.drop_column("withheld_at")
