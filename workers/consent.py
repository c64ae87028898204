"""Granting and withdrawing consent. Withdrawal stops every further ingestion at once; the
full deletion cascade builds on `withdraw()`."""

from __future__ import annotations

from sqlmodel import Session

from models import CONSENT_SCOPES, Client, Consent, audit, utcnow
from models import consent_text
from models import queries as q


# What each scope lets holdspace keep or do, in a word, for the coach's lists and Slack.
SCOPE_WORDS = {"record": "recording", "transcribe": "transcript", "summarise": "summary",
               "share_with_client": "downloads"}


class ConsentError(ValueError):
    pass


def scope_words(scopes) -> str:
    """Scopes (a set, a list or the stored comma-separated text) in plain words, in the order
    a consent lists them: "recording, transcript, summary, downloads"."""
    chosen = set(scopes.split(",") if isinstance(scopes, str) else scopes)
    return ", ".join(SCOPE_WORDS[s] for s in CONSENT_SCOPES if s in chosen) or "nothing"


def parse_scopes(raw: str | None) -> list[str]:
    if not raw:
        return list(CONSENT_SCOPES)
    scopes = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = sorted(set(scopes) - set(CONSENT_SCOPES))
    if unknown:
        raise ConsentError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(CONSENT_SCOPES)}")
    if "record" not in scopes and len(scopes) > 0 and set(scopes) & {"transcribe", "summarise"}:
        raise ConsentError("transcribe and summarise need the record scope")
    return [s for s in CONSENT_SCOPES if s in scopes]


def grant(db: Session, client: Client, *, scopes: list[str], method: str, actor: str,
          ip: str | None = None, user_agent: str | None = None) -> Consent:
    """Record a consent, replacing any active one (the history is kept)."""
    if method not in ("written", "verbal_attested"):
        raise ConsentError("method must be written or verbal_attested")
    if client.erasing_at is not None:
        # The fence stays up for good: nothing may be recorded again under an erased client.
        raise ConsentError("this client withdrew and their data was deleted; nothing more can be recorded for them")
    now = utcnow()
    for old in q.consents_of(db, client.coach_id, client.id):
        if old.withdrawn_at is None:
            old.withdrawn_at = now
    consent = Consent(coach_id=client.coach_id, client_id=client.id, scopes=",".join(scopes),
                      method=method, text_version=consent_text.VERSION,
                      text_sha256=consent_text.SHA256, evidence_ip=ip,
                      evidence_user_agent=user_agent, granted_at=now)
    client.withdrawn_at = None
    db.add(consent)
    db.flush()
    audit.record(db, actor, "consent.granted", f"client:{client.id}", coach_id=client.coach_id,
                 ip=ip, scopes=scopes, method=method, text_version=consent_text.VERSION)
    return consent


def withdraw(db: Session, client: Client, *, actor: str, ip: str | None = None) -> int:
    """Withdraw every active consent of the client; returns how many were active."""
    now = utcnow()
    active = [c for c in q.consents_of(db, client.coach_id, client.id) if c.withdrawn_at is None]
    for c in active:
        c.withdrawn_at = now
    client.withdrawn_at = now
    audit.record(db, actor, "consent.withdrawn", f"client:{client.id}", coach_id=client.coach_id,
                 ip=ip, active=len(active))
    return len(active)
