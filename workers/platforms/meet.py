"""Google Meet: the same pipeline as Zoom for coaches on Meet.

Events arrive through the inbox (webhooks/google.py): a recording's file is generated → the
session is opened, its client matched from the conference's participants (People API emails)
or the coach's mapping of the meeting space, the consent gate applied, and the Drive file
streamed into the vault in ranged chunks. A transcript's file is generated → its entries
become the session's platform transcript. A conference ended → the session waits, bounded, for
its artifacts. Lifecycle events and a scheduled keeper look after each coach's subscription."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from integrations import google as g
from models import Asset, CoachingSession, GoogleConnection, InboxEvent, SessionState, audit, utcnow
from models import queries as q
from models.db import session_scope
from vault.errors import ObjectErased
from workers import fence, ingest, notify, retries, sessions
from workers.ingest import Delivery, Meeting
from workers.platforms.base import Platform, Schedule
from workers.runtime import current
from workers.sessions import Fenced

log = logging.getLogger(__name__)

TOKEN_PURPOSE = "google-refresh-token:{coach_id}"


# --- credentials ----------------------------------------------------------------------------------

def client_for(rt, coach_id: str) -> g.GoogleClient:
    """A Meet/Drive/People client acting for this coach (their OAuth grant, or delegation)."""
    s = rt.settings
    with session_scope(rt.engine) as db:
        conn = db.exec(select(GoogleConnection).where(GoogleConnection.coach_id == coach_id)).first()
        coach = q.coach_by_id(db, coach_id)
        if conn is None or conn.status == "disconnected":
            raise g.GoogleAuthError("the coach has not connected Google")
        mode, sealed, email = conn.mode, conn.refresh_token_sealed, coach.email
    if mode == "delegation":
        with open(s.google_service_account_file) as f:
            info = json.load(f)
        creds = g.delegated_credentials(info, email, token_uri=s.google_oauth_token_url)
    else:
        token = rt.vault.unseal(sealed, TOKEN_PURPOSE.format(coach_id=coach_id)).decode()
        creds = g.user_credentials(token, client_id=s.google_client_id, client_secret=s.google_client_secret,
                                   token_uri=s.google_oauth_token_url)
    return g.GoogleClient(creds, api_base_url=s.google_api_base_url)


def coach_for(db, message: g.PushMessage) -> str | None:
    """The coach whose subscription delivered this event."""
    sub = message.workspace_subscription
    if sub:
        conn = db.exec(select(GoogleConnection).where(GoogleConnection.subscription_name == sub)).first()
        if conn:
            return conn.coach_id
    subject = message.ce_subject or ""
    if "/users/" in subject:
        user_id = subject.rsplit("/users/", 1)[1]
        conn = db.exec(select(GoogleConnection).where(GoogleConnection.google_user_id == user_id)).first()
        if conn:
            return conn.coach_id
        from models import Coach
        coach = db.exec(select(Coach).where(Coach.google_user_id == user_id)).first()
        return coach.id if coach else None
    return None


# --- events -----------------------------------------------------------------------------------------

def _event(rt, delivery: Delivery) -> tuple[g.PushMessage, str | None]:
    """The event and the coach it is for (None, audited as ignored, when no coach is)."""
    inbox_id = delivery.inbox_id
    message = g.PushMessage.from_payload(delivery.payload)
    with session_scope(rt.engine) as db:
        coach_id = coach_for(db, message)
        if coach_id is None:
            audit.record(db, "system", "inbox.ignored", f"inbox:{inbox_id}",
                         reason="no coach for this subscription")
        else:
            db.get(InboxEvent, inbox_id).coach_id = coach_id
    return message, coach_id


def meeting_of(conference: dict) -> Meeting:
    start, end = ingest.parse_time(conference.get("startTime")), ingest.parse_time(conference.get("endTime"))
    return Meeting(platform="meet", uuid=conference["name"], meeting_id=conference.get("space"),
                   topic="Google Meet session", started_at=start, ended_at=end,
                   duration_minutes=int((end - start).total_seconds() // 60) if start and end else None)


def _open(rt, coach_id: str, conference: dict, inbox_id: int | None = None) -> str:
    """Get or create the CoachingSession of this conference (and tie the inbox row to it)."""
    with session_scope(rt.engine) as db:
        return ingest.open_session(db, coach_id, meeting_of(conference), inbox_id)


def _client_sources(google: g.GoogleClient, conference_name: str):
    """Signed-in participants' emails from the People API (anonymous and phone ones have none)."""
    def emails():
        out = []
        for p in google.participants(conference_name):
            user = (p.get("signedinUser") or {}).get("user")
            if user:
                email = google.person_email(user)
                if email:
                    out.append(email)
        return out
    return [("participants", emails)]


