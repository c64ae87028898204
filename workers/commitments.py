"""The client's own word on a commitment: marking it done from their journey page.

The mark goes into the client's memory exactly as a later session reporting it done would
(status done, with what closed it), so the next briefing and the journey agree; it is
audited as the client's act, without the commitment's words. A commitment is named by a
short key made from where it was made and what it says, so a key from an old page can never
close a different one."""

from __future__ import annotations

import hashlib

from sqlmodel import Session, select

from models import ClientMemory, audit, utcnow
from workers import fence


class NoSuchCommitment(LookupError):
    """The key names no open commitment of this client (already closed, or never theirs)."""


def key_of(commitment: dict) -> str:
    made = (commitment.get("made_in") or {}).get("session_id") or ""
    return hashlib.sha256(f"{made}\0{commitment.get('what', '')}".encode()).hexdigest()[:16]


def mark_done(db: Session, coach_id: str, client_id: str, key: str, *, ip: str | None = None) -> str:
    """Close one open commitment as done by the client; returns "done" or "already done"."""
    fence.hold(db, coach_id, client_id, need="summarise")
    row = db.exec(select(ClientMemory).where(ClientMemory.coach_id == coach_id,
                                             ClientMemory.client_id == client_id)
                  .with_for_update()).first()
    commitments = list((row.data or {}).get("commitments") or []) if row else []
    found = next((c for c in commitments if key_of(c) == key), None)
    if found is None:
        raise NoSuchCommitment(key)
    if found.get("status") == "done":
        return "already done"
    if found.get("status") != "open":
        raise NoSuchCommitment(key)
    made_in = found.get("made_in") or {}
    found = {**found, "status": "done",
             "closed_by": {"session_id": made_in.get("session_id") or "", "timestamp": 0.0,
                           "text": f"marked done by the client on {utcnow():%-d %b %Y}"}}
    row.data = {**row.data, "commitments": [found if key_of(c) == key else c for c in commitments]}
    row.updated_at = utcnow()
    audit.record(db, "client", "commitment.marked_done", f"client:{client_id}", coach_id=coach_id,
                 ip=ip, commitment=key)
    return "done"
