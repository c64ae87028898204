"""The audit trail: one `record()` for everything accessed or changed, hash-chained so that
an edited or deleted row shows up in `verify()`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, text
from sqlmodel import Session, select

from models.tables import AuditEvent, utcnow

GENESIS = "0" * 64
# Any constant works: it names the one advisory lock that serialises appends on Postgres.
_PG_LOCK_KEY = 0x686F6C64
_PENDING, _HOOKED = "holdspace.audit.pending", "holdspace.audit.hooked"


def _digest(prev_hash: str, at: datetime, actor: str, action: str, subject: str,
            coach_id: str | None, ip: str | None, detail: dict) -> str:
    body = json.dumps(
        {"prev": prev_hash, "at": at.isoformat(timespec="microseconds"), "actor": actor,
         "action": action, "subject": subject, "coach": coach_id, "ip": ip, "detail": detail},
        sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


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
    prev = last or GENESIS
    for item in pending:
        row = AuditEvent(**item, prev_hash=prev, hash=_digest(prev, **item))
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


def verify(db: Session, batch: int = 5000) -> ChainReport:
    """Walk the chain in order; report the first row whose link or content does not hold."""
    prev, checked, after = GENESIS, 0, 0
    while True:
        rows = db.exec(select(AuditEvent).where(AuditEvent.id > after)
                       .order_by(AuditEvent.id).limit(batch)).all()
        if not rows:
            return ChainReport(checked)
        for row in rows:
            if row.prev_hash != prev:
                return ChainReport(checked, row.id, "previous-hash link does not match")
            expected = _digest(row.prev_hash, row.at, row.actor, row.action, row.subject,
                               row.coach_id, row.ip, row.detail or {})
            if row.hash != expected:
                return ChainReport(checked, row.id, "row content does not match its hash")
            prev, after, checked = row.hash, row.id, checked + 1