def ingest_recording(rt, delivery: Delivery) -> tuple[str, str | None]:
    message, coach_id = _event(rt, delivery)
    if coach_id is None:
        return "ignored", None
    with contextlib.closing(client_for(rt, coach_id)) as google:
        recording = google.get_recording(message.resource_name)
        if recording.get("state") != "FILE_GENERATED":
            # Not ready: a later fileGenerated (or the artifact check) brings it back.
            return "ignored", None
        conference = google.get_conference(message.conference_name)
        session_id = _open(rt, coach_id, conference, delivery.inbox_id)
        client_id = ingest.resolve_client(rt, session_id, _client_sources(google, conference["name"]),
                                          conference.get("space"))
        if client_id is None:
            return "unmatched", session_id
        scopes = ingest.consent_gate(rt, session_id)
        if scopes is None:
            return "refused", session_id
        file_id = (recording.get("driveDestination") or {}).get("file")
        info = google.drive_file(file_id)
        f = ingest.PlatformFile(file_id=file_id, kind="video", url="", size=ingest.int_or_none(info.get("size")),
                                extension="mp4", content_type=info.get("mimeType") or "video/mp4")
        outcome = ingest.download(rt, session_id, [f], scopes, lambda f: _drive_chunks(google, f),
                                  attempt=delivery.attempt)
        if outcome[0] == "done":
            _import_transcripts(rt, google, session_id, conference)
        return outcome


@contextlib.contextmanager
def _drive_chunks(google: g.GoogleClient, f: ingest.PlatformFile):
    """Drive's ranged download as the chunks ingest streams into the vault; a failure that
    survives the client's own resumed retries becomes a download error ingest understands."""
    if not f.content_type.startswith(("video/", "audio/")):
        raise ingest.DownloadError(f"Drive file is {f.content_type}, not a recording", retryable=False)

    def chunks():
        total = 0
        try:
            for chunk in google.download_drive_file(f.file_id):
                total += len(chunk)
                yield chunk
        except g.GoogleApiError as exc:
            raise ingest.DownloadError(f"Drive download failed: {exc}", retryable=exc.retryable) from None
        if f.size is not None and total != f.size:
            raise ingest.DownloadError(f"Drive sent {total} bytes, expected {f.size}", retryable=True)
    yield chunks()


def ingest_transcript(rt, delivery: Delivery) -> tuple[str, str | None]:
    """Meet's transcript entries become the session's platform transcript (a VTT in the vault).
    Before the recording has told us whose session it is, the transcript waits for it."""
    message, coach_id = _event(rt, delivery)
    if coach_id is None:
        return "ignored", None
    with contextlib.closing(client_for(rt, coach_id)) as google:
        conference = google.get_conference(message.conference_name)
        session_id = _open(rt, coach_id, conference, delivery.inbox_id)
        imported = _import_transcript(rt, google, session_id, message.resource_name, conference)
    return ("done" if imported is not None else "ignored"), session_id


def _import_transcripts(rt, google: g.GoogleClient, session_id: str, conference: dict) -> None:
    """Whatever transcripts the conference already has (they may have come first)."""
    for transcript in google.transcripts(conference["name"]):
        _import_transcript(rt, google, session_id, transcript["name"], conference)


