"""Zoom: its payloads mapped onto the neutral ingest steps, its event table, and the
reconciliation that finds recordings whose webhook never came.

`recording.completed` and `recording.transcript_completed` carry the files; `meeting.ended`
schedules a reconciler that asks the API for a recording that never arrived; a daily sweep
lists each coach's recent cloud recordings. Whatever the API finds is fed into the same inbox
and dedupe as a webhook, so it is ingested once."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from integrations import zoom as zoom_api
from models import CoachingSession, InboxEvent, SessionState, audit, utcnow
from models import queries as q
from models.db import session_scope
from workers import inbox, ingest, notify, retries
from workers.ingest import Delivery, Meeting, PlatformFile, RetryLater
from workers.platforms import zoom_tokens
from workers.platforms.base import Platform, Schedule
from workers.runtime import current

log = logging.getLogger(__name__)

NAME = "zoom"

_KINDS = {
    "MP4": ("video", "video/mp4"),
    "M4A": ("audio", "audio/mp4"),
    "TRANSCRIPT": ("transcript", "text/vtt"),
    "CHAT": ("chat", "text/plain"),
}


# --- payload mapping ---------------------------------------------------------------------------

def _finished(f: dict) -> bool:
    return f.get("status") in (None, "", "completed")


def recording_files(obj: dict) -> list[PlatformFile]:
    """The completed files of a Zoom recording object that holdspace knows how to keep.

    CC duplicates TRANSCRIPT; TIMELINE, CSV and SUMMARY are not session material. Entries
    without an id, or that Zoom says are still processing, are left for a later event or the
    reconciler. Zoom leaves `status` out of some deliveries; such a file is judged by what it
    is (an id, a download URL and a type we keep), not dropped."""
    out = []
    for f in obj.get("recording_files") or []:
        kind = _KINDS.get(str(f.get("file_type", "")).upper())
        if kind and f.get("id") and _finished(f) and f.get("download_url"):
            out.append(PlatformFile(str(f["id"]), kind[0], f["download_url"], f.get("file_size"),
                                    str(f.get("file_extension") or f["file_type"]).lower(), kind[1]))
    for f in obj.get("participant_audio_files") or []:
        if f.get("id") and _finished(f) and f.get("download_url"):
            # Zoom names each track "Audio only - <participant>".
            label = str(f.get("file_name") or "").split(" - ", 1)[-1].strip() or None
            out.append(PlatformFile(str(f["id"]), "participant_audio", f["download_url"],
                                    f.get("file_size"), str(f.get("file_extension") or "m4a").lower(),
                                    "audio/mp4", label))
    return out


def meeting_of(obj: dict) -> Meeting:
    return Meeting(platform="zoom", uuid=str(obj["uuid"]), meeting_id=str(obj.get("id") or "") or None,
                   topic=str(obj.get("topic") or ""), started_at=ingest.parse_time(obj.get("start_time")),
                   duration_minutes=ingest.int_or_none(obj.get("duration")))


def recording_key(event: str, obj: dict) -> str:
    """Event + meeting uuid + the completed file ids: the same recording, however delivered."""
    ids = sorted(f.file_id for f in recording_files(obj))
    return f"zoom:{event}:{obj.get('uuid')}:{','.join(ids)}"


def meeting_key(event: str, obj: dict) -> str:
    return f"zoom:{event}:{obj['uuid']}"


def delivery_key(event: str, obj: dict) -> str | None:
    """How deliveries of `event` are told apart; None for an event holdspace does not act on."""
    entry = EVENTS.get(event)
    return entry[1](event, obj) if entry else None


@contextlib.contextmanager
def _download(zoom: zoom_api.ZoomClient, f: PlatformFile, token: str | None):
    """Zoom's streaming download as ingest's neutral download: its errors become ingest's."""
    try:
        with zoom.open_download(f.url, expected_size=f.size, kind=f.download_kind,
                                download_token=token) as chunks:
            yield chunks
    except zoom_api.DownloadError as exc:
        raise ingest.DownloadError(str(exc), retryable=exc.retryable, retry_after=exc.retry_after) from None


