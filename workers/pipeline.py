"""After a recording is stored: transcribe → summarise → deliver, one job per step.

The session's state says which step is next, so any step can be re-run after a crash: a step
whose result already exists moves straight on. Consent decides how far a session goes: without
`transcribe` (or `summarise`) the session is delivered with what it has. `sweep_stalled()`
re-queues a step whose job was lost (Redis emptied, a worker gone) and, after a bounded number
of tries, fails the session and tells the coach, so no session stays stuck unseen."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlmodel import select

from models import (Asset, ClientMemory, CoachInsight, CoachingSession, SessionState, Summary,
                    Transcript, TranscriptPassage, audit, utcnow)
from models import queries as q
from models import search
from models.db import session_scope
from vault.errors import ObjectErased
from workers import fence, retries, sessions
from workers.progress import of_job, reporter
from workers.runtime import current
from workers.sessions import Fenced

log = logging.getLogger(__name__)

S = SessionState
VTT_FILE_ID = "holdspace:transcript.vtt"


# --- moving on ----------------------------------------------------------------------------------

# A job waiting (scheduled) for the platform's transcript carries this tag and a count.
WAIT_TAG = "-wait"


def step_job_id(step, session_id: str, tag: str = "") -> str:
    """The one job id of `step` (a job function) for a session, so a step is never queued twice."""
    return f"{step.__name__}-{session_id}{tag}"


def enqueue_advance(rt, session_id: str, delay_seconds: float | None = None, tag: str = "") -> None:
    """Queue the step the session's state calls for (each step has its own job id)."""
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        state = session.state if session else None
    step = {S.stored.value: transcribe_session, S.transcribing.value: transcribe_session,
            S.summarising.value: summarise_session}.get(state)
    if step is None:
        return
    job_id = step_job_id(step, session_id, tag)
    try:
        if rt.job_alive(job_id):
            return
        options = dict(job_id=job_id, job_timeout=4 * 3600, retry=retries.PIPELINE_STEP.rq())
        if delay_seconds:
            retries.later(rt, "default", delay_seconds, step, session_id, **options)
        else:
            # A transcribed session's last short steps go ahead of other sessions' long
            # transcriptions, so its client is not kept waiting for a whole batch.
            rt.queue("default").enqueue(step, session_id, at_front=step is summarise_session, **options)
    except Exception as exc:  # noqa: BLE001 - the pipeline sweep picks it up
        log.warning("session %s: next step not queued (%s)", session_id, type(exc).__name__)


def transcription_progress(rt, session_id: str) -> float | None:
    """The share of the session's recording its running transcription has heard, if any."""
    return of_job(rt.redis, step_job_id(transcribe_session, session_id))


# --- the sweeper ---------------------------------------------------------------------------------

def steps_alive(rt, session_id: str) -> bool:
    """Whether any job of this session's pipeline is queued, scheduled, waiting or running."""
    from rq.registry import ScheduledJobRegistry

    from workers.delivery import deliver_session
    steps = (transcribe_session, summarise_session, deliver_session)
    if any(rt.job_alive(step_job_id(step, session_id)) for step in steps):
        return True
    waiting = step_job_id(transcribe_session, session_id, WAIT_TAG)
    return any(job_id.startswith(waiting) for queue in rt.queues
               for job_id in ScheduledJobRegistry(queue=queue).get_job_ids())


