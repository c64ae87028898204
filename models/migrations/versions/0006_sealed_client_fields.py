"""sealed client fields

Every column that holds a client's words or facts about them becomes ciphertext under a key
derived from that client's vault key (models/sealing.py); a client is found by the keyed HMAC
of their email. Existing rows are sealed in place, which needs the vault: `init-db` hands its
field keys over (`models.db.migrate`). Clients erased before this revision keep no name or
email at all: their key is gone, so the row becomes a tombstone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

from models.sealing import PREFIX, associated_data, normalise_email

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# table: the columns sealed (name, json?), as the models list them
SEALED = {
    "client": [("name", False), ("email", False)],
    "consent": [("evidence_ip", False), ("evidence_user_agent", False)],
    "coachingsession": [("topic", False)],
    "transcript": [("segments", True), ("text", False)],
    "summary": [("client_tier", True)],
    "coachinsight": [("coach_tier", True)],
    "clientmemory": [("data", True)],
    "privatenote": [("body", False)],
    "outboundmessage": [("recipient", False), ("subject", False), ("body", False), ("html", False)],
}
_UQ = {"uq": "uq_%(table_name)s_%(column_0_name)s_%(column_1_name)s"}


def _owner(table: str, row) -> str | None:
    if table == "client":
        return row["id"]
    if table == "privatenote":
        return f"coach.{row['coach_id']}"
    if table in ("coachingsession", "outboundmessage") and not row.get("client_id"):
        return f"coach.{row['coach_id']}" if row.get("coach_id") else "service.outbox"
    return row.get("client_id")


def upgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    keys = op.get_context().config.attributes.get("field_keys")

    with op.batch_alter_table("client", naming_convention=_UQ) as batch:
        batch.add_column(sa.Column("email_hmac", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        if postgres:
            batch.drop_constraint("client_coach_id_email_key", type_="unique")
        else:
            batch.drop_constraint("uq_client_coach_id_email", type_="unique")
        batch.drop_index("ix_client_email")
    for table in ("transcript", "summary", "coachinsight"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        op.execute(f"UPDATE {table} SET client_id = (SELECT s.client_id FROM coachingsession s "
                   f"WHERE s.id = {table}.session_id)")
        op.execute(f"DELETE FROM {table} WHERE client_id IS NULL")
    with op.batch_alter_table("outboundmessage") as batch:
        batch.add_column(sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.add_column(sa.Column("forget_after_send", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("deletionreceipt") as batch:
        batch.add_column(sa.Column("deliver_to_sealed", sa.Text(), nullable=True))
    for table, columns in SEALED.items():
        with op.batch_alter_table(table) as batch:
            for column, as_json in columns:
                extra = {"postgresql_using": f"{column}::text"} if postgres and as_json else {}
                batch.alter_column(column, type_=sa.Text(), existing_nullable=True,
                                   nullable=True, **extra)

    _seal_existing_rows(bind, keys)

    with op.batch_alter_table("client") as batch:
        batch.create_index("ix_client_email_hmac", ["email_hmac"], unique=False)
        batch.create_unique_constraint("client_coach_id_email_hmac_key", ["coach_id", "email_hmac"])
    for table in ("transcript", "summary", "coachinsight"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("client_id", existing_type=sqlmodel.sql.sqltypes.AutoString(),
                               nullable=False)
            batch.create_foreign_key(f"{table}_client_id_fkey", "client", ["client_id"], ["id"])
            batch.create_index(f"ix_{table}_client_id", ["client_id"], unique=False)
    with op.batch_alter_table("outboundmessage") as batch:
        batch.create_index("ix_outboundmessage_client_id", ["client_id"], unique=False)


def _seal_existing_rows(bind, keys) -> None:
    has_rows = any(bind.execute(sa.text(f"SELECT 1 FROM {t} LIMIT 1")).first() for t in SEALED)
    if not has_rows:
        return
    if keys is None:
        raise RuntimeError("sealing existing rows needs the vault: run `flask --app app init-db` "
                           "with the deployment's settings")
    # Clients first: every live client gets its key now (the rows below are sealed under it);
    # a client already erased gets none and keeps no name or email.
    erased = set()
    emails = {}
    for row in bind.execute(sa.text("SELECT id, coach_id, email, withdrawn_at, erasing_at, "
                                    "data_key_id FROM client")).mappings():
        email_hmac = keys.lookup(normalise_email(row["email"] or ""))
        if row["withdrawn_at"] or row["erasing_at"]:
            erased.add(row["id"])
            bind.execute(sa.text("UPDATE client SET name = NULL, email = NULL, email_hmac = :h "
                                 "WHERE id = :id"), {"h": email_hmac, "id": row["id"]})
            continue
        emails[(row["coach_id"], normalise_email(row["email"] or ""))] = row["id"]
        key_id = keys.new_client_key(row["id"])
        bind.execute(sa.text("UPDATE client SET email_hmac = :h, data_key_id = :k WHERE id = :id"),
                     {"h": email_hmac, "k": key_id, "id": row["id"]})
    # A message to a client is about that client: sealed under their key, shredded with it.
    for row in bind.execute(sa.text("SELECT id, coach_id, recipient FROM outboundmessage "
                                    "WHERE channel = 'email'")).mappings():
        client_id = emails.get((row["coach_id"], normalise_email(row["recipient"] or "")))
        if client_id:
            bind.execute(sa.text("UPDATE outboundmessage SET client_id = :c WHERE id = :id"),
                         {"c": client_id, "id": row["id"]})

    for table, columns in SEALED.items():
        names = [c for c, _ in columns]
        present = {c["name"] for c in sa.inspect(bind).get_columns(table)}
        wanted = ["id"] + [c for c in ("coach_id", "client_id") if c in present] + names
        for row in bind.execute(sa.text(f"SELECT {', '.join(wanted)} FROM {table}")).mappings():
            row = dict(row)
            owner = _owner(table, row)
            values = {}
            for column, as_json in columns:
                value = row[column]
                if value is None or (isinstance(value, str) and value.startswith(PREFIX)):
                    continue
                if owner in erased or owner is None:
                    values[column] = None
                    continue
                if as_json:
                    value = json.loads(value) if isinstance(value, str) else value
                    raw = json.dumps(value, separators=(",", ":")).encode()
                else:
                    raw = str(value).encode()
                values[column] = keys.seal(owner, raw, associated_data(
                    table, column, row["id"], owner, row.get("client_id")))
            if values:
                sets = ", ".join(f"{c} = :{c}" for c in values)
                bind.execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :id"),
                             {**values, "id": row["id"]})


def downgrade():
    raise NotImplementedError("sealed fields are not unsealed again: restore a backup instead")
