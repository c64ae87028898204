"""The platform-neutral steps of ingesting a recording: open the session → match the client →
the consent gate → download into the vault → `stored` (or a named state saying why not).

Each platform (workers/platforms/) maps its events onto these steps. Each step is safe to
re-run: finished files are never fetched twice, and a re-delivered event changes nothing. A
download that may pass later is not waited for here: `download` raises `RetryLater` and the
inbox job asks the scheduler to run the event again (workers/retries.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.exc import IntegrityError

from models import Asset, CoachingSession, InboxEvent, SessionState, audit
from models import queries as q
from models.db import session_scope
from vault.errors import ObjectErased
from workers import fence, notify, retries, sessions
from workers.fence import Fenced
from workers.sessions import HAVE_RECORDING

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Delivery:
    """An inbox event as its platform's handler sees it: `attempt` counts its job's runs."""
    inbox_id: int
    payload: dict
    attempt: int = 1


@dataclass(frozen=True)
class Meeting:
    """What a platform says about the meeting a session records."""
    platform: str           # zoom | meet
    uuid: str               # the platform's id of this one occurrence
    meeting_id: str | None  # the recurring meeting or space, for the coach's mapping
    topic: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_minutes: int | None = None


class DownloadError(Exception):
    """A platform file that could not be fetched whole, whichever platform it came from.

    `retryable` says whether a later attempt may succeed; `retry_after` is the wait the
    platform asked for, in seconds, when it named one."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class RetryLater(Exception):
    """The event's work stopped at something that may pass: run it again in `delay` seconds."""

    def __init__(self, delay: float, reason: str):
        super().__init__(reason)
        self.delay = delay


# --- step 1: the session ---------------------------------------------------------------------

def open_session(db, coach_id: str, meeting: Meeting, inbox_id: int | None = None) -> str:
    """Get or create the CoachingSession for this meeting (filling what an earlier event did
    not know), and tie the inbox row to it."""
    session = q.session_by_platform(db, coach_id, meeting.platform, meeting.uuid)
    if session is None:
        session = CoachingSession(coach_id=coach_id, platform=meeting.platform, platform_uuid=meeting.uuid,
                                  platform_meeting_id=meeting.meeting_id, topic=meeting.topic[:500],
                                  started_at=meeting.started_at, ended_at=meeting.ended_at,
                                  duration_minutes=meeting.duration_minutes)
        try:
            with db.begin_nested():
                db.add(session)
        except IntegrityError:  # a concurrent event for the same meeting created it first
            session = q.session_by_platform(db, coach_id, meeting.platform, meeting.uuid)
        else:
            audit.record(db, "system", "session.received", f"session:{session.id}",
                         coach_id=coach_id, platform=meeting.platform)
    else:
        session.topic = session.topic or meeting.topic[:500]
        session.started_at = session.started_at or meeting.started_at
        session.ended_at = session.ended_at or meeting.ended_at
        session.duration_minutes = session.duration_minutes or meeting.duration_minutes
    if inbox_id is not None:
        link_inbox(db, inbox_id, session.id)
    return session.id


def link_inbox(db, inbox_id: int, session_id: str) -> None:
    """Tie an inbox row to its session as soon as the session is known, so an event whose
    job later fails for good still says which session it left waiting (see sweep_stalled)."""
    ev = db.get(InboxEvent, inbox_id)
    if ev is not None:
        ev.session_id = ev.session_id or session_id


# --- step 2: the client ----------------------------------------------------------------------