def sweep_stalled(now=None) -> dict:
    """Every few minutes: sessions that have sat in a working state longer than
    SESSION_STALL_SECONDS with no job of theirs alive get their step queued again; after
    SESSION_STALL_TRIES such re-queues the session fails with the reason and the coach is told.
    A session whose ingest job failed for good (storage gone, an unexpected error) without
    moving it on fails the same way, instead of staying `received` or `fetching`."""
    from sqlalchemy import func

    from models import AuditEvent, InboxEvent
    from workers.inbox import PENDING
    rt = current()
    s = rt.settings
    before = (now or utcnow()) - timedelta(seconds=s.session_stall_seconds)
    with session_scope(rt.engine) as db:
        stalled = [(x.id, x.state) for x in db.exec(select(CoachingSession).where(
            CoachingSession.state.in_(sessions.PROCESSING + sessions.INGESTING), CoachingSession.updated_at < before))]
    requeued, failed = [], []
    for session_id, state in stalled:
        if state in sessions.INGESTING:
            with session_scope(rt.engine) as db:
                rows = list(db.exec(select(InboxEvent).where(InboxEvent.session_id == session_id)))
            if any(r.status in PENDING for r in rows):
                continue  # the inbox sweeper owns a download still pending
            # `received` may be waiting, rightly, for a recording after meeting.ended; it has
            # stalled only when the event that was to fetch it failed for good.
            if not any(r.status == "failed" for r in rows) and (state == S.received.value or not rows):
                continue
            error = next((r.error for r in rows if r.error), None) or "the download stopped"
            sessions.fail(rt, session_id, f"download failed: {error}",
                          advice="Nothing partial was kept; retry from the dashboard once the cause is fixed.")
            failed.append(session_id)
            continue
        if steps_alive(rt, session_id):
            continue
        with session_scope(rt.engine) as db:
            tries = db.exec(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.subject == f"session:{session_id}", AuditEvent.action == "session.requeued")).one()
            if tries < s.session_stall_tries:
                session = db.get(CoachingSession, session_id)
                audit.record(db, "system", "session.requeued", f"session:{session_id}",
                             coach_id=session.coach_id, state=state, attempt=tries + 1)
        if tries >= s.session_stall_tries:
            sessions.fail(rt, session_id, f"the {state} step stalled {tries} times; holdspace gave up on it")
            failed.append(session_id)
        else:
            enqueue_advance(rt, session_id)
            requeued.append(session_id)
    if requeued or failed:
        log.info("pipeline sweep: %d re-queued, %d failed", len(requeued), len(failed))
    return {"requeued": len(requeued), "failed": len(failed)}


def enqueue_delivery(rt, session_id: str) -> None:
    from workers.delivery import deliver_session
    try:
        rt.queue("default").enqueue(deliver_session, session_id, job_id=step_job_id(deliver_session, session_id),
                                    at_front=True,
                                    retry=retries.PIPELINE_STEP.rq())
    except Exception as exc:  # noqa: BLE001
        log.warning("session %s: delivery not queued (%s)", session_id, type(exc).__name__)


def _scopes(db, session) -> frozenset[str] | None:
    """The consent scopes, or None when nothing may be done for this session at all."""
    scopes = sessions.consent_scopes(db, session.coach_id, session.client_id)
    return scopes if sessions.may(scopes, "keep") else None


# --- transcription --------------------------------------------------------------------------------

@sessions.step("transcription")
def transcribe_session(session_id: str) -> str:
    rt = current()
    s = rt.settings
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session is None or session.state not in (S.stored.value, S.transcribing.value):
            return session.state if session else "missing"
        fence.hold(db, session.coach_id, session.client_id, need="keep", session_id=session.id)
        scopes = _scopes(db, session)
        if scopes is None:
            return "no consent"
        if not sessions.may(scopes, "transcribe"):
            enqueue_delivery(rt, session_id)
            return "not consented to transcription"
        if db.exec(select(Transcript.id).where(Transcript.session_id == session_id)).first():
            sessions.move(db, session, S.summarising)
            after = "summarise"
        else:
            after = None
            coach = q.coach_by_id(db, session.coach_id)
            assets = q.assets_of_session(db, coach.id, session.id)
            platform_vtt = next((a for a in assets if a.kind == "transcript"), None)
            engine = _engine_for(s, coach, session, platform_vtt is not None)
            if engine == "wait":
                waited = (utcnow() - session.created_at).total_seconds()
                delay = min(900, max(1, s.platform_transcript_wait_seconds - waited))
                tag = f"{WAIT_TAG}{int(waited // 60)}"
            else:
                sessions.move(db, session, S.transcribing)
                audit.record(db, "system", "session.transcribing", f"session:{session_id}",
                             coach_id=coach.id, engine=engine)
            client = q.client_of(db, coach.id, session.client_id)
            job = _TranscriptionJob(session_id, session.client_id, coach.name, engine, assets,
                                    platform_vtt=platform_vtt if coach.allow_platform_transcript else None,
                                    client_name=client.name if client else None,
                                    vocabulary=_vocabulary(db, coach, session, client))
    if after:
        enqueue_advance(rt, session_id)
        return "already transcribed"
    if engine == "wait":
        enqueue_advance(rt, session_id, delay_seconds=delay, tag=tag)
        return "waiting for the platform transcript"

    segments, engine_name, language = job.run(rt)
    _store_transcript(rt, job, segments, engine_name, language)
    enqueue_advance(rt, session_id)
    return "transcribed"