def _import_transcript(rt, google: g.GoogleClient, session_id: str, name: str, conference: dict):
    from workers.transcription.vtt import parse_meet_entries, to_vtt
    transcript = google.get_transcript(name)
    if transcript.get("state") != "FILE_GENERATED":
        return None
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session.client_id is None or session.state in (SessionState.unmatched.value,
                                                          SessionState.refused_no_consent.value):
            return None  # the recording's event decides whose it is, and whether to keep it
        if not sessions.may(sessions.consent_scopes(db, session.coach_id, session.client_id), "transcribe"):
            return None
        if q.asset_for_file(db, session.coach_id, session.id, transcript["name"]):
            return transcript["name"]
        coach_id, client_id = session.coach_id, session.client_id
    names = {}
    for p in google.participants(conference["name"]):
        person = p.get("signedinUser") or p.get("anonymousUser") or p.get("phoneUser") or {}
        if person.get("displayName"):
            names[p["name"]] = person["displayName"]
    segments = parse_meet_entries(google.transcript_entries(transcript["name"]), names,
                                  conference["startTime"])
    with session_scope(rt.engine) as db:
        fence.client_key(db, rt, coach_id, client_id)
    try:
        stored = rt.vault.put_stream(client_id, f"sessions/{session_id}/meet-transcript.vtt",
                                     [to_vtt(segments).encode()], "text/vtt")
    except ObjectErased:
        raise Fenced(f"the key of client {client_id} was shredded") from None
    try:
        return _commit_transcript(rt, coach_id, client_id, session_id, transcript["name"], stored)
    except Fenced:
        rt.vault.delete(stored.key)  # erased meanwhile: nothing may point to it
        raise


def _commit_transcript(rt, coach_id: str, client_id: str, session_id: str, name: str, stored) -> str:
    transcript = {"name": name}
    with session_scope(rt.engine) as db:
        fence.hold(db, coach_id, client_id, need="transcribe", session_id=session_id)
        try:
            with db.begin_nested():
                db.add(Asset(coach_id=coach_id, client_id=client_id, session_id=session_id, kind="transcript",
                             platform_file_id=transcript["name"], object_key=stored.key, content_type="text/vtt",
                             size=stored.size, ciphertext_size=stored.ciphertext_size, sha256=stored.sha256))
        except IntegrityError:
            return transcript["name"]
        audit.record(db, "system", "asset.stored", f"session:{session_id}", coach_id=coach_id,
                     object_key=stored.key, size=stored.size, sha256=stored.sha256)
    return transcript["name"]


def conference_ended(rt, delivery: Delivery) -> tuple[str, str | None]:
    """The conference ended (often before its recording exists): wait for the artifacts, bounded."""
    message, coach_id = _event(rt, delivery)
    if coach_id is None:
        return "ignored", None
    with contextlib.closing(client_for(rt, coach_id)) as google:
        conference = google.get_conference(message.conference_name)
    session_id = _open(rt, coach_id, conference)
    retries.later(rt, "default", rt.settings.meet_artifact_wait_seconds, check_artifacts, session_id,
                  job_id=f"meet-artifacts-{session_id}")
    return "done", session_id


def check_artifacts(session_id: str) -> str:
    """After the wait: tell the coach if the recording never came."""
    rt = current()
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session is None or session.state != SessionState.received.value:
            return "arrived"
        coach = q.coach_by_id(db, session.coach_id)
        notify.tell_coach(db, rt, coach, key=f"meet-missing:{session_id}",
                          subject="A Meet recording never arrived",
                          body=(f"Your Google Meet session of {notify.when(session, coach)} ended, but no "
                                f"recording reached holdspace within "
                                f"{rt.settings.meet_artifact_wait_seconds // 60} minutes. Was it recorded?"))
    return "told the coach"


# --- the subscription keeper -------------------------------------------------------------------------

def lifecycle(rt, delivery: Delivery) -> tuple[str, str | None]:
    message, coach_id = _event(rt, delivery)
    if coach_id is None:
        return "ignored", None
    if message.ce_type == g.SUSPENDED:
        _mark(rt, coach_id, "suspended", "Google suspended the subscription (a scope was revoked or "
                                         "authorisation failed); reconnect Google from the dashboard.")
        return "done", None
    keep_subscription(rt, coach_id, force_new=message.ce_type == g.EXPIRED)
    return "done", None


