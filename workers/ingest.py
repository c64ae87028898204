"""The ingest pipeline for a platform recording: coach → client → consent gate → download
into the vault → `stored`. Each step moves the CoachingSession forward and is safe to re-run:
finished files are never fetched twice, and a re-delivered event changes nothing."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from rq import get_current_job
from sqlalchemy.exc import IntegrityError

from integrations.zoom import DownloadError
from models import Asset, CoachingSession, InboxEvent, SessionState, audit, utcnow
from models import queries as q
from models.db import session_scope
from workers import notify, sessions
from workers.sessions import HAVE_RECORDING
from workers.runtime import current

log = logging.getLogger(__name__)

# Sessions in these states have their recording; later events may only add missing files.

@dataclass(frozen=True)
class PlatformFile:
    """One file of a recording event, whatever the platform called it."""
    file_id: str
    kind: str           # video | audio | participant_audio | transcript | chat
    url: str
    size: int | None
    extension: str
    content_type: str
    label: str | None = None  # a participant track's speaker

    @property
    def download_kind(self) -> str:
        return "text" if self.kind in ("transcript", "chat") else "media"


_ZOOM_KINDS = {
    "MP4": ("video", "video/mp4"),
    "M4A": ("audio", "audio/mp4"),
    "TRANSCRIPT": ("transcript", "text/vtt"),
    "CHAT": ("chat", "text/plain"),
}


def _finished(f: dict) -> bool:
    return f.get("status") in (None, "", "completed")


def zoom_files(obj: dict) -> list[PlatformFile]:
    """The completed files of a Zoom recording object that holdspace knows how to keep.

    CC duplicates TRANSCRIPT; TIMELINE, CSV and SUMMARY are not session material. Entries
    without an id, or that Zoom says are still processing, are left for a later event or the
    reconciler. Zoom leaves `status` out of some deliveries; such a file is judged by what it
    is (an id, a download URL and a type we keep), not dropped."""
    out = []
    for f in obj.get("recording_files") or []:
        kind = _ZOOM_KINDS.get(str(f.get("file_type", "")).upper())
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


def files_to_keep(files: list[PlatformFile], media_policy: str, scopes: frozenset[str]) -> list[PlatformFile]:
    """Apply the coach's media policy and the client's consent scopes."""
    keep = []
    has_audio = any(f.kind == "audio" for f in files)
    for f in files:
        if f.kind == "transcript" and not sessions.may(scopes, "transcribe"):
            continue
        # Audio-only coaches keep the video only when it is the sole source of the audio.
        if f.kind == "video" and media_policy == "audio_only" and has_audio:
            continue
        keep.append(f)
    return keep


def zoom_dedupe_key(event: str, obj: dict) -> str:
    """Event + meeting uuid + the completed file ids: the same recording, however delivered."""
    ids = sorted(f.file_id for f in zoom_files(obj))
    return f"zoom:{event}:{obj.get('uuid')}:{','.join(ids)}"


# --- the job -------------------------------------------------------------------------------

def process_inbox_event(inbox_id: int) -> str:
    rt = current()
    with session_scope(rt.engine) as db:
        ev = db.get(InboxEvent, inbox_id)
        if ev is None:
            return "missing"
        if ev.status not in ("received", "processing"):
            return ev.status
        ev.status, ev.attempts, ev.updated_at = "processing", ev.attempts + 1, utcnow()
        platform, event, payload = ev.platform, ev.event, ev.payload
    handler = handler_for(platform, event)
    try:
        outcome, session_id = handler(rt, inbox_id, payload) if handler else ("ignored", None)
    except Exception as exc:
        job = get_current_job()
        if job is None or not job.retries_left:
            _finish(rt, inbox_id, "failed", None, error=f"{type(exc).__name__}: {exc}"[:500])
        raise
    _finish(rt, inbox_id, outcome, session_id)
    if outcome == "done" and session_id:
        from workers.pipeline import enqueue_advance
        enqueue_advance(rt, session_id)  # transcription, summary, delivery: each its own job
    return outcome


def _finish(rt, inbox_id: int, status: str, session_id: str | None, error: str | None = None) -> None:
    with session_scope(rt.engine) as db:
        ev = db.get(InboxEvent, inbox_id)
        ev.status, ev.error, ev.updated_at = status, error, utcnow()
        ev.session_id = session_id or ev.session_id
        # The download token is a credential: once the event is processed, whatever the
        # outcome, it has no reason to stay (a retry downloads with the API token).
        if isinstance(ev.payload, dict) and ev.payload.get("download_token"):
            ev.payload = {**ev.payload, "download_token": None}


def ingest_zoom_recording(rt, inbox_id: int, payload: dict) -> tuple[str, str | None]:
    obj = payload["payload"]["object"]
    session_id = _open_session(rt, inbox_id, obj)
    if session_id is None:
        return "ignored", None

    sources = []
    if rt.zoom.configured:
        meeting_id, uuid = str(obj.get("id") or ""), str(obj["uuid"])
        sources = [("invitees", lambda: rt.zoom.meeting_invitee_emails(meeting_id)),
                   ("registrants", lambda: rt.zoom.registrant_emails(meeting_id)),
                   ("participants", lambda: rt.zoom.participant_emails(uuid))]
    client_id = resolve_client(rt, session_id, sources, str(obj.get("id") or ""))
    if client_id is None:
        return "unmatched", session_id

    scopes = consent_gate(rt, session_id)
    if scopes is None:
        return "refused", session_id

    token = payload.get("download_token")

    def open_file(f: PlatformFile):
        return rt.zoom.open_download(f.url, expected_size=f.size, kind=f.download_kind,
                                     download_token=token)

    return download(rt, session_id, zoom_files(obj), scopes, open_file)


def _open_session(rt, inbox_id: int, obj: dict) -> str | None:
    """Step 1: the coach from the host; get or create the CoachingSession for this meeting."""
    with session_scope(rt.engine) as db:
        coach = q.coach_by_zoom_host(db, obj.get("host_id"), obj.get("host_email"))
        if coach is None:
            audit.record(db, "system", "inbox.ignored", f"inbox:{inbox_id}",
                         reason="unknown Zoom host", host_id=obj.get("host_id"))
            return None
        ev = db.get(InboxEvent, inbox_id)
        ev.coach_id = coach.id
        session = _session_for(db, coach.id, obj)
        link_inbox(db, inbox_id, session.id)
        return session.id


def link_inbox(db, inbox_id: int, session_id: str) -> None:
    """Tie an inbox row to its session as soon as the session is known, so an event whose
    job later fails for good still says which session it left waiting (see sweep_stalled)."""
    ev = db.get(InboxEvent, inbox_id)
    if ev is not None:
        ev.session_id = ev.session_id or session_id


def _session_for(db, coach_id: str, obj: dict) -> CoachingSession:
    uuid = str(obj["uuid"])
    session = q.session_by_platform(db, coach_id, "zoom", uuid)
    if session is None:
        session = CoachingSession(coach_id=coach_id, platform="zoom", platform_uuid=uuid,
                                  platform_meeting_id=str(obj.get("id") or ""),
                                  topic=str(obj.get("topic") or "")[:500],
                                  started_at=_parse_time(obj.get("start_time")),
                                  duration_minutes=_int_or_none(obj.get("duration")))
        try:
            with db.begin_nested():
                db.add(session)
        except IntegrityError:  # a concurrent event for the same meeting created it first
            return q.session_by_platform(db, coach_id, "zoom", uuid)
        audit.record(db, "system", "session.received", f"session:{session.id}",
                     coach_id=coach_id, platform="zoom")
    else:
        session.topic = session.topic or str(obj.get("topic") or "")[:500]
        session.started_at = session.started_at or _parse_time(obj.get("start_time"))
        session.duration_minutes = session.duration_minutes or _int_or_none(obj.get("duration"))
    return session


def resolve_client(rt, session_id: str, sources, meeting_id: str | None) -> str | None:
    """Step 2: each source of attendee emails in turn (for Zoom: invitees, then registrants,
    then participants), then the coach's own mapping of a recurring meeting to a client."""
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session.client_id:
            return session.client_id
        coach = q.coach_by_id(db, session.coach_id)
        coach_id, coach_email, platform = coach.id, coach.email, session.platform

    matched, how = None, None
    for name, fetch in sources:
        emails = [e for e in fetch() if e and e.lower() != coach_email]
        with session_scope(rt.engine) as db:
            found = {c.id for c in q.clients_by_emails(db, coach_id, emails)}
        if len(found) == 1:
            matched, how = found.pop(), name
            break
        if len(found) > 1:  # a group meeting: not for holdspace to guess whose it is
            break
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if matched is None and meeting_id:
            mapped = q.mapped_client(db, coach_id, platform, meeting_id)
            matched, how = (mapped.id, "meeting mapping") if mapped else (None, None)
        if matched is None:
            first_time = session.state != SessionState.unmatched.value
            sessions.move(db, session, SessionState.unmatched, "no client of this coach matched the meeting")
            audit.record(db, "system", "session.unmatched", f"session:{session.id}", coach_id=coach_id)
            if first_time:
                coach = q.coach_by_id(db, coach_id)
                notify.tell_coach(
                    db, rt, coach, key=f"unmatched:{session.id}",
                    subject="A recording needs a client",
                    body=(f"The recording of \"{session.topic}\" ({_when(session)}) matched none of "
                          f"your clients, so nothing was downloaded. Assign it with "
                          f"/holdspace assign {session.id} <client email>."))
            return None
        session.client_id = matched
        audit.record(db, "system", "session.client_matched", f"session:{session.id}",
                     coach_id=coach_id, client=matched, source=how)
        return matched