def resolve_client(rt, session_id: str, sources, meeting_id: str | None) -> str | None:
    """Each source of attendee emails in turn (for Zoom: invitees, then registrants, then
    participants), then the coach's own mapping of a recurring meeting to a client."""
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session.client_id:
            return session.client_id
        coach = q.coach_by_id(db, session.coach_id)
        coach_id, coach_email, platform = coach.id, coach.email, session.platform

    matched, how, erased_only = None, None, False
    for name, fetch in sources:
        emails = [e for e in fetch() if e and e.lower() != coach_email]
        with session_scope(rt.engine) as db:
            # A client being erased is no one's match: nothing new may be tied to them.
            candidates = q.clients_by_emails(db, coach_id, emails)
            found = {c.id for c in candidates if fence.may_match(c)}
            erased_only = erased_only or (bool(candidates) and not found)
        if len(found) == 1:
            matched, how = found.pop(), name
            break
        if len(found) > 1:  # a group meeting: not for holdspace to guess whose it is
            break
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session is None:
            raise Fenced(f"session {session_id} was deleted")
        if matched is None and meeting_id:
            mapped = q.mapped_client(db, coach_id, platform, meeting_id)
            matched, how = (mapped.id, "meeting mapping") if mapped else (None, None)
        if matched is not None:
            try:
                fence.hold(db, coach_id, matched, need=None)
            except Fenced:
                matched = None
        if matched is None and erased_only:
            _refuse_for_withdrawn(rt, db, session)
            return None
        if matched is None:
            first_time = session.state != SessionState.unmatched.value
            sessions.move(db, session, SessionState.unmatched, "no client of this coach matched the meeting")
            audit.record(db, "system", "session.unmatched", f"session:{session.id}", coach_id=coach_id)
            if first_time:
                coach = q.coach_by_id(db, coach_id)
                notify.tell_coach(
                    db, rt, coach, key=f"unmatched:{session.id}",
                    subject="A recording needs a client",
                    body=(f"The recording of \"{session.topic}\" ({notify.when(session, coach)}) matched none of "
                          f"your clients, so nothing was downloaded. Choose its client on "
                          f"{notify.session_page(rt, session.id)} or with "
                          f"/holdspace assign {session.id} <client email>."))
            return None
        session.client_id = matched
        audit.record(db, "system", "session.client_matched", f"session:{session.id}",
                     coach_id=coach_id, client=matched, source=how)
        return matched


def _refuse_for_withdrawn(rt, db, session: CoachingSession) -> None:
    """The meeting's client withdrew and was erased: refused, and tied to no one."""
    first_time = session.state != SessionState.refused_no_consent.value
    sessions.move(db, session, SessionState.refused_no_consent, "the client withdrew consent")
    audit.record(db, "system", "session.refused_no_consent", f"session:{session.id}",
                 coach_id=session.coach_id, reason="client withdrew")
    if first_time:
        coach = q.coach_by_id(db, session.coach_id)
        notify.tell_coach(
            db, rt, coach, key=f"refused:{session.id}", subject="Recording not kept: consent withdrawn",
            body=(f"The client invited to \"{session.topic}\" ({notify.when(session, coach)}) has withdrawn "
                  "consent and their data was deleted, so holdspace stored nothing from it."))


# --- step 3: consent -------------------------------------------------------------------------

def consent_gate(rt, session_id: str, discard=None) -> frozenset[str] | None:
    """No active consent with the `record` scope → refuse and store nothing. `discard`, when
    the platform can, removes the platform's own copy (the coach asked for that)."""
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session is None:
            raise Fenced(f"session {session_id} was deleted")
        client = fence.lock_client(db, session.coach_id, session.client_id)
        if client is None or client.erasing_at is not None or session.erasing_at is not None:
            raise Fenced(f"session {session_id} or its client is being erased")
        scopes = sessions.consent_scopes(db, session.coach_id, client.id)
        if sessions.may(scopes, "keep"):
            return scopes
        coach = q.coach_by_id(db, session.coach_id)
        first_time = session.state != SessionState.refused_no_consent.value
        sessions.move(db, session, SessionState.refused_no_consent,
                      "no active consent with the record scope")
        audit.record(db, "system", "session.refused_no_consent", f"session:{session.id}",
                     coach_id=coach.id, client=client.id)
        trash = discard is not None and coach.trash_zoom_copies
        platform = session.platform.capitalize()
        if first_time:
            notify.tell_coach(
                db, rt, coach, key=f"refused:{session.id}",
                subject=f"Recording not kept: no consent from {client.name}", client_id=client.id,
                body=(f"{client.name} ({client.email}) has no active consent to be recorded, so "
                      f"holdspace stored nothing from \"{session.topic}\" ({notify.when(session, coach)})."
                      + (f" The {platform} copy was moved to {platform}'s trash." if trash else
                         " Once they consent you can fetch it from "
                         f"{notify.session_page(rt, session.id)}")))
        uuid, coach_id = session.platform_uuid, coach.id
    if trash:
        discard(uuid)
        with session_scope(rt.engine) as db:
            audit.record(db, "system", f"{platform.lower()}.recording_trashed", f"session:{session_id}",
                         coach_id=coach_id)
    return None


# --- step 4: the download --------------------------------------------------------------------

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


