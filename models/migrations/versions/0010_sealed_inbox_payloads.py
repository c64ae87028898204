"""sealed inbox payloads

A webhook's payload names the meeting, its host and often its participants, and holds a
download token until processed. It becomes a sealed column (models/sealing.py): under the
service's inbox key on arrival, the coach's once the host is known, and the client's once the
session is theirs; `inboxevent.client_id` says whose. Existing payloads are sealed in place
with the field keys `init-db` hands over; those of clients already erased are emptied.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

from models.sealing import PREFIX, associated_data

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    with op.batch_alter_table("inboxevent") as batch:
        batch.add_column(sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.alter_column("payload", type_=sa.Text(), existing_nullable=True, nullable=True,
                           **({"postgresql_using": "payload::text"} if postgres else {}))
    op.execute("UPDATE inboxevent SET client_id = (SELECT s.client_id FROM coachingsession s "
               "WHERE s.id = inboxevent.session_id)")
    _seal_existing(bind, op.get_context().config.attributes.get("field_keys"))
    with op.batch_alter_table("inboxevent") as batch:
        batch.create_foreign_key("inboxevent_client_id_fkey", "client", ["client_id"], ["id"])
        batch.create_index("ix_inboxevent_client_id", ["client_id"], unique=False)


def _seal_existing(bind, keys) -> None:
    rows = bind.execute(sa.text("SELECT id, dedupe_key, coach_id, client_id, payload FROM inboxevent "
                                "WHERE payload IS NOT NULL")).mappings().all()
    rows = [r for r in rows if not str(r["payload"]).startswith(PREFIX)]
    if not rows:
        return
    if keys is None:
        raise RuntimeError("sealing existing inbox payloads needs the vault: run `flask --app app "
                           "init-db` with the deployment's settings")
    gone = {r["id"] for r in bind.execute(sa.text(
        "SELECT id FROM client WHERE withdrawn_at IS NOT NULL OR erasing_at IS NOT NULL")).mappings()}
    for row in rows:
        if row["client_id"] in gone:
            bind.execute(sa.text("UPDATE inboxevent SET payload = NULL WHERE id = :id"), {"id": row["id"]})
            continue
        owner = row["client_id"] or (f"coach.{row['coach_id']}" if row["coach_id"] else "service.inbox")
        value = row["payload"]
        value = json.loads(value) if isinstance(value, str) else value
        sealed = keys.seal(owner, json.dumps(value, separators=(",", ":")).encode(), associated_data(
            "inboxevent", "payload", row["dedupe_key"], owner, row["client_id"]))
        bind.execute(sa.text("UPDATE inboxevent SET payload = :p WHERE id = :id"),
                     {"p": sealed, "id": row["id"]})


def downgrade():
    raise NotImplementedError("sealed payloads are not unsealed again: restore a backup instead")