def consent_gate(rt, session_id: str) -> frozenset[str] | None:
    """Step 3: no active consent with the `record` scope → refuse and store nothing."""
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        client = q.client_of(db, session.coach_id, session.client_id)
        scopes = sessions.consent_scopes(db, session.coach_id, client.id)
        if sessions.may(scopes, "keep"):
            return scopes
        coach = q.coach_by_id(db, session.coach_id)
        first_time = session.state != SessionState.refused_no_consent.value
        sessions.move(db, session, SessionState.refused_no_consent,
                      "no active consent with the record scope")
        audit.record(db, "system", "session.refused_no_consent", f"session:{session.id}",
                     coach_id=coach.id, client=client.id)
        trash = session.platform == "zoom" and coach.trash_zoom_copies and rt.zoom.configured
        if first_time:
            notify.tell_coach(
                db, rt, coach, key=f"refused:{session.id}",
                subject=f"Recording not kept: no consent from {client.name}",
                body=(f"{client.name} ({client.email}) has no active consent to be recorded, so "
                      f"holdspace stored nothing from \"{session.topic}\" ({_when(session)})."
                      + (" The Zoom copy was moved to Zoom's trash." if trash else "")))
        uuid = session.platform_uuid
    if trash:
        rt.zoom.trash_recordings(uuid)
        with session_scope(rt.engine) as db:
            audit.record(db, "system", "zoom.recording_trashed", f"session:{session_id}",
                         coach_id=coach.id)
    return None


