"""The one owner of a coaching session's state and of the consent policy: which moves are
allowed, what each move requires, and the move itself (every step that changes
`CoachingSession.state` calls `move()`); how a step fails for good (`fail()`: the reason
kept, the coach told once; `step()` wraps each pipeline job in it); and which consent scopes
allow which step (every step asks `may()`).

A session is `stored` only when it holds an asset it can use (media or a transcript), and a
recording event that left nothing usable ends in `nothing_to_keep`, so no state ever claims
what the session does not hold.
"""

from __future__ import annotations

import functools

from rq import get_current_job
from sqlmodel import Session, select

from models import Asset, CoachingSession, SessionState, audit, utcnow
from models import queries as q
from models.db import session_scope
from workers import notify
from workers.runtime import current

S = SessionState

# Assets a session can be transcribed from, played or read: what makes it `stored`.
USABLE_KINDS = frozenset({"video", "audio", "participant_audio", "transcript"})
# Before the recording is in the vault: where a (re)delivered event may take the session.
_BEFORE = {S.received, S.unmatched, S.refused_no_consent, S.nothing_to_keep, S.failed, S.fetching}
# Consent can be found missing at any step; a step can fail for good at any step.
_ANY_TIME = {S.refused_no_consent, S.failed}

ALLOWED: dict[SessionState, frozenset[SessionState]] = {
    S.received: frozenset({S.fetching, S.stored, S.unmatched, S.nothing_to_keep} | _ANY_TIME),
    S.unmatched: frozenset({S.received, S.fetching, S.stored, S.nothing_to_keep} | _ANY_TIME),
    S.refused_no_consent: frozenset({S.received, S.fetching, S.stored, S.unmatched, S.nothing_to_keep} | _ANY_TIME),
    S.nothing_to_keep: frozenset({S.fetching, S.stored} | _ANY_TIME),
    S.fetching: frozenset({S.stored, S.nothing_to_keep} | _ANY_TIME),
    S.stored: frozenset({S.transcribing, S.summarising, S.ready_for_review, S.delivered} | _ANY_TIME),
    S.transcribing: frozenset({S.summarising, S.ready_for_review, S.delivered} | _ANY_TIME),
    S.summarising: frozenset({S.ready_for_review, S.delivered} | _ANY_TIME),
    # Waiting on the coach, not on a job: only the coach's send (or a failure) moves it on.
    S.ready_for_review: frozenset({S.delivered} | _ANY_TIME),
    S.delivered: frozenset({S.refused_no_consent}),
    # A retry resumes where the session stopped: at the download, or with what is stored.
    S.failed: frozenset({S.received, S.fetching, S.stored, S.unmatched, S.nothing_to_keep,
                         S.transcribing, S.summarising, S.ready_for_review, S.delivered,
                         S.refused_no_consent}),
}
# The states a pipeline step (transcribe, summarise, deliver) works through.
PROCESSING = (S.stored.value, S.transcribing.value, S.summarising.value)
# The states before the recording is stored, whose work is the inbox's.
INGESTING = (S.received.value, S.fetching.value)
HAVE_RECORDING = frozenset(PROCESSING + (S.ready_for_review.value, S.delivered.value))
# Where delivery may pick a session up: after processing, or once its coach has reviewed it.
DELIVERABLE = PROCESSING + (S.ready_for_review.value,)


class IllegalMove(RuntimeError):
    """A step tried a move the state machine does not allow (a bug, never a caller's input)."""


class Fenced(Exception):
    """The client (or the session) is being erased, or consent no longer allows the step: the
    step commits nothing and stops for good (raised by workers/fence.py)."""


def usable_assets(db: Session, session: CoachingSession) -> list[Asset]:
    return list(db.exec(select(Asset).where(Asset.coach_id == session.coach_id,
                                            Asset.session_id == session.id,
                                            Asset.kind.in_(sorted(USABLE_KINDS)))))