def _engine_for(settings, coach, session, platform_available: bool) -> str:
    """`platform`, `openai`, `local`, or `wait` (for Zoom's transcript, for a bounded time)."""
    from workers.transcription.engines import choose_engine
    setting = settings.transcribe_engine
    platform_allowed = coach.allow_platform_transcript and session.platform in ("zoom", "meet")
    if setting in ("auto", "platform") and platform_allowed and not platform_available:
        waited = (utcnow() - session.created_at).total_seconds()
        if waited < settings.platform_transcript_wait_seconds:
            return "wait"
    engine = choose_engine(setting, openai_configured=settings.openai_configured,
                           platform_transcript_available=platform_available,
                           platform_allowed=platform_allowed)
    # Asked for the platform's transcript and it never came: transcribe here, so the audio
    # still never leaves holdspace.
    return "local" if engine == "platform" and not platform_available else engine


def _vocabulary(db, coach, session, client) -> tuple[list[str], list[str]]:
    """(names, topics) Whisper should know: the coach, the client, and from the client's
    memory the people they talk about and their recurring themes."""
    names = [n for n in (coach.name, client.name if client else None) if n]
    row = db.exec(select(ClientMemory).where(ClientMemory.coach_id == coach.id,
                                             ClientMemory.client_id == session.client_id)).first()
    data = (row.data if row else None) or {}
    names += list(data.get("people") or [])
    topics = [t["name"] for t in data.get("themes") or [] if len(t.get("session_ids") or []) >= 2]
    return names, topics


class _TranscriptionJob:
    def __init__(self, session_id, client_id, coach_name, engine, assets, *, platform_vtt=None,
                 client_name=None, vocabulary=((), ())):
        self.session_id, self.client_id, self.coach_name = session_id, client_id, coach_name
        self.client_name = client_name
        self.names, self.topics = vocabulary
        self.engine, self.platform_vtt = engine, platform_vtt
        self.tracks = [a for a in assets if a.kind == "participant_audio"]
        self.main = next((a for kind in ("audio", "video") for a in assets if a.kind == kind), None)

    def run(self, rt):
        from workers.transcription.speakers import attribute, label_speakers_heuristic, merge_tracks, resolve_speakers
        names = (self.coach_name or "Coach", self.client_name or "Client")
        if self.engine == "platform":
            segments = self._platform(rt)
            if not any(seg.speaker for seg in segments):
                segments = label_speakers_heuristic(segments, coach_name=self.coach_name, names=names)
            return segments, "platform:zoom", None
        if len(self.tracks) >= 2:
            results = [(a.label or f"Speaker {i + 1}",
                        self._transcribe(rt, a, progress=reporter(len(self.tracks), i)))
                       for i, a in enumerate(self.tracks)]
            segments = merge_tracks([(label, r.segments) for label, r in results])
            return segments, results[0][1].engine, results[0][1].language
        if self.main is None:
            raise RuntimeError("the session has no audio to transcribe")
        platform = self._platform(rt) if self.platform_vtt else None
        if self.engine == "openai":
            result = self._transcribe(rt, self.main)
            segments = resolve_speakers(result.segments, platform=platform, coach_name=self.coach_name, names=names)
            return segments, result.engine, result.language
        # Our words, each given its speaker: from the platform's transcript by time, else from
        # the two voices in the audio.
        result = self._transcribe(rt, self.main, per_word=True, progress=reporter())
        voices = None if platform and any(p.speaker for p in platform) else self._voices(rt, self.main)
        segments = attribute(result.segments, platform=platform, voices=voices,
                             coach_name=self.coach_name, client_name=self.client_name)
        return segments, result.engine, result.language

    def _platform(self, rt):
        from workers.transcription.vtt import parse_vtt
        vtt = b"".join(rt.vault.open(self.platform_vtt.object_key)).decode("utf-8", "replace")
        return parse_vtt(vtt)

    def _transcribe(self, rt, asset: Asset, per_word: bool = False, progress=None):
        # Decoded straight from the vault's decrypting reader: no plaintext copy on disk.
        with rt.vault.open_file(asset.object_key) as media:
            if self.engine == "openai":
                return _openai_transcriber(rt).transcribe(media)  # one upload: nothing to count
            return _local_transcriber(rt).transcribe(media, names=self.names, topics=self.topics,
                                                     per_word=per_word, progress=progress)

    def _voices(self, rt, asset: Asset):
        from workers.transcription.audio import blocks_of
        from workers.transcription.voices import voice_frames
        with rt.vault.open_file(asset.object_key) as media:
            return voice_frames(blocks_of(media))