def download(rt, session_id: str, files: list[PlatformFile], scopes: frozenset[str],
             open_file) -> tuple[str, str]:
    """Step 4: stream every wanted, completed file into the vault under the client's key.
    `open_file(f)` is the platform's way to fetch a file: a context manager yielding chunks."""
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        coach = q.coach_by_id(db, session.coach_id)
        client = q.client_of(db, coach.id, session.client_id)
        have = {a.platform_file_id for a in q.assets_of_session(db, coach.id, session.id)}
        wanted = [f for f in files_to_keep(files, coach.media_policy, scopes) if f.file_id not in have]
        if not wanted:
            return ("done" if session.state in HAVE_RECORDING else _mark_kept(rt, db, session, files)), session_id
        if session.state not in HAVE_RECORDING:
            sessions.move(db, session, SessionState.fetching)
        coach_id, client_id = coach.id, client.id
        if not client.data_key_id:
            client.data_key_id = rt.vault.ensure_client_key(client.id)

    for f in wanted:
        try:
            stored = _fetch_with_backoff(rt, f, open_file, client_id, session_id)
        except DownloadError as exc:
            return _download_failed(rt, session_id, f, exc), session_id
        with session_scope(rt.engine) as db:
            asset = Asset(coach_id=coach_id, client_id=client_id, session_id=session_id,
                          kind=f.kind, label=f.label, platform_file_id=f.file_id, object_key=stored.key,
                          content_type=f.content_type, size=stored.size,
                          ciphertext_size=stored.ciphertext_size, sha256=stored.sha256)
            try:
                with db.begin_nested():
                    db.add(asset)
            except IntegrityError:
                continue  # a concurrent run stored the same file under the same key
            audit.record(db, "system", "asset.stored", f"session:{session_id}", coach_id=coach_id,
                         object_key=stored.key, size=stored.size, sha256=stored.sha256)

    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session.state in HAVE_RECORDING:
            return "done", session_id
        return _mark_kept(rt, db, session, files), session_id


