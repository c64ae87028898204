"""Queries over coach data. Every one that reads a coach's clients, sessions or objects
takes the coach id and filters on it; there is deliberately no unscoped accessor."""

from __future__ import annotations

from sqlmodel import Session, select

from models import sealing
from models.tables import (Asset, Client, Coach, CoachingSession, Consent, MeetingMapping, Transcript,
                           ZoomConnection)


# Coaches are the tenants themselves: looking one up is how every request gets its scope.
def coach_by_id(db: Session, coach_id: str) -> Coach | None:
    return db.get(Coach, coach_id)


def coach_by_email(db: Session, email: str) -> Coach | None:
    return db.exec(select(Coach).where(Coach.email == email.strip().lower())).first()


def coach_by_zoom_host(db: Session, host_id: str | None, host_email: str | None) -> Coach | None:
    if host_id:
        coach = db.exec(select(Coach).where(Coach.zoom_user_id == host_id)).first()
        if coach:
            return coach
    return coach_by_email(db, host_email) if host_email else None


def coach_by_zoom_user(db: Session, zoom_user_id: str) -> Coach | None:
    return db.exec(select(Coach).where(Coach.zoom_user_id == zoom_user_id)).first()


def zoom_connection_for_host(db: Session, account_id: str | None, host_id: str | None) -> ZoomConnection | None:
    """The coach's own Zoom connection a webhook belongs to: by host id and, when the event
    names one, the account id too (an event of another account never matches)."""
    if not host_id:
        return None
    query = select(ZoomConnection).where(ZoomConnection.zoom_user_id == host_id)
    if account_id:
        query = query.where(ZoomConnection.zoom_account_id == account_id)
    return db.exec(query).first()


def zoom_connection_of(db: Session, coach_id: str) -> ZoomConnection | None:
    return db.exec(select(ZoomConnection).where(ZoomConnection.coach_id == coach_id)).first()


def coach_by_slack_user(db: Session, slack_user_id: str) -> Coach | None:
    return db.exec(select(Coach).where(Coach.slack_user_id == slack_user_id)).first()


def all_coaches(db: Session) -> list[Coach]:
    return list(db.exec(select(Coach).order_by(Coach.created_at)))


def client_of(db: Session, coach_id: str, client_id: str) -> Client | None:
    return db.exec(select(Client).where(Client.coach_id == coach_id,
                                        Client.id == client_id)).first()


# Clients are found by the keyed HMAC of their email: the address itself is sealed.
def client_by_email(db: Session, coach_id: str, email: str) -> Client | None:
    return db.exec(select(Client).where(
        Client.coach_id == coach_id,
        Client.email_hmac == sealing.lookup(db, sealing.normalise_email(email)))).first()


def clients_by_emails(db: Session, coach_id: str, emails: list[str]) -> list[Client]:
    wanted = {sealing.lookup(db, sealing.normalise_email(e)) for e in emails if e}
    if not wanted:
        return []
    return list(db.exec(select(Client).where(Client.coach_id == coach_id,
                                             Client.email_hmac.in_(sorted(wanted)))))


def clients_of(db: Session, coach_id: str) -> list[Client]:
    """The coach's clients by name (sorted here: the names are sealed)."""
    found = db.exec(select(Client).where(Client.coach_id == coach_id))
    return sorted(found, key=lambda c: ((c.name or "").casefold(), c.id))


def active_consent(db: Session, coach_id: str, client_id: str) -> Consent | None:
    return db.exec(select(Consent).where(Consent.coach_id == coach_id,
                                         Consent.client_id == client_id,
                                         Consent.withdrawn_at.is_(None))
                   .order_by(Consent.granted_at.desc())).first()


def consents_of(db: Session, coach_id: str, client_id: str) -> list[Consent]:
    return list(db.exec(select(Consent).where(Consent.coach_id == coach_id,
                                              Consent.client_id == client_id)
                        .order_by(Consent.granted_at)))


def mapped_client(db: Session, coach_id: str, platform: str, meeting_id: str) -> Client | None:
    mapping = db.exec(select(MeetingMapping).where(MeetingMapping.coach_id == coach_id,
                                                   MeetingMapping.platform == platform,
                                                   MeetingMapping.meeting_id == str(meeting_id))
                      ).first()
    return client_of(db, coach_id, mapping.client_id) if mapping else None


def session_of(db: Session, coach_id: str, session_id: str) -> CoachingSession | None:
    return db.exec(select(CoachingSession).where(CoachingSession.coach_id == coach_id,
                                                 CoachingSession.id == session_id)).first()


def transcript_of(db: Session, coach_id: str, session_id: str) -> Transcript | None:
    return db.exec(select(Transcript).where(Transcript.coach_id == coach_id,
                                            Transcript.session_id == session_id)).first()


def session_by_platform(db: Session, coach_id: str, platform: str,
                        platform_uuid: str) -> CoachingSession | None:
    return db.exec(select(CoachingSession).where(CoachingSession.coach_id == coach_id,
                                                 CoachingSession.platform == platform,
                                                 CoachingSession.platform_uuid == platform_uuid)
                   ).first()


def sessions_of(db: Session, coach_id: str, client_id: str | None = None) -> list[CoachingSession]:
    q = select(CoachingSession).where(CoachingSession.coach_id == coach_id)
    if client_id:
        q = q.where(CoachingSession.client_id == client_id)
    return list(db.exec(q.order_by(CoachingSession.started_at.desc())))


def assets_of_session(db: Session, coach_id: str, session_id: str) -> list[Asset]:
    return list(db.exec(select(Asset).where(Asset.coach_id == coach_id,
                                            Asset.session_id == session_id)
                        .order_by(Asset.created_at)))


def asset_for_file(db: Session, coach_id: str, session_id: str, file_id: str) -> Asset | None:
    return db.exec(select(Asset).where(Asset.coach_id == coach_id, Asset.session_id == session_id,
                                       Asset.platform_file_id == file_id)).first()


def media_assets_of_session(db: Session, coach_id: str, session_id: str, kinds) -> list[Asset]:
    return list(db.exec(select(Asset).where(Asset.coach_id == coach_id, Asset.session_id == session_id,
                                            Asset.kind.in_(list(kinds)))))