_local_cache: dict = {}


def _local_transcriber(rt):
    from workers.transcription.local import LocalWhisper
    key = rt.settings.whisper_model
    if key not in _local_cache:
        _local_cache[key] = LocalWhisper(key)
    return _local_cache[key]


def _openai_transcriber(rt):
    from integrations.openai_api import make_client
    from workers.transcription.openai_engine import OpenAITranscriber
    s = rt.settings
    return OpenAITranscriber(make_client(base_url=s.openai_base_url, api_key=s.openai_api_key),
                             s.openai_transcribe_model)


def _store_transcript(rt, job: _TranscriptionJob, segments, engine: str, language) -> None:
    from workers.transcription.vtt import to_vtt
    rows = [seg.to_dict() for seg in segments]
    vtt = to_vtt(segments).encode()
    try:
        stored = rt.vault.put_stream(job.client_id, f"sessions/{job.session_id}/transcript.vtt", [vtt], "text/vtt")
    except ObjectErased:
        raise Fenced(f"the key of client {job.client_id} was shredded") from None
    try:
        drop_media, receipt = _commit_transcript(rt, job, rows, stored, engine, language)
    except Fenced:
        rt.vault.delete(stored.key)  # erased meanwhile: nothing may point to it, so remove it
        raise
    if drop_media:
        from workers.erasure import run_erasure
        run_erasure(receipt.id)


def _commit_transcript(rt, job: _TranscriptionJob, rows, stored, engine: str, language):
    from workers.transcripts import passages
    receipt = None
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, job.session_id)
        if session is None:
            raise Fenced(f"session {job.session_id} was deleted")
        fence.hold(db, session.coach_id, session.client_id, need="transcribe", session_id=session.id)
        if db.exec(select(Transcript.id).where(Transcript.session_id == job.session_id)).first():
            return False, None  # a concurrent run got here first
        db.add(Transcript(coach_id=session.coach_id, client_id=session.client_id,
                          session_id=session.id, engine=engine,
                          language=language, segments=rows, text=" ".join(r["text"] for r in rows)))
        found = [TranscriptPassage(coach_id=session.coach_id, client_id=session.client_id,
                                   session_id=session.id, start=start, end=end, text=text_)
                 for start, end, text_ in passages(rows)]
        db.add_all(found)
        db.flush()  # the passages' ids, which the index lists
        search.index_passages(db, found)
        if q.asset_for_file(db, session.coach_id, session.id, VTT_FILE_ID) is None:
            db.add(Asset(coach_id=session.coach_id, client_id=session.client_id, session_id=session.id,
                         kind="transcript_vtt", platform_file_id=VTT_FILE_ID, object_key=stored.key,
                         content_type="text/vtt", size=stored.size, ciphertext_size=stored.ciphertext_size,
                         sha256=stored.sha256))
            audit.record(db, "system", "asset.stored", f"session:{session.id}", coach_id=session.coach_id,
                         object_key=stored.key, size=stored.size, sha256=stored.sha256)
        sessions.move(db, session, S.summarising)
        audit.record(db, "system", "session.transcribed", f"session:{session.id}",
                     coach_id=session.coach_id, engine=engine, segments=len(rows))
        coach = q.coach_by_id(db, session.coach_id)
        drop_media = coach.media_policy == "drop_media_after_transcription"
        if drop_media:
            from workers.erasure import MEDIA_KINDS, start_session_erasure
            receipt = start_session_erasure(db, coach.id, session.id, reason="media_policy",
                                            actor="system", kinds=MEDIA_KINDS)
    return drop_media, receipt


# --- summaries -----------------------------------------------------------------------------------