def _fetch_with_backoff(rt, f: PlatformFile, open_file, client_id: str, session_id: str):
    """Download one file, retrying what may pass (HTML instead of media, a dropped connection,
    429) with exponential backoff; anything that fails is never stored."""
    s = rt.settings
    name = f"sessions/{session_id}/{f.file_id}.{f.extension}"
    for attempt in range(1, s.download_attempts + 1):
        try:
            # An upload left open by a worker killed mid-download is an orphan now.
            rt.vault.abort_incomplete_uploads(client_id, name)
            with open_file(f) as chunks:
                return rt.vault.put_stream(client_id, name, chunks, f.content_type)
        except DownloadError as exc:
            if not exc.retryable or attempt == s.download_attempts:
                raise
            wait = exc.retry_after if exc.retry_after is not None else s.download_backoff_seconds * 2 ** (attempt - 1)
            log.info("download of file %s failed (%s); retry %d in %.1fs", f.file_id, exc, attempt, wait)
            time.sleep(min(wait, 60))
    raise AssertionError("unreachable")


def _download_failed(rt, session_id: str, f: PlatformFile, exc: DownloadError) -> str:
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        sessions.move(db, session, SessionState.failed, f"download of {f.kind} file failed: {exc}")
        audit.record(db, "system", "session.download_failed", f"session:{session_id}",
                     coach_id=session.coach_id, file=f.file_id, error=str(exc))
        coach = q.coach_by_id(db, session.coach_id)
        notify.tell_coach(
            db, rt, coach, key=f"download-failed:{session_id}:{f.file_id}",
            subject="A recording could not be downloaded",
            body=(f"holdspace could not download the {f.kind} of \"{session.topic}\" "
                  f"({_when(session)}) after {rt.settings.download_attempts} attempts: {exc}. "
                  "Nothing partial was kept."))
    return "failed"


def _mark_kept(rt, db, session: CoachingSession, files: list[PlatformFile]) -> str:
    """`stored` when the session now holds something usable; otherwise `nothing_to_keep`, and
    the coach is told what the platform sent (a transcript without the consent to keep it,
    a chat alone, files not ready)."""
    if not sessions.usable_assets(db, session):
        sent = ", ".join(sorted({f.kind.replace("_", " ") for f in files})) or "no finished file"
        reason = f"{session.platform.capitalize()} sent {sent}; nothing of it can be kept under the client's consent and your media policy"
        if sessions.move(db, session, SessionState.nothing_to_keep, reason):
            audit.record(db, "system", "session.nothing_to_keep", f"session:{session.id}",
                         coach_id=session.coach_id, sent=sent)
            coach = q.coach_by_id(db, session.coach_id)
            notify.tell_coach(
                db, rt, coach, key=f"nothing-to-keep:{session.id}:{sent[:40]}",
                subject="A recording held nothing to keep",
                body=(f"For \"{session.topic}\" ({_when(session)}), {reason}. Nothing was stored, "
                      "and the client was not emailed."))
        return "done"
    sessions.move(db, session, SessionState.stored)
    client = q.client_of(db, session.coach_id, session.client_id)
    if session.started_at and (client.last_session_at is None or session.started_at > client.last_session_at):
        client.last_session_at = session.started_at
    audit.record(db, "system", "session.stored", f"session:{session.id}", coach_id=session.coach_id)
    return "done"


