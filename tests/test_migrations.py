"""The migrations build exactly the schema the models describe, on SQLite and on Postgres, and
`init-db` on an up-to-date database changes nothing."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import models.tables  # noqa: F401
from models.db import make_engine, migrate


def test_migrations_match_the_models(both_databases):
    engine = make_engine(both_databases)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        diff = compare_metadata(ctx, SQLModel.metadata)
    engine.dispose()
    assert diff == []


def _old_chain(engine, subjects, break_at=None):
    """Rows chained the way revisions before 0007 chained them: unkeyed SHA-256."""
    import hashlib
    from datetime import datetime, timezone
    from sqlalchemy import insert
    from models.audit import GENESIS, canonical
    from models.tables import AuditEvent
    prev, at = GENESIS, datetime(2026, 1, 1, tzinfo=timezone.utc)
    with engine.begin() as conn:
        for i, subject in enumerate(subjects):
            fields = dict(at=at, actor="operator", action="client.added", subject=subject,
                          coach_id=None, ip=None, detail={"n": i})
            digest = hashlib.sha256(canonical(prev, **fields)).hexdigest()
            stored = fields | {"subject": "client:edited"} if i == break_at else fields
            conn.execute(insert(AuditEvent.__table__).values(**stored, prev_hash=prev, hash=digest))
            prev = digest


def test_the_audit_chain_is_keyed_in_place_and_a_broken_one_is_not(both_databases, tmp_path):
    import pytest
    from sqlmodel import Session
    from models import audit, sealing
    from tests.test_sealed_fields import _at_revision
    from vault import LocalMasterKey, open_vault
    from vault.fields import FieldKeys
    keys = FieldKeys(open_vault(f"file://{tmp_path / 'vault'}", master_key=LocalMasterKey(b"a" * 32)))
    engine = make_engine(both_databases)
    _at_revision(engine, "0006")
    _old_chain(engine, ["client:a", "client:b", "client:c"])
    sealing.bind(engine, keys)
    migrate(engine)
    with Session(engine) as db:
        assert audit.verify(db).ok and audit.verify(db).checked == 3
    engine.dispose()

    if not both_databases.startswith("sqlite"):
        return  # the refusal below is the same code on both databases
    engine = make_engine(f"sqlite:///{tmp_path / 'broken.db'}")
    _at_revision(engine, "0006")
    _old_chain(engine, ["client:a", "client:b", "client:c"], break_at=1)
    sealing.bind(engine, keys)
    with pytest.raises(RuntimeError, match="broken at event 2"):
        migrate(engine)
    engine.dispose()
