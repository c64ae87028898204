"""The one place that signs and checks client links.

A token is the link's id signed with SECRET_KEY (itsdangerous); everything else about the
link (purpose, subject, expiry, revocation, uses) lives in its `Link` row, so a link can be
revoked or expire without the token changing."""

from __future__ import annotations

import re
from datetime import timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlmodel import Session, select

from models import Link, audit, utcnow

PURPOSES = ("session", "consent", "journey")


class LinkNotFound(Exception):
    """Forged, tampered or unknown: the caller may not learn that anything exists (404)."""


class LinkGone(Exception):
    """Expired or revoked (410); carries the row so the page can offer a fresh link."""

    def __init__(self, link: Link, reason: str):
        super().__init__(reason)
        self.link, self.reason = link, reason


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt="holdspace.link.v1")


def token_for(secret_key: str, link: Link) -> str:
    return _serializer(secret_key).dumps(link.id)


# A link in a queued message is kept as its id; the live URL is made when the message is sent,
# so no bearer token is ever at rest in the outbox (tokens are the signed link id).
_PLACEHOLDER = re.compile(r"\[\[hs-link:([scj]):([0-9a-f]{32})\]\]")


def url_of(link: Link, path: str) -> str:
    """What a message body holds for the link's URL until it is sent (`render_urls`)."""
    return f"[[hs-link:{path}:{link.id}]]"


def render_urls(text: str | None, secret_key: str, base_url: str) -> str | None:
    """The message as sent: each held link made into its live URL."""
    if not text:
        return text
    serializer = _serializer(secret_key)
    return _PLACEHOLDER.sub(lambda m: f"{base_url}/{m.group(1)}/{serializer.dumps(m.group(2))}", text)


def issue(db: Session, secret_key: str, *, coach_id: str, client_id: str, purpose: str,
          ttl_seconds: int, session_id: str | None = None, actor: str = "system") -> tuple[Link, str]:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    link = Link(coach_id=coach_id, client_id=client_id, session_id=session_id, purpose=purpose,
                expires_at=utcnow() + timedelta(seconds=ttl_seconds))
    db.add(link)
    db.flush()
    audit.record(db, actor, "link.issued", f"link:{link.id}", coach_id=coach_id,
                 purpose=purpose, client=client_id, session=session_id)
    return link, token_for(secret_key, link)


def check(db: Session, secret_key: str, token: str, purpose: str, *, ip: str | None = None,
          count_use: bool = True) -> Link:
    """The live link behind a token, its use counted and audited; raises LinkNotFound/LinkGone."""
    try:
        link_id = _serializer(secret_key).loads(token)
    except BadSignature:
        raise LinkNotFound() from None
    link = db.get(Link, link_id) if isinstance(link_id, str) else None
    if link is None or link.purpose != purpose:
        raise LinkNotFound()
    if link.revoked_at is not None:
        raise LinkGone(link, "revoked")
    if link.expires_at <= utcnow():
        raise LinkGone(link, "expired")
    if count_use:
        link.uses += 1
        audit.record(db, "client", "link.used", f"link:{link.id}", coach_id=link.coach_id, ip=ip,
                     purpose=purpose, session=link.session_id)
    return link


def revoke_for_client(db: Session, coach_id: str, client_id: str, *,
                      session_id: str | None = None, actor: str = "system") -> int:
    """Revoke the client's live links (only one session's, when given); returns how many."""
    q = select(Link).where(Link.coach_id == coach_id, Link.client_id == client_id,
                           Link.revoked_at.is_(None))
    if session_id:
        q = q.where(Link.session_id == session_id)
    links = list(db.exec(q))
    now = utcnow()
    for link in links:
        link.revoked_at = now
    if links:
        audit.record(db, actor, "link.revoked", f"client:{client_id}", coach_id=coach_id,
                     count=len(links), session=session_id)
    return len(links)


def current_journey_link(db: Session, coach_id: str, client_id: str) -> Link | None:
    return db.exec(select(Link).where(Link.coach_id == coach_id, Link.client_id == client_id,
                                      Link.purpose == "journey", Link.revoked_at.is_(None),
                                      Link.expires_at > utcnow())
                   .order_by(Link.expires_at.desc())).first()


def session_token(db: Session, secret_key: str, coach_id: str, client_id: str, session_id: str, *,
                  ttl_seconds: int) -> str:
    """A token for one of the client's session pages, for the journey's list of sessions:
    their live link to it if one has more than a day left, else a new one."""
    return token_for(secret_key, _live_or_new(db, secret_key, coach_id, client_id, "session",
                                              ttl_seconds, session_id=session_id))


def _live_or_new(db: Session, secret_key: str, coach_id: str, client_id: str, purpose: str,
                 ttl_seconds: int, session_id: str | None = None) -> Link:
    query = select(Link).where(Link.coach_id == coach_id, Link.client_id == client_id,
                               Link.purpose == purpose, Link.revoked_at.is_(None),
                               Link.expires_at > utcnow() + timedelta(days=1))
    if session_id is not None:
        query = query.where(Link.session_id == session_id)
    live = db.exec(query.order_by(Link.expires_at.desc())).first()
    if live is not None:
        return live
    return issue(db, secret_key, coach_id=coach_id, client_id=client_id, purpose=purpose,
                 session_id=session_id, ttl_seconds=ttl_seconds, actor="client")[0]


def consent_link(db: Session, secret_key: str, coach_id: str, client_id: str, *,
                 ttl_seconds: int) -> Link:
    """The client's consent page link that every client page and email carries: their live
    one if it has more than a day left, else a new one."""
    return _live_or_new(db, secret_key, coach_id, client_id, "consent", ttl_seconds)


def consent_token(db: Session, secret_key: str, coach_id: str, client_id: str, *,
                  ttl_seconds: int) -> str:
    return token_for(secret_key, consent_link(db, secret_key, coach_id, client_id, ttl_seconds=ttl_seconds))


def purge_expired(db: Session, older_than: timedelta, now=None) -> int:
    """Delete link rows that expired longer ago than `older_than` (they answer 404 after)."""
    cutoff = (now or utcnow()) - older_than
    rows = list(db.exec(select(Link).where(Link.expires_at < cutoff)))
    for row in rows:
        db.delete(row)
    return len(rows)
