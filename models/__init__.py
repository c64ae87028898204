"""holdspace's tables, the database engine and the coach-scoped queries.

Imports none of the other packages: webhooks, workers, portal and bot build on this."""

from models.tables import (  # noqa: F401
    Asset, AuditEvent, Client, ClientMemory, Coach, CoachInsight, CoachingSession, Consent,
    DeletionReceipt, GoogleConnection, InboxEvent, SearchTerm, SearchVocabulary, SlackInstallation,
    TranscriptPassage, ZoomConnection,
    Link, MeetingMapping, OutboundMessage, PrivateNote, SessionState, Summary, Transcript,
    CONSENT_SCOPES, DELIVERY_MODES, MEDIA_POLICIES, NOTIFY_CHANNELS, as_utc, new_id, utcnow,
)