@sessions.step("summary")
def summarise_session(session_id: str) -> str:
    rt = current()
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session is None or session.state != S.summarising.value:
            return session.state if session else "missing"
        scopes = _scopes(db, session)
        if scopes is None:
            return "no consent"
        done = db.exec(select(Summary.id).where(Summary.session_id == session_id)).first()
        if not sessions.may(scopes, "summarise") or done:
            enqueue_delivery(rt, session_id)
            return "already summarised" if done else "not consented to summaries"
        transcript = db.exec(select(Transcript).where(Transcript.coach_id == session.coach_id,
                                                      Transcript.session_id == session_id)).one()
        memory_row = db.exec(select(ClientMemory).where(ClientMemory.coach_id == session.coach_id,
                                                        ClientMemory.client_id == session.client_id)).first()
        rows, memory_data = transcript.segments, (memory_row.data if memory_row else {})
        coach_id, client_id, started = session.coach_id, session.client_id, session.started_at
        coach_name = q.coach_by_id(db, coach_id).name
        client_name = q.client_of(db, coach_id, client_id).name

    from workers.summaries.memory import ClientMemory as Memory, update_memory
    from workers.transcription import Segment
    segments = [Segment.from_dict(r) for r in rows]
    memory = Memory.model_validate(memory_data) if memory_data else Memory()
    client_tier, coach_tier = _summarise(rt, segments, memory, session_id, coach_name, client_name)
    engine, basic = client_tier.engine, client_tier.basic
    energy = _energy(segments, client_name, coach_name)
    new_memory = update_memory(memory, client_tier, session_id, (started or utcnow()).date(), segments)

    with session_scope(rt.engine) as db:
        fence.hold(db, coach_id, client_id, need="summarise", session_id=session_id)
        if db.exec(select(Summary.id).where(Summary.session_id == session_id)).first():
            return "already summarised"
        tier = client_tier.model_dump(mode="json", exclude={"engine", "basic"})
        db.add(Summary(coach_id=coach_id, client_id=client_id, session_id=session_id,
                       engine=engine, basic=basic,
                       client_tier={**tier, "energy": energy}))
        db.add(CoachInsight(coach_id=coach_id, client_id=client_id, session_id=session_id,
                            engine=engine,
                            coach_tier=coach_tier.model_dump(mode="json", exclude={"engine", "basic"})))
        row = db.exec(select(ClientMemory).where(ClientMemory.coach_id == coach_id,
                                                 ClientMemory.client_id == client_id)).first()
        if row is None:
            row = ClientMemory(coach_id=coach_id, client_id=client_id)
            db.add(row)
        row.data = new_memory.model_dump(mode="json")
        row.sessions_seen = [*row.sessions_seen, session_id]
        row.updated_at = utcnow()
        audit.record(db, "system", "session.summarised", f"session:{session_id}",
                     coach_id=coach_id, engine=engine)
    enqueue_delivery(rt, session_id)
    return "summarised"


def _energy(segments, client_name: str, coach_name: str) -> list[list[float]]:
    """The valence of the client's own words over the session, for the page's small chart."""
    from workers.summaries.valence import valence_timeline
    labels = {s.speaker for s in segments if s.speaker}
    first = client_name.split()[0].lower() if client_name else ""
    speaker = ("Client" if "Client" in labels else
               next((l for l in sorted(labels) if first and l.lower().startswith(first)), None) or
               next((l for l in sorted(labels) if l.lower() not in (coach_name.lower(), "coach")), None))
    if speaker is None:
        return []
    return [[round(t, 2), round(v, 3)] for t, v in valence_timeline(segments, speaker)]


def _summarise(rt, segments, memory, session_id, coach_name, client_name):
    """(client tier, coach tier): OpenAI-compatible when configured (or asked for), else offline."""
    from workers.summaries import choose_summary_engine
    s = rt.settings
    if choose_summary_engine(s.summary_engine, openai_configured=s.openai_configured) == "openai":
        from integrations.openai_api import make_client
        from workers.summaries.openai_engine import OpenAISummariser
        summariser = OpenAISummariser(make_client(base_url=s.openai_base_url, api_key=s.openai_api_key),
                                      s.openai_summary_model)
        return summariser.summarise(segments, memory, client_name=client_name, coach_name=coach_name)
    from workers.summaries.offline import summarise_offline
    from workers.transcription.speakers import find_coach
    # The platform's names may not be the ones the coach entered ("Alex M." for "Alex Morgan").
    coach_label = find_coach(segments, coach_name)
    return summarise_offline(segments, memory=memory,
                             coach_labels=tuple(label for label in (coach_name, coach_label, "Coach") if label),
                             session_id=session_id, people=(client_name, coach_name), client_name=client_name)
