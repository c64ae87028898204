"""The erasure fence: the one owner of "may anything still be written for this client?".

A withdrawal, or the deletion of a client or a session, first marks the client (or the
session) as being erased, in one transaction, holding the client's row lock. Every step that
writes for a client (download, vault put, transcript, summary, memory, delivery) calls `hold()`
in the transaction that commits its work: it takes the same row lock, re-reads the mark and the
client's consent, and raises `Fenced` when either says no, so the transaction commits nothing.

Work done outside a transaction (streaming a recording into the vault) is checked twice: before
it starts, and again when its result is committed; a result that lost the race is deleted by
the writer itself. The client's vault key is created here and nowhere else: when the client
is added (their name and email are sealed under it), and never for a client being erased.
"""

from __future__ import annotations

from sqlmodel import Session, select

from models import Client, CoachingSession, utcnow
from workers import sessions
from workers.sessions import Fenced

__all__ = ["Fenced", "client_key", "hold", "lock_client", "mark_client", "mark_session", "may_match",
           "new_client"]


def lock_client(db: Session, coach_id: str, client_id: str | None) -> Client | None:
    """The client's row, locked for the rest of the transaction and read afresh.

    On Postgres this is SELECT … FOR UPDATE; SQLite has no row locks, but every transaction
    there begins IMMEDIATE (models/db.py), which serialises writers the same way."""
    if not client_id:
        return None
    return db.exec(select(Client).where(Client.coach_id == coach_id, Client.id == client_id)
                   .with_for_update().execution_options(populate_existing=True)).first()


def _lock_session(db: Session, coach_id: str, session_id: str) -> CoachingSession | None:
    """The session's row, locked and read afresh (always after its client's, as `hold` does)."""
    return db.exec(select(CoachingSession).where(CoachingSession.coach_id == coach_id,
                                                 CoachingSession.id == session_id)
                   .with_for_update().execution_options(populate_existing=True)).first()


def hold(db: Session, coach_id: str, client_id: str | None, *, need: str | None = "keep",
         session_id: str | None = None) -> Client:
    """Lock the client and check that writing for it (and for `session_id`) may go on, with
    consent allowing `need` (a step of the consent policy; None: no consent needed, as for
    the coach's own record of the client). Raises Fenced otherwise."""
    client = lock_client(db, coach_id, client_id)
    if client is None or not may_match(client):
        raise Fenced(f"client {client_id} is being erased or has withdrawn")
    if session_id is not None:
        session = _lock_session(db, coach_id, session_id)
        if session is None or session.erasing_at is not None or session.client_id != client.id:
            raise Fenced(f"session {session_id} is gone or being erased")
    if need is not None and not sessions.may(sessions.consent_scopes(db, coach_id, client.id), need):
        raise Fenced(f"consent of client {client.id} does not allow {need}")
    return client


def client_key(db: Session, rt, coach_id: str, client_id: str) -> str:
    """The client's vault key id, created on first use: inside the fence, so only for a
    client with active consent to keep recordings and never for one being erased."""
    client = hold(db, coach_id, client_id, need="keep")
    if not client.data_key_id:
        client.data_key_id = rt.vault.ensure_client_key(client.id)
    return client.data_key_id


def new_client(db: Session, rt, coach_id: str, *, email: str, name: str) -> Client:
    """Add a client with its vault key: its name and email are sealed under that key from the
    first write (a new client is never being erased)."""
    client = Client(coach_id=coach_id, email=email, name=name)
    client.data_key_id = rt.vault.ensure_client_key(client.id)
    db.add(client)
    db.flush()
    return client


def mark_client(db: Session, coach_id: str, client_id: str) -> Client | None:
    """Start erasing the client: from this transaction's commit no writer commits for it."""
    client = lock_client(db, coach_id, client_id)
    if client is not None and client.erasing_at is None:
        client.erasing_at = utcnow()
    return client


def mark_session(db: Session, coach_id: str, client_id: str | None, session_id: str) -> None:
    """Start erasing one session (the client's lock first, as every writer takes them)."""
    lock_client(db, coach_id, client_id)
    session = _lock_session(db, coach_id, session_id)
    if session is not None and session.erasing_at is None:
        session.erasing_at = utcnow()


def may_match(client: Client) -> bool:
    """Whether a new recording may still be tied to this client."""
    return client.erasing_at is None and client.withdrawn_at is None
