"""keyed audit chain

The audit chain was plain SHA-256, which anyone who can write the database can recompute. It
is now HMAC-SHA256 under a key outside the database (models/audit.py). The existing chain is
checked as it was, then chained again under the key; a chain that is already broken is not
re-chained (that would hide what broke it), and the migration stops with the event's id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
import hashlib
import hmac

import sqlalchemy as sa
from alembic import op

from models.audit import GENESIS, canonical
from models.tables import AuditEvent

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _fields(row) -> dict:
    return dict(at=row.at, actor=row.actor, action=row.action, subject=row.subject,
                coach_id=row.coach_id, ip=row.ip, detail=row.detail or {})


def upgrade():
    bind = op.get_bind()
    table = AuditEvent.__table__
    rows = bind.execute(sa.select(table).order_by(table.c.id)).all()
    if not rows:
        return
    keys = op.get_context().config.attributes.get("field_keys")
    if keys is None:
        raise RuntimeError("keying the audit chain needs the vault: run `flask --app app init-db` "
                           "with the deployment's settings")
    key = keys.audit_key()
    old_prev = new_prev = GENESIS
    for row in rows:
        body = canonical(old_prev, **_fields(row))
        if row.prev_hash != old_prev or row.hash != hashlib.sha256(body).hexdigest():
            raise RuntimeError(f"the audit chain is broken at event {row.id} already; it is not "
                               "chained again (that would hide the break)")
        old_prev = row.hash
        new_hash = hmac.new(key, canonical(new_prev, **_fields(row)), hashlib.sha256).hexdigest()
        bind.execute(table.update().where(table.c.id == row.id)
                     .values(prev_hash=new_prev, hash=new_hash))
        new_prev = new_hash


def downgrade():
    raise NotImplementedError("the keyed chain is not unkeyed again: restore a backup instead")
