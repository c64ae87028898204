"""The migrations build exactly the schema the models describe, on SQLite and on Postgres, and
`init-db` on an up-to-date database changes nothing."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import models.tables  # noqa: F401
from models.db import make_engine, migrate


# The search index (FTS5 tables on SQLite, the tsv column and its GIN index on Postgres) is
# made by migration 0002's SQL and has no model; everything else must match exactly.
def test_migrations_match_the_models(both_databases):
    engine = make_engine(both_databases)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_object": lambda obj, name, type_, *a: not (
                type_ == "table" and name.startswith("transcriptpassage_fts")) and not (
                type_ == "column" and name == "tsv") and not (
                type_ == "index" and name in ("ix_transcriptpassage_tsv", "ix_transcriptpassage_coach_tsv"))})
        diff = compare_metadata(ctx, SQLModel.metadata)
    engine.dispose()
    assert diff == []