def download(rt, session_id: str, files: list[PlatformFile], scopes: frozenset[str],
             open_file, attempt: int = 1) -> tuple[str, str]:
    """Stream every wanted, completed file into the vault under the client's key.

    `open_file(f)` is the platform's way to fetch a file: a context manager yielding chunks,
    raising DownloadError. A retryable failure with attempts left raises RetryLater; the last
    attempt's failure fails the session and tells the coach."""
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session is None:
            raise Fenced(f"session {session_id} was deleted")
        client = fence.hold(db, session.coach_id, session.client_id, need="keep", session_id=session.id)
        coach = q.coach_by_id(db, session.coach_id)
        have = {a.platform_file_id for a in q.assets_of_session(db, coach.id, session.id)}
        wanted = [f for f in files_to_keep(files, coach.media_policy, scopes) if f.file_id not in have]
        if not wanted:
            return ("done" if session.state in HAVE_RECORDING else _mark_kept(rt, db, session, files)), session_id
        if session.state not in HAVE_RECORDING:
            sessions.move(db, session, SessionState.fetching)
        coach_id, client_id = coach.id, client.id
        fence.client_key(db, rt, coach_id, client_id)

    for f in wanted:
        try:
            stored = _fetch(rt, f, open_file, client_id, session_id)
        except DownloadError as exc:
            if exc.retryable and attempt < rt.settings.download_attempts:
                delay = retries.download_delay(rt.settings, attempt, exc.retry_after)
                log.info("download of file %s failed (%s); attempt %d again in %.1fs",
                         f.file_id, exc, attempt + 1, delay)
                raise RetryLater(delay, f"download of {f.kind} file: {exc}") from None
            return _download_failed(rt, session_id, f, exc, attempt), session_id
        try:
            _commit_asset(rt, f, stored, coach_id, client_id, session_id)
        except Fenced:
            # Withdrawn or deleted while this file streamed in: what the erasure could not
            # yet see is removed here, by the writer, before anything points to it.
            rt.vault.delete(stored.key)
            raise

    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        fence.hold(db, coach_id, client_id, need="keep", session_id=session_id)
        if session.state in HAVE_RECORDING:
            return "done", session_id
        return _mark_kept(rt, db, session, files), session_id


def _commit_asset(rt, f: PlatformFile, stored, coach_id: str, client_id: str, session_id: str) -> None:
    """Record one stored file, inside the fence (Fenced: the caller deletes the object)."""
    with session_scope(rt.engine) as db:
        fence.hold(db, coach_id, client_id, need="keep", session_id=session_id)
        asset = Asset(coach_id=coach_id, client_id=client_id, session_id=session_id,
                      kind=f.kind, label=f.label, platform_file_id=f.file_id, object_key=stored.key,
                      content_type=f.content_type, size=stored.size,
                      ciphertext_size=stored.ciphertext_size, sha256=stored.sha256)
        try:
            with db.begin_nested():
                db.add(asset)
        except IntegrityError:
            return  # a concurrent run stored the same file under the same key
        audit.record(db, "system", "asset.stored", f"session:{session_id}", coach_id=coach_id,
                     object_key=stored.key, size=stored.size, sha256=stored.sha256)


def _fetch(rt, f: PlatformFile, open_file, client_id: str, session_id: str):
    """One attempt at one file; what fails is never stored (the vault aborts the upload)."""
    name = f"sessions/{session_id}/{f.file_id}.{f.extension}"
    # An upload left open by a worker killed mid-download is an orphan now.
    rt.vault.abort_incomplete_uploads(client_id, name)
    with open_file(f) as chunks:
        try:
            return rt.vault.put_stream(client_id, name, chunks, f.content_type)
        except ObjectErased:
            raise Fenced(f"the key of client {client_id} was shredded during the download") from None


def _download_failed(rt, session_id: str, f: PlatformFile, exc: DownloadError, attempts: int) -> str:
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        audit.record(db, "system", "session.download_failed", f"session:{session_id}",
                     coach_id=session.coach_id, file=f.file_id, error=str(exc))
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    sessions.fail(rt, session_id, f"the {f.kind} could not be downloaded after {tries}: {exc}",
                  subject="A recording could not be downloaded",
                  advice="Nothing partial was kept; retry from the dashboard once the cause is fixed.")
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
                subject="A recording held nothing to keep", client_id=session.client_id,
                body=(f"For \"{session.topic}\" ({notify.when(session, coach)}), {reason}. Nothing was stored, "
                      "and the client was not emailed."))
        return "done"
    sessions.move(db, session, SessionState.stored)
    client = q.client_of(db, session.coach_id, session.client_id)
    if session.started_at and (client.last_session_at is None or session.started_at > client.last_session_at):
        client.last_session_at = session.started_at
    audit.record(db, "system", "session.stored", f"session:{session.id}", coach_id=session.coach_id)
    return "done"


# --- small helpers ----------------------------------------------------------------------------

def parse_time(value) -> datetime | None:
    """A platform's ISO 8601 time (with Z or an offset), in UTC; None for anything else."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None
