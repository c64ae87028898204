"""The tables of DESIGN.md's Data section, as SQLModel classes.

Times are aware UTC datetimes (SQLModel stores and returns them in UTC); ids of coaching things are random
hex strings so they can appear in URLs and vault paths without revealing counts."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy.types import JSON
from sqlmodel import Field, SQLModel

from models.sealing import register, sealed_json, sealed_text

CONSENT_SCOPES = ("record", "transcribe", "summarise", "share_with_client")
MEDIA_POLICIES = ("keep_video", "audio_only", "drop_media_after_transcription")


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A stored moment as an aware UTC one: a database hands columns back naive, and they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class ClientOwned:
    """Sealed under the key of the row's client (models/sealing.py)."""
    __sealed_owner_columns__ = ("client_id",)

    def __sealed_owner__(self) -> str | None:
        return self.client_id


class ClientOrCoachOwned:
    """Sealed under the client's key once the row belongs to a client, the coach's before."""
    __sealed_owner_columns__ = ("client_id",)

    def __sealed_owner__(self) -> str | None:
        if self.client_id:
            return self.client_id
        return f"coach.{self.coach_id}" if self.coach_id else "service.outbox"


class SessionState(str, enum.Enum):
    received = "received"
    fetching = "fetching"
    stored = "stored"
    transcribing = "transcribing"
    summarising = "summarising"
    delivered = "delivered"
    unmatched = "unmatched"
    refused_no_consent = "refused_no_consent"
    # A recording event whose files held nothing holdspace keeps (the coach is told what came).
    nothing_to_keep = "nothing_to_keep"
    failed = "failed"
    # Summarised and waiting for the coach to read, edit and send it (a coach in review mode).
    ready_for_review = "ready_for_review"


# How a finished session reaches the client: at once, or after the coach has reviewed it.
DELIVERY_MODES = ("auto", "review")
# Where holdspace tells the coach things: Slack when they have it linked, else email; or email.
NOTIFY_CHANNELS = ("slack", "email")


class Coach(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    email: str = Field(unique=True, index=True)
    name: str
    slack_user_id: str | None = Field(default=None, unique=True)
    # The workspace of that Slack user: whose installation (bot token) speaks to the coach.
    slack_team_id: str | None = Field(default=None, index=True)
    zoom_user_id: str | None = Field(default=None, unique=True)
    google_user_id: str | None = Field(default=None, unique=True)
    time_zone: str = "UTC"
    retention_years: int = 7
    # Optionally drop video and audio this many days after a session, keeping transcript and summary.
    drop_media_after_days: int | None = None
    media_policy: str = "keep_video"
    # Whether Zoom's cloud copy is moved to Zoom's trash when holdspace refuses a recording
    # (no consent) or deletes a client's data.
    trash_zoom_copies: bool = False
    # Whether Zoom's own transcript may be used (and waited for) instead of transcribing here.
    allow_platform_transcript: bool = True
    delivery_mode: str = "auto"
    notify_by: str = "slack"
    # Whether the client's page shows the "how it felt" line read from their words (off: an
    # automatic mood reading a client did not ask for can feel like being watched).
    show_mood_to_client: bool = False
    created_at: datetime = Field(default_factory=utcnow)


@register
class Client(SQLModel, table=True):
    """A coach's client. Name and email are sealed under the client's own key; the email's
    keyed HMAC finds the row. After erasure the row is a tombstone: ids, dates, the HMAC."""
    __table_args__ = (UniqueConstraint("coach_id", "email_hmac"),)
    __sealed_owner_columns__ = ()
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    email: str | None = Field(default=None, sa_column=sealed_text(lookup="email_hmac"))
    email_hmac: str | None = Field(default=None, index=True)
    name: str | None = Field(default=None, sa_column=sealed_text())
    last_session_at: datetime | None = None
    # The vault's id for this client's data key (the key itself lives only wrapped, in the vault).
    data_key_id: str | None = None
    withdrawn_at: datetime | None = None
    # Set when a withdrawal or deletion of this client starts: from then on no writer commits
    # anything for the client (workers/fence.py).
    erasing_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)

    def __sealed_owner__(self) -> str:
        return self.id


