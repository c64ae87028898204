"""blind search index

Transcript passages are sealed under the client's key like every other client field, so the
full-text indexes over their plaintext (FTS5 on SQLite, a tsvector on Postgres) go. Search
reads a blind index instead (models/search.py): `searchterm`, one row per client and keyed
HMAC of a stem with its postings, and `searchvocabulary`, each client's words sealed in
buckets by their first letters.
Existing passages are sealed and indexed in place with the field keys `init-db` hands over;
passages of clients already erased (no key) are deleted.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from collections import defaultdict

import sqlalchemy as sa
import sqlmodel
from alembic import op

from models import search
from models.sealing import PREFIX, associated_data
from models.tables import passage_row

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    text_type = sqlmodel.sql.sqltypes.AutoString()
    op.create_table(
        "searchterm",
        sa.Column("term", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("client_id", text_type, sa.ForeignKey("client.id"), primary_key=True),
        sa.Column("coach_id", text_type, sa.ForeignKey("coach.id"), nullable=False),
        sa.Column("postings", sa.LargeBinary(), nullable=False))
    op.create_index("ix_searchterm_client_id", "searchterm", ["client_id"])
    op.create_table(
        "searchvocabulary",
        sa.Column("client_id", text_type, sa.ForeignKey("client.id"), primary_key=True),
        sa.Column("bucket", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("coach_id", text_type, sa.ForeignKey("coach.id"), nullable=False),
        sa.Column("words", sa.Text(), nullable=False))
    op.create_index("ix_searchvocabulary_coach_id", "searchvocabulary", ["coach_id"])
    if bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_transcriptpassage_coach_tsv")
        op.execute("ALTER TABLE transcriptpassage DROP COLUMN IF EXISTS tsv")
    else:
        for trigger in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS transcriptpassage_{trigger}")
        op.execute("DROP TABLE IF EXISTS transcriptpassage_fts")
    _seal_and_index(bind, op.get_context().config.attributes.get("field_keys"))


def _seal_and_index(bind, keys) -> None:
    rows = bind.execute(sa.text("SELECT id, coach_id, client_id, session_id, start, text "
                                "FROM transcriptpassage ORDER BY id")).mappings().all()
    if not rows:
        return
    if keys is None:
        raise RuntimeError("sealing existing passages needs the vault: run `flask --app app "
                           "init-db` with the deployment's settings")
    gone = {r["id"] for r in bind.execute(sa.text(
        "SELECT id FROM client WHERE withdrawn_at IS NOT NULL OR erasing_at IS NOT NULL")).mappings()}
    added = defaultdict(search.ClientIndex)
    for row in rows:
        client_id = row["client_id"]
        if client_id in gone or (row["text"] or "").startswith(PREFIX):
            continue
        added[(row["coach_id"], client_id)].add(row["id"], row["text"] or "")
        sealed = keys.seal(client_id, (row["text"] or "").encode(), associated_data(
            "transcriptpassage", "text", passage_row(row["session_id"], row["start"]), client_id,
            client_id))
        bind.execute(sa.text("UPDATE transcriptpassage SET text = :t WHERE id = :id"),
                     {"t": sealed, "id": row["id"]})
    if gone:
        bind.execute(sa.text("DELETE FROM transcriptpassage WHERE client_id IN :gone")
                     .bindparams(sa.bindparam("gone", expanding=True)), {"gone": sorted(gone)})
    for (coach_id, client_id), index in added.items():
        search.write_index(bind, keys, coach_id, client_id, index)


def downgrade():
    raise NotImplementedError("sealed passages are not unsealed again: restore a backup instead")
