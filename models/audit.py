"""The audit trail: one `record()` for everything accessed or changed, chained by HMAC so that
an edited or deleted row shows up in `verify()`.

Each row's hash is an HMAC-SHA256, under a key that is not in the database (the key provider
bound to the engine, models/sealing.py), of the row and the previous row's hash: whoever can
write the database but not read that key cannot rewrite a row and re-chain the rest. The chain's
head is anchored outside the database (workers/anchors.py); `verify()` checks that every
anchored row is still there with its hash, so a deleted tail shows too."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, text
from sqlmodel import Session, select

from models import sealing
from models.tables import AuditEvent, utcnow

GENESIS = "0" * 64
# Any constant works: it names the one advisory lock that serialises appends on Postgres.
_PG_LOCK_KEY = 0x686F6C64
_PENDING, _HOOKED = "holdspace.audit.pending", "holdspace.audit.hooked"


def canonical(prev_hash: str, at: datetime, actor: str, action: str, subject: str,
              coach_id: str | None, ip: str | None, detail: dict) -> bytes:
    return json.dumps(
        {"prev": prev_hash, "at": at.isoformat(timespec="microseconds"), "actor": actor,
         "action": action, "subject": subject, "coach": coach_id, "ip": ip, "detail": detail},
        sort_keys=True, separators=(",", ":"), default=str).encode()


def _digest(key: bytes, prev_hash: str, **row) -> str:
    return hmac.new(key, canonical(prev_hash, **row), hashlib.sha256).hexdigest()


def chain_key(db_or_engine) -> bytes:
    return sealing.provider_for(db_or_engine).audit_key()


def record(db: Session, actor: str, action: str, subject: str, *, coach_id: str | None = None,
           ip: str | None = None, **detail) -> None:
    """Record one event in the caller's transaction: it is appended to the chain when that
    transaction commits (and dropped if it rolls back).

    Appending at commit makes the chain's lock the last one any transaction takes, after the
    row locks it holds (the erasure fence's among them), so the two can never wait on each
    other in opposite orders."""
    pending = db.info.setdefault(_PENDING, [])
    if not db.info.get(_HOOKED):
        event.listen(db, "before_commit", _append_pending)
        event.listen(db, "after_rollback", lambda session: session.info.pop(_PENDING, None))
        db.info[_HOOKED] = True
    pending.append(dict(at=utcnow(), actor=actor, action=action, subject=subject, coach_id=coach_id,
                        ip=ip, detail=json.loads(json.dumps(detail, default=str))))


def _append_pending(db: Session) -> None:
    pending = db.info.pop(_PENDING, None)
    if not pending:
        return
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    last = db.exec(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).first()
    prev, key = last or GENESIS, chain_key(db)
    for item in pending:
        row = AuditEvent(**item, prev_hash=prev, hash=_digest(key, prev, **item))
        db.add(row)
        prev = row.hash
    db.flush()


@dataclass
class ChainReport:
    checked: int
    broken_at: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def head(db: Session) -> tuple[int, str] | None:
    """The newest row's id and hash: what an anchor records."""
    row = db.exec(select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).first()
    return (row[0], row[1]) if row else None


def verify(db: Session, anchors=(), batch: int = 5000) -> ChainReport:
    """Walk the chain in order; report the first row whose link or content does not hold, then
    any anchored (id, hash) the chain no longer holds (rows deleted from its end)."""
    prev, checked, after, key = GENESIS, 0, 0, chain_key(db)
    anchored = dict(anchors)
    while True:
        rows = db.exec(select(AuditEvent).where(AuditEvent.id > after)
                       .order_by(AuditEvent.id).limit(batch)).all()
        if not rows:
            break
        for row in rows:
            if row.prev_hash != prev:
                return ChainReport(checked, row.id, "previous-hash link does not match")
            expected = _digest(key, row.prev_hash, at=row.at, actor=row.actor, action=row.action,
                               subject=row.subject, coach_id=row.coach_id, ip=row.ip,
                               detail=row.detail or {})
            if not hmac.compare_digest(row.hash, expected):
                return ChainReport(checked, row.id, "row content does not match its hash")
            if anchored.pop(row.id, row.hash) != row.hash:
                return ChainReport(checked, row.id, "row differs from the anchored chain head")
            prev, after, checked = row.hash, row.id, checked + 1
    if anchored:
        missing = min(anchored)
        return ChainReport(checked, missing, "an anchored event is missing: rows were deleted "
                                             "from the end of the chain")
    return ChainReport(checked)
