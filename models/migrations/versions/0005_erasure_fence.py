"""erasure fence, and receipts attached to their email


`client.erasing_at` and `coachingsession.erasing_at` are set in the transaction that starts an
erasure; every writer for that client or session re-checks them under the same row lock.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("client") as batch:
        batch.add_column(sa.Column("erasing_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    with op.batch_alter_table("coachingsession") as batch:
        batch.add_column(sa.Column("erasing_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    with op.batch_alter_table("outboundmessage") as batch:
        batch.add_column(sa.Column("attachment_receipt_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade():
    with op.batch_alter_table("outboundmessage") as batch:
        batch.drop_column("attachment_receipt_id")
    with op.batch_alter_table("coachingsession") as batch:
        batch.drop_column("erasing_at")
    with op.batch_alter_table("client") as batch:
        batch.drop_column("erasing_at")