# --- meeting.ended and lost webhooks ---------------------------------------------------------

def note_meeting_ended(rt, inbox_id: int, payload: dict) -> tuple[str, str | None]:
    """Record the meeting as ended and schedule a check for a recording.completed that never came."""
    obj = payload["payload"]["object"]
    session_id = _open_session(rt, inbox_id, obj)
    if session_id is None:
        return "ignored", None
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        session.ended_at = session.ended_at or _parse_time(obj.get("end_time")) or utcnow()
        waiting = session.state == SessionState.received.value
        duration = session.duration_minutes or 0
    if waiting:
        delay = max(rt.settings.reconcile_min_delay_seconds,
                    rt.settings.reconcile_duration_factor * duration * 60)
        schedule_reconcile(rt, session_id, delay, attempt=1)
    return "done", session_id


def schedule_reconcile(rt, session_id: str, delay_seconds: float, attempt: int) -> None:
    from datetime import timedelta
    rt.queue("default").enqueue_in(timedelta(seconds=delay_seconds), reconcile_session, session_id,
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
    recording = rt.zoom.get_recordings(uuid) if rt.zoom.configured else None
    if recording and zoom_files(recording):
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
                          subject="No recording arrived",
                          body=f"Zoom never produced a recording for \"{session.topic}\" ({_when(session)}).")
    return "gave up"


def discovered(rt, recording: dict, source: str) -> int | None:
    """Feed a recording found through the API into the same inbox and dedupe as a webhook."""
    from workers import inbox
    payload = {"event": "recording.completed", "payload": {"object": recording},
               "download_token": recording.get("download_access_token")}
    payload["payload"]["object"] = {k: v for k, v in recording.items() if k != "download_access_token"}
    inbox_id = inbox.accept(rt, "zoom", "recording.completed",
                            zoom_dedupe_key("recording.completed", recording), payload, source)
    if inbox_id is not None:
        inbox.enqueue(rt, inbox_id)
    return inbox_id


def sweep_zoom_recordings(days: int = 3, now=None) -> int:
    """Daily: list each coach's recent cloud recordings and ingest any holdspace never saw.

    `now` (default: the clock) fixes the window's last day, so a test can sweep any date."""
    from datetime import timedelta
    rt = current()
    if not rt.zoom.configured:
        return 0
    today = (now or utcnow()).date()
    with session_scope(rt.engine) as db:
        hosts = [c.zoom_user_id for c in q.all_coaches(db) if c.zoom_user_id]
    found = 0
    for host in hosts:
        for meeting in rt.zoom.list_user_recordings(host, today - timedelta(days=days), today):
            if discovered(rt, meeting, source="sweep"):
                found += 1
    return found


HANDLERS = {
    ("zoom", "recording.completed"): ingest_zoom_recording,
    ("zoom", "recording.transcript_completed"): ingest_zoom_recording,
    ("zoom", "meeting.ended"): note_meeting_ended,
}


def handler_for(platform: str, event: str):
    if platform == "google":
        from workers.meet import HANDLERS as MEET  # Meet's steps build on the ones above
        return MEET.get(event)
    return HANDLERS.get((platform, event))


# --- small helpers ----------------------------------------------------------------------------

def _when(session: CoachingSession) -> str:
    return session.started_at.strftime("%d %b %Y %H:%M UTC") if session.started_at else "date unknown"


def _parse_time(value):
    from datetime import datetime, timezone
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
