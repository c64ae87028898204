"""Alembic environment: runs on the connection `models.db.migrate` hands over."""

from alembic import context
from sqlmodel import SQLModel

import models.tables  # noqa: F401  (registers the tables on the metadata)

connection = context.config.attributes["connection"]


def include_object(obj, name, type_, reflected, compare_to):
    # The search index's own tables (FTS5 shadow tables) are made by migration 0002's SQL.
    return not (type_ == "table" and name.startswith("transcriptpassage_fts"))


context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
