"""every coach's own Zoom and Slack

`zoomconnection`: a coach's user-authorised Zoom app connection (their Zoom user and account,
the sealed access and refresh tokens, the refresh lease and version that keep one refresh at a
time). `slackinstallation`: holdspace's bot in one Slack workspace, its token sealed.
`coach.slack_team_id`: the workspace of the coach's Slack user.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade():
    op.create_table(
        "zoomconnection",
        sa.Column("id", _STR(), nullable=False),
        sa.Column("coach_id", _STR(), nullable=False),
        sa.Column("zoom_user_id", _STR(), nullable=False),
        sa.Column("zoom_account_id", _STR(), nullable=False),
        sa.Column("access_token_sealed", sa.Text(), nullable=True),
        sa.Column("refresh_token_sealed", sa.Text(), nullable=True),
        sa.Column("access_expires_at", _TIME(), nullable=True),
        sa.Column("scope", _STR(), nullable=True),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("refresh_lease_until", _TIME(), nullable=True),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("status_reason", _STR(), nullable=True),
        sa.Column("connected_at", _TIME(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["coach_id"], ["coach.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("coach_id"),
    )
    with op.batch_alter_table("zoomconnection") as batch:
        batch.create_index(batch.f("ix_zoomconnection_zoom_user_id"), ["zoom_user_id"], unique=False)
        batch.create_index(batch.f("ix_zoomconnection_zoom_account_id"), ["zoom_account_id"], unique=False)
    op.create_table(
        "slackinstallation",
        sa.Column("id", _STR(), nullable=False),
        sa.Column("team_id", _STR(), nullable=False),
        sa.Column("team_name", _STR(), nullable=True),
        sa.Column("enterprise_id", _STR(), nullable=False),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("app_id", _STR(), nullable=True),
        sa.Column("bot_id", _STR(), nullable=True),
        sa.Column("bot_user_id", _STR(), nullable=True),
        sa.Column("bot_scopes", _STR(), nullable=False),
        sa.Column("bot_token_sealed", sa.Text(), nullable=True),
        sa.Column("installer_user_id", _STR(), nullable=True),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("installed_at", _TIME(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enterprise_id", "team_id"),
    )
    with op.batch_alter_table("slackinstallation") as batch:
        batch.create_index(batch.f("ix_slackinstallation_team_id"), ["team_id"], unique=False)
    with op.batch_alter_table("coach") as batch:
        batch.add_column(sa.Column("slack_team_id", _STR(), nullable=True))
        batch.create_index(batch.f("ix_coach_slack_team_id"), ["slack_team_id"], unique=False)


def downgrade():
    with op.batch_alter_table("coach") as batch:
        batch.drop_index(batch.f("ix_coach_slack_team_id"))
        batch.drop_column("slack_team_id")
    op.drop_table("slackinstallation")
    op.drop_table("zoomconnection")