# --- events ----------------------------------------------------------------------------------

def _coach_of(db, account_id: str | None, obj: dict) -> tuple[str | None, str | None]:
    """Whose event this is, by account id and host id: (coach id, why not) .

    A coach who connected their own Zoom is found through that connection, and only while it
    is live: after a deauthorisation or disconnect nothing of theirs is fetched until they
    reconnect. A coach without one is found as the practice's S2S set-up always found them."""
    conn = q.zoom_connection_for_host(db, account_id, obj.get("host_id"))
    if conn is not None:
        return (conn.coach_id, None) if conn.status == "active" else (None, f"Zoom connection {conn.status}")
    coach = q.coach_by_zoom_host(db, obj.get("host_id"), obj.get("host_email"))
    if coach is None:
        return None, "unknown Zoom host"
    if q.zoom_connection_of(db, coach.id) is not None:
        # Connected through their own Zoom, and this event is of another account or user.
        return None, "not the coach's connected Zoom account"
    return coach.id, None


def _open(rt, delivery: Delivery, obj: dict) -> tuple[str | None, zoom_api.ZoomClient | None]:
    """The session for this meeting and the Zoom client of its coach; (None, None) when the
    event is not one holdspace may act on."""
    account_id = (delivery.payload.get("payload") or {}).get("account_id")
    with session_scope(rt.engine) as db:
        coach_id, why_not = _coach_of(db, account_id, obj)
        if coach_id is None:
            audit.record(db, "system", "inbox.ignored", f"inbox:{delivery.inbox_id}",
                         reason=why_not, host_id=obj.get("host_id"))
            return None, None
        db.get(InboxEvent, delivery.inbox_id).coach_id = coach_id
    zoom = zoom_tokens.zoom_for(rt, coach_id)
    if zoom is None:
        return None, None
    with session_scope(rt.engine) as db:
        return ingest.open_session(db, coach_id, meeting_of(obj), delivery.inbox_id), zoom


def ingest_recording(rt, delivery: Delivery) -> tuple[str, str | None]:
    try:
        return _ingest_recording(rt, delivery)
    except zoom_tokens.ZoomTokenBusy as busy:
        # Another worker is refreshing the coach's token: run again in a moment, with its result.
        raise RetryLater(busy.retry_after, str(busy)) from None


def _ingest_recording(rt, delivery: Delivery) -> tuple[str, str | None]:
    payload = delivery.payload
    obj = payload["payload"]["object"]
    session_id, zoom = _open(rt, delivery, obj)
    if session_id is None:
        return "ignored", None

    sources = []
    if zoom.configured:
        meeting_id, uuid = str(obj.get("id") or ""), str(obj["uuid"])
        sources = [("invitees", lambda: zoom.meeting_invitee_emails(meeting_id)),
                   ("registrants", lambda: zoom.registrant_emails(meeting_id)),
                   ("participants", lambda: zoom.participant_emails(uuid))]
    client_id = ingest.resolve_client(rt, session_id, sources, str(obj.get("id") or ""))
    if client_id is None:
        return "unmatched", session_id

    scopes = ingest.consent_gate(rt, session_id, discard=zoom.trash_recordings if zoom.configured else None)
    if scopes is None:
        return "refused", session_id

    token = payload.get("download_token")
    return ingest.download(rt, session_id, recording_files(obj), scopes,
                           lambda f: _download(zoom, f, token), attempt=delivery.attempt)


def meeting_ended(rt, delivery: Delivery) -> tuple[str, str | None]:
    """Record the meeting as ended and schedule a check for a recording.completed that never came."""
    obj = delivery.payload["payload"]["object"]
    session_id, _ = _open(rt, delivery, obj)
    if session_id is None:
        return "ignored", None
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        session.ended_at = session.ended_at or ingest.parse_time(obj.get("end_time")) or utcnow()
        waiting = session.state == SessionState.received.value
        duration = session.duration_minutes or 0
    if waiting:
        delay = max(rt.settings.reconcile_min_delay_seconds,
                    rt.settings.reconcile_duration_factor * duration * 60)
        schedule_reconcile(rt, session_id, delay, attempt=1)
    return "done", session_id