@register
class Consent(ClientOwned, SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str = Field(foreign_key="client.id", index=True)
    scopes: str  # comma-separated subset of CONSENT_SCOPES
    method: str  # written | verbal_attested
    text_version: str
    text_sha256: str
    evidence_ip: str | None = Field(default=None, sa_column=sealed_text())
    evidence_user_agent: str | None = Field(default=None, sa_column=sealed_text())
    granted_at: datetime = Field(default_factory=utcnow)
    withdrawn_at: datetime | None = None

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(s for s in self.scopes.split(",") if s)


class MeetingMapping(SQLModel, table=True):
    """A coach's own note that a recurring meeting belongs to one client."""
    __table_args__ = (UniqueConstraint("coach_id", "platform", "meeting_id"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str = Field(foreign_key="client.id")
    platform: str = "zoom"
    meeting_id: str


class GoogleConnection(SQLModel, table=True):
    """A coach's link to Google Meet: how holdspace may act for them, and their event
    subscription. The refresh token is stored only sealed under the vault's master key."""
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", unique=True)
    mode: str  # oauth | delegation
    google_user_id: str | None = None
    refresh_token_sealed: str | None = Field(default=None, sa_column=Column(Text))
    subscription_name: str | None = Field(default=None, index=True)
    subscription_expires_at: datetime | None = None
    status: str = "active"  # active | suspended | expired | disconnected
    status_reason: str | None = None
    connected_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ZoomConnection(SQLModel, table=True):
    """A coach's own Zoom, connected through the user-authorised app: who they are at Zoom and
    the tokens holdspace acts with, both only sealed by the vault.

    Zoom spends the refresh token on every refresh, so a refresh is taken by one worker at a
    time: it claims `refresh_lease_until` with a compare-and-swap on `token_version`, and every
    new pair of tokens bumps the version (workers/platforms/zoom_tokens.py)."""
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", unique=True)
    zoom_user_id: str = Field(index=True)
    zoom_account_id: str = Field(index=True)
    access_token_sealed: str | None = Field(default=None, sa_column=Column(Text))
    refresh_token_sealed: str | None = Field(default=None, sa_column=Column(Text))
    access_expires_at: datetime | None = None
    scope: str | None = None
    token_version: int = 0
    refresh_lease_until: datetime | None = None
    status: str = "active"  # active | broken | deauthorized | disconnected
    status_reason: str | None = None
    connected_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SlackInstallation(SQLModel, table=True):
    """holdspace's bot in one Slack workspace (OAuth v2): one row per workspace, its bot token
    only sealed by the vault; cleared when the app is uninstalled or its tokens are revoked."""
    __table_args__ = (UniqueConstraint("enterprise_id", "team_id"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    team_id: str = Field(index=True)
    team_name: str | None = None
    enterprise_id: str = ""  # "" outside Enterprise Grid, so the unique pair holds everywhere
    is_enterprise_install: bool = False
    app_id: str | None = None
    bot_id: str | None = None
    bot_user_id: str | None = None
    bot_scopes: str = ""
    bot_token_sealed: str | None = Field(default=None, sa_column=Column(Text))
    installer_user_id: str | None = None
    status: str = "active"  # active | uninstalled | revoked
    installed_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


@register
class CoachingSession(ClientOrCoachOwned, SQLModel, table=True):
    __table_args__ = (UniqueConstraint("coach_id", "platform", "platform_uuid"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str | None = Field(default=None, foreign_key="client.id", index=True)
    platform: str
    platform_meeting_id: str | None = None
    platform_uuid: str
    topic: str = Field(default="", sa_column=sealed_text())
    started_at: datetime | None = None
    duration_minutes: int | None = None
    ended_at: datetime | None = None
    state: str = SessionState.received.value
    error: str | None = None
    reconcile_attempts: int = 0
    # Set when the deletion of this session starts (workers/fence.py).
    erasing_at: datetime | None = None
    # Set when the coach revokes the client's links to this session: it leaves the client's
    # journey and no fresh link is sent for it until the coach shares it again (resend).
    withheld_at: datetime | None = None
    # Set when a coach in review mode sends the reviewed summary: delivery may go ahead.
    approved_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Asset(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("session_id", "platform_file_id"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str = Field(foreign_key="client.id", index=True)
    session_id: str = Field(foreign_key="coachingsession.id", index=True)
    kind: str  # video | audio | participant_audio | transcript | chat | transcript_vtt
    label: str | None = None  # for a participant's own audio track: whose voice it is
    platform_file_id: str
    object_key: str
    content_type: str
    size: int
    ciphertext_size: int
    sha256: str
    duration_seconds: float | None = None
    created_at: datetime = Field(default_factory=utcnow)


@register
class Transcript(ClientOwned, SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str = Field(foreign_key="client.id", index=True)
    session_id: str = Field(foreign_key="coachingsession.id", unique=True)
    engine: str
    language: str | None = None
    segments: list = Field(default_factory=list, sa_column=sealed_json())
    text: str = Field(default="", sa_column=sealed_text())
    created_at: datetime = Field(default_factory=utcnow)


@register
class Summary(ClientOwned, SQLModel, table=True):
    """The client tier of a session's summary: what the client may read."""
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str = Field(foreign_key="client.id", index=True)
    session_id: str = Field(foreign_key="coachingsession.id", unique=True)
    engine: str
    basic: bool = False  # made by the offline summariser, and labelled so
    client_tier: dict = Field(default_factory=dict, sa_column=sealed_json())
    created_at: datetime = Field(default_factory=utcnow)


@register
class CoachInsight(ClientOwned, SQLModel, table=True):
    """The coach tier of a session's summary, in its own table so that no query written for a
    client view can reach it by selecting one column too many."""
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str = Field(foreign_key="client.id", index=True)
    session_id: str = Field(foreign_key="coachingsession.id", unique=True)
    engine: str
    coach_tier: dict = Field(default_factory=dict, sa_column=sealed_json())
    created_at: datetime = Field(default_factory=utcnow)


@register
class ClientMemory(ClientOwned, SQLModel, table=True):
    """What carries from one session to the next: open commitments, themes, goals, threads."""
    __table_args__ = (UniqueConstraint("coach_id", "client_id"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str = Field(foreign_key="client.id", index=True)
    data: dict = Field(default_factory=dict, sa_column=sealed_json())
    sessions_seen: list = Field(default_factory=list, sa_column=Column(JSON))
    updated_at: datetime = Field(default_factory=utcnow)


def passage_row(session_id: str, start: float) -> str:
    """What a passage's sealed text is bound to: its session and its start (a passage's id is
    only known once it is inserted, after the text is sealed)."""
    return f"{session_id}@{float(start)!r}"


@register
class TranscriptPassage(ClientOwned, SQLModel, table=True):
    """About half a minute of a transcript, sealed under the client's key: the unit of search,
    found through the blind index (SearchTerm, models/search.py)."""
    id: int | None = Field(default=None, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str = Field(foreign_key="client.id", index=True)
    session_id: str = Field(foreign_key="coachingsession.id", index=True)
    start: float
    end: float
    text: str = Field(sa_column=sealed_text())

    def __sealed_row__(self) -> str:
        return passage_row(self.session_id, self.start)


class SearchTerm(SQLModel, table=True):
    """One word's postings in one client's passages, under a blind name: the keyed HMAC of the
    word's stem under that client's search key, so the row says nothing of the word to anyone
    without the key. `postings` packs passage ids and counts (models/search.py)."""
    term: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    client_id: str = Field(foreign_key="client.id", primary_key=True, index=True)
    coach_id: str = Field(foreign_key="coach.id")
    postings: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


@register
class SearchVocabulary(ClientOwned, SQLModel, table=True):
    """A client's distinct transcript words that share a start (their first three letters),
    sorted and sealed, under the blind name of that start: what a search for the start of a
    word opens to learn which words it begins (no blind name can be matched by prefix)."""
    client_id: str = Field(foreign_key="client.id", primary_key=True)
    bucket: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    coach_id: str = Field(foreign_key="coach.id", index=True)
    words: str = Field(sa_column=sealed_text(nullable=False))

    def __sealed_row__(self) -> str:
        return f"{self.client_id}/{self.bucket}"


@register
class PrivateNote(SQLModel, table=True):
    """The coach's own note: sealed under the coach's key and bound to the client, so it
    outlives the client's withdrawal as the coach's record and opens for no one else."""
    __sealed_owner_columns__ = ("client_id",)
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str | None = Field(default=None, foreign_key="client.id", index=True)
    session_id: str | None = Field(default=None, foreign_key="coachingsession.id")
    body: str = Field(sa_column=sealed_text())
    client_withdrawn: bool = False
    created_at: datetime = Field(default_factory=utcnow)

    def __sealed_owner__(self) -> str:
        return f"coach.{self.coach_id}"


class Link(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)  # the token's jti
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str = Field(foreign_key="client.id", index=True)
    session_id: str | None = Field(default=None, foreign_key="coachingsession.id")
    purpose: str  # session | consent | journey
    expires_at: datetime
    revoked_at: datetime | None = None
    uses: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Append-only; each row stores the hash of the previous one (see models/audit.py)."""
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str
    action: str = Field(index=True)
    subject: str
    coach_id: str | None = Field(default=None, index=True)
    ip: str | None = None
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON))
    prev_hash: str
    hash: str


@register
class InboxEvent(SQLModel, table=True):
    """Every accepted webhook delivery (or reconciled discovery), unique on its dedupe key.

    The payload names the meeting, its host and often its participants, and holds a download
    token until processed: it is sealed under the service's inbox key on arrival, the coach's
    once the host is known, and the client's once the session is theirs (so it is shredded
    with them, backups included)."""
    __table_args__ = (Index("ix_inboxevent_status_updated", "status", "updated_at"),)
    __sealed_owner_columns__ = ("client_id", "coach_id")
    id: int | None = Field(default=None, primary_key=True)
    platform: str
    event: str
    dedupe_key: str = Field(unique=True)
    source: str = "webhook"  # webhook | reconcile | sweep
    payload: dict | None = Field(default_factory=dict, sa_column=sealed_json())
    status: str = "received"  # received | processing | done | ignored | unmatched | refused | failed
    attempts: int = 0
    error: str | None = None
    coach_id: str | None = Field(default=None, index=True)
    client_id: str | None = Field(default=None, foreign_key="client.id", index=True)
    session_id: str | None = None
    received_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    def __sealed_owner__(self) -> str:
        if self.client_id:
            return self.client_id
        return f"coach.{self.coach_id}" if self.coach_id else "service.inbox"

    def __sealed_row__(self) -> str:
        return self.dedupe_key  # known before the insert that assigns the id


class DeletionReceipt(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    coach_id: str = Field(foreign_key="coach.id", index=True)
    client_id: str | None = None
    scope: str  # client | session | retention
    body: dict = Field(default_factory=dict, sa_column=Column(JSON))
    signature: str = ""  # set when the deletion has finished
    # Where the receipt goes, sealed under the master key while the client's own key is
    # shredded; cleared once the receipt is queued.
    deliver_to_sealed: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None


@register
class OutboundMessage(ClientOrCoachOwned, SQLModel, table=True):
    """One row per message we mean to send, unique on its idempotency key, so a job retry
    never sends twice."""
    id: str = Field(default_factory=new_id, primary_key=True)
    idempotency_key: str = Field(unique=True)
    coach_id: str | None = Field(default=None, index=True)
    # The client the message is about (its words and address are sealed under that client's key).
    client_id: str | None = Field(default=None, index=True)
    channel: str  # email | slack
    recipient: str = Field(sa_column=sealed_text())
    subject: str = Field(default="", sa_column=sealed_text())
    body: str = Field(default="", sa_column=sealed_text())
    html: str | None = Field(default=None, sa_column=sealed_text())
    # A deletion receipt to attach, as signed JSON made when the message is sent.
    attachment_receipt_id: str | None = None
    # Drop the address and words once sent (a message about a client already erased).
    forget_after_send: bool = False
    status: str = "pending"  # pending | sent | failed
    attempts: int = 0
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