def keep_subscription(rt, coach_id: str, *, force_new: bool = False, now=None) -> str:
    """Renew the coach's subscription, or create it again when it is gone."""
    s = rt.settings
    now = now or utcnow()
    with session_scope(rt.engine) as db:
        conn = db.exec(select(GoogleConnection).where(GoogleConnection.coach_id == coach_id)).first()
        if conn is None or conn.status == "disconnected" or not s.google_pubsub_topic:
            return "not connected"
        name, user = conn.subscription_name, conn.google_user_id
    try:
        with contextlib.closing(client_for(rt, coach_id)) as google:
            sub = None
            if name and not force_new:
                try:
                    sub = google.renew_subscription(name, s.google_subscription_ttl_seconds)
                    action = "renewed"
                except g.GoogleApiError as exc:
                    if exc.status != 404:
                        raise
            if sub is None:
                sub = google.create_subscription(g.user_target(user), list(g.MEET_EVENT_TYPES),
                                                 s.google_pubsub_topic, s.google_subscription_ttl_seconds)
                action = "created"
    except g.GoogleAuthError as exc:
        if not exc.retryable:
            _mark(rt, coach_id, "suspended", "Google no longer accepts holdspace's access; reconnect Google.")
            return "authorisation lost"
        raise
    with session_scope(rt.engine) as db:
        conn = db.exec(select(GoogleConnection).where(GoogleConnection.coach_id == coach_id)).one()
        conn.subscription_name = sub.get("name") or conn.subscription_name
        conn.subscription_expires_at = _expiry(sub, now, s.google_subscription_ttl_seconds)
        conn.status, conn.status_reason, conn.updated_at = "active", None, utcnow()
        audit.record(db, "system", f"google.subscription_{action}", f"coach:{coach_id}", coach_id=coach_id,
                     subscription=conn.subscription_name)
    return action


def renew_subscriptions(now=None) -> int:
    """Scheduled: renew every subscription within two days of its 7-day expiry (or past it)."""
    rt = current()
    now = now or utcnow()
    with session_scope(rt.engine) as db:
        due = [c.coach_id for c in db.exec(select(GoogleConnection).where(GoogleConnection.status == "active"))
               if c.subscription_expires_at is None or c.subscription_expires_at - now < timedelta(days=2)]
    done = 0
    for coach_id in due:
        try:
            keep_subscription(rt, coach_id, force_new=_expired(rt, coach_id, now), now=now)
            done += 1
        except Exception as exc:  # noqa: BLE001 - one coach's trouble must not stop the others
            log.warning("subscription of coach %s not renewed: %s", coach_id, type(exc).__name__)
    return done


def _expired(rt, coach_id, now) -> bool:
    with session_scope(rt.engine) as db:
        conn = db.exec(select(GoogleConnection).where(GoogleConnection.coach_id == coach_id)).one()
        return conn.subscription_expires_at is not None and conn.subscription_expires_at <= now


def _mark(rt, coach_id: str, status: str, reason: str) -> None:
    with session_scope(rt.engine) as db:
        conn = db.exec(select(GoogleConnection).where(GoogleConnection.coach_id == coach_id)).first()
        if conn is None:
            return
        changed = conn.status != status
        conn.status, conn.status_reason, conn.updated_at = status, reason, utcnow()
        coach = q.coach_by_id(db, coach_id)
        if changed:
            notify.tell_coach(db, rt, coach, key=f"google-{status}:{coach_id}:{utcnow():%Y%m%d}",
                              subject="Google Meet needs your attention", body=reason)


def _expiry(sub: dict, now, ttl: int):
    raw = sub.get("expireTime")
    if raw:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return now + timedelta(seconds=ttl)


# The one table of Workspace events holdspace acts on (integrations.google parses them).
HANDLERS = {
    g.RECORDING_GENERATED: ingest_recording,
    g.TRANSCRIPT_GENERATED: ingest_transcript,
    g.CONFERENCE_ENDED: conference_ended,
    g.EXPIRATION_REMINDER: lifecycle,
    g.SUSPENDED: lifecycle,
    g.EXPIRED: lifecycle,
}

# Pub/Sub pushes Meet events into the inbox under "google".
PLATFORM = Platform("google", HANDLERS, schedules=(
    Schedule(renew_subscriptions, "Google subscription keeper", interval=3600),
))