# --- lost webhooks ---------------------------------------------------------------------------

def schedule_reconcile(rt, session_id: str, delay_seconds: float, attempt: int) -> None:
    retries.later(rt, "default", delay_seconds, reconcile_session, session_id,
                  job_id=f"reconcile-{session_id}-{attempt}")


def reconcile_session(session_id: str) -> str:
    """Ask Zoom for the recording of an ended meeting whose webhook never arrived."""
    rt = current()
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session is None or session.state != SessionState.received.value:
            return "not waiting"
        session.reconcile_attempts += 1
        attempts, uuid, coach_id = session.reconcile_attempts, session.platform_uuid, session.coach_id
    zoom = zoom_tokens.zoom_for(rt, coach_id)
    try:
        recording = zoom.get_recordings(uuid) if zoom is not None and zoom.configured else None
    except zoom_tokens.ZoomTokenBusy:
        recording = None  # asked again at the next attempt
    if recording and recording_files(recording):
        discovered(rt, recording, source="reconcile")
        return "discovered"
    if attempts < rt.settings.reconcile_max_attempts:
        schedule_reconcile(rt, session_id, rt.settings.reconcile_min_delay_seconds * 2 ** attempts,
                           attempt=attempts + 1)
        return "waiting"
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        coach = q.coach_by_id(db, coach_id)
        notify.tell_coach(db, rt, coach, key=f"never-recorded:{session_id}",
                          subject="No recording arrived", client_id=session.client_id,
                          body=f"Zoom never produced a recording for \"{session.topic}\" ({notify.when(session, coach)}).")
    return "gave up"


def discovered(rt, recording: dict, source: str) -> int | None:
    """Feed a recording found through the API into the same inbox and dedupe as a webhook."""
    obj = {k: v for k, v in recording.items() if k != "download_access_token"}
    payload = {"event": "recording.completed",
               "payload": {"account_id": obj.get("account_id"), "object": obj},
               "download_token": recording.get("download_access_token")}
    inbox_id = inbox.accept(rt, NAME, "recording.completed",
                            recording_key("recording.completed", recording), payload, source)
    if inbox_id is not None:
        inbox.enqueue(rt, inbox_id)
    return inbox_id


def sweep_recordings(days: int = 3, now=None) -> int:
    """Daily: list each coach's recent cloud recordings, with that coach's own Zoom connection
    or the practice's S2S app, and ingest any holdspace never saw.

    `now` (default: the clock) fixes the window's last day, so a test can sweep any date."""
    rt = current()
    today = (now or utcnow()).date()
    with session_scope(rt.engine) as db:
        hosts = [(c.id, c.zoom_user_id) for c in q.all_coaches(db) if c.zoom_user_id]
    found = 0
    for coach_id, host in hosts:
        zoom = zoom_tokens.zoom_for(rt, coach_id)
        if zoom is None or not zoom.configured:
            continue
        try:
            meetings = zoom.list_user_recordings("me" if zoom.acts_for_user else host,
                                                 today - timedelta(days=days), today)
        except zoom_api.ZoomError as exc:
            # One coach's Zoom trouble (a broken connection is reported by itself) must not
            # stop the sweep of the others.
            log.warning("Zoom sweep of coach %s skipped: %s", coach_id, type(exc).__name__)
            continue
        for meeting in meetings:
            if discovered(rt, meeting, source="sweep"):
                found += 1
    return found


# The one table of Zoom events holdspace acts on: what handles each, how deliveries are told apart.
EVENTS = {
    "recording.completed": (ingest_recording, recording_key),
    "recording.transcript_completed": (ingest_recording, recording_key),
    "meeting.ended": (meeting_ended, meeting_key),
}

PLATFORM = Platform(NAME, {event: handler for event, (handler, _) in EVENTS.items()}, schedules=(
    Schedule(sweep_recordings, "daily Zoom recordings sweep", cron="17 4 * * *"),
))