def move(db: Session, session: CoachingSession, to: SessionState, reason: str | None = None) -> bool:
    """Move `session` to `to` (its error becomes `reason`); False when it is there already.

    IllegalMove for a move the machine does not allow, or for `stored` when the session holds
    no usable asset."""
    here = S(session.state)
    if here == to:
        session.error, session.updated_at = reason, utcnow()
        return False
    if to not in ALLOWED[here]:
        raise IllegalMove(f"session {session.id}: {here.value} → {to.value} is not a move")
    if to == S.stored and not usable_assets(db, session):
        raise IllegalMove(f"session {session.id}: stored, yet it holds nothing usable")
    session.state, session.error, session.updated_at = to.value, reason, utcnow()
    return True


def fail(rt, session_id: str, reason: str, *, subject: str = "A session could not be processed",
         advice: str = "The recording itself is safe; retry from the dashboard once the cause is fixed.",
         only_from: tuple[str, ...] | None = None) -> bool:
    """A step has failed for good: the session is `failed` with `reason`, and the coach is
    told, once for this session and reason. False (and nothing changes) when the session is
    gone, is not in `only_from`, or is where a failure must not take it (delivered)."""
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session is None or (only_from is not None and session.state not in only_from):
            return False
        client = q.client_of(db, session.coach_id, session.client_id) if session.client_id else None
        if session.erasing_at is not None or (client is not None and client.erasing_at is not None):
            return False  # being deleted: there is nothing left to retry or to tell
        if S.failed not in ALLOWED[S(session.state)] and session.state != S.failed.value:
            return False
        move(db, session, S.failed, reason[:500])
        audit.record(db, "system", "session.failed", f"session:{session_id}", coach_id=session.coach_id,
                     error=reason[:500])
        coach = q.coach_by_id(db, session.coach_id)
        notify.tell_coach(db, rt, coach, key=f"session-failed:{session_id}:{reason[:40]}", subject=subject,
                          client_id=session.client_id,
                          body=f"\"{session.topic}\" ({notify.when(session, coach)}): {reason}. {advice}\n\n"
                               f"Retry it on {notify.session_page(rt, session_id)}")
    return True


def being_erased(rt, session_id: str | None) -> bool:
    """Whether the session is gone, or it or its client is being erased."""
    if not session_id:
        return False
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session is None or session.erasing_at is not None:
            return True
        client = q.client_of(db, session.coach_id, session.client_id) if session.client_id else None
        return client is not None and client.erasing_at is not None


def step(name: str):
    """A pipeline step's job: when it fails for good (no RQ retries left) the session is
    `failed` with the reason and the coach is told; until then RQ runs it again."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(session_id: str) -> str:
            try:
                return fn(session_id)
            except Fenced:
                return "fenced"  # being erased: the step committed nothing, and that is final
            except Exception as exc:
                if being_erased(current(), session_id):
                    # Its recording was deleted under it: not a failure to retry or report.
                    return "fenced"
                job = get_current_job()
                if job is None or not job.retries_left:
                    fail(current(), session_id, f"{name} failed: {type(exc).__name__}: {exc}")
                raise
        return run
    return wrap


# --- the consent policy ----------------------------------------------------------------------

# What each step needs the client's active consent to include. Nothing is kept, read, or
# sent without `record`; a platform's transcript is the client's words, as ours would be.
POLICY: dict[str, frozenset[str]] = {
    "keep": frozenset({"record"}),                      # download the recording into the vault
    "transcribe": frozenset({"record", "transcribe"}),  # ours, or keep the platform's transcript
    "summarise": frozenset({"record", "transcribe", "summarise"}),
    "deliver": frozenset({"record"}),                   # email the client their session page
    "download": frozenset({"record", "share_with_client"}),  # the client downloads their files
}


def consent_scopes(db: Session, coach_id: str, client_id: str | None) -> frozenset[str]:
    """The scopes the client's active consent grants now: none for an unknown, withdrawn or
    erased client, or one without an active consent."""
    client = q.client_of(db, coach_id, client_id) if client_id else None
    if client is None or client.withdrawn_at is not None:
        return frozenset()
    consent = q.active_consent(db, coach_id, client.id)
    return consent.scope_set if consent else frozenset()


def may(scopes: frozenset[str], step: str) -> bool:
    """Whether consent with `scopes` allows `step` (a key of POLICY)."""
    return POLICY[step] <= scopes
