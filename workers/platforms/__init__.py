"""The platforms holdspace ingests recordings from, behind one registry, and the inbox job
that dispatches each recorded event to its platform's handler.

Each platform module (zoom.py, meet.py) owns its payload mapping, its event table, its
reconciliation and its scheduled sweeps, and hands the registry a `Platform`. The neutral
steps they share are in workers/ingest.py."""

from __future__ import annotations

import logging

from rq import get_current_job

from models import Client, CoachingSession, InboxEvent, utcnow
from models.db import session_scope
from workers import fence, inbox, pipeline, retries, sessions
from workers.fence import Fenced
from workers.ingest import Delivery, RetryLater
from workers.platforms import meet, zoom
from workers.platforms.base import Platform
from workers.runtime import current

log = logging.getLogger(__name__)

PLATFORMS: dict[str, Platform] = {p.name: p for p in (zoom.PLATFORM, meet.PLATFORM)}


def handler_for(platform: str, event: str):
    """The handler of `event` from `platform`, or None when holdspace does not act on it."""
    known = PLATFORMS.get(platform)
    return known.handlers.get(event) if known else None


def handles(platform: str, event: str) -> bool:
    return handler_for(platform, event) is not None


def process_event(inbox_id: int) -> str:
    """The inbox job: run the event's handler; on `done`, queue the session's next step.

    A handler that stops at something that may pass (RetryLater) is run again by the
    scheduler after the wait, under its own job id, and the row stays pending meanwhile. A
    failure with no retries left marks the row failed and fails its session with the reason."""
    rt = current()
    with session_scope(rt.engine) as db:
        ev = db.get(InboxEvent, inbox_id)
        if ev is None:
            return "missing"
        if ev.status not in inbox.PENDING:
            return ev.status
        ev.status, ev.attempts, ev.updated_at = "processing", ev.attempts + 1, utcnow()
        delivery = Delivery(inbox_id, ev.payload, ev.attempts)
        platform, event = ev.platform, ev.event
    handler = handler_for(platform, event)
    try:
        outcome, session_id = handler(rt, delivery) if handler else ("ignored", None)
    except RetryLater as wait:
        _wait(rt, delivery, wait)
        return "retrying"
    except Fenced as stop:
        # The client withdrew (or the session was deleted) while this ran: nothing of it
        # was committed, and there is nothing to retry.
        _finish(rt, inbox_id, "refused", None, error=f"stopped by an erasure: {stop}"[:500])
        return "fenced"
    except Exception as exc:
        if _erased_under(rt, inbox_id):
            _finish(rt, inbox_id, "refused", None, error=f"stopped by an erasure: {type(exc).__name__}"[:500])
            return "fenced"
        job = get_current_job()
        if job is None or not job.retries_left:
            session_id = _finish(rt, inbox_id, "failed", None, error=f"{type(exc).__name__}: {exc}"[:500])
            if session_id:
                # Mid-ingest it fails now, with the reason; a session that already holds its
                # recording is the pipeline's, and stays as it is.
                sessions.fail(rt, session_id, f"ingest failed: {type(exc).__name__}: {exc}",
                              only_from=sessions.INGESTING,
                              advice="Nothing partial was kept; retry from the dashboard once the cause is fixed.")
        raise
    _finish(rt, inbox_id, outcome, session_id)
    if outcome == "done" and session_id:
        pipeline.enqueue_advance(rt, session_id)  # transcription, summary, delivery: each its own job
    return outcome


def _erased_under(rt, inbox_id: int) -> bool:
    """Whether an erasure emptied this event (or is deleting its session) while it ran."""
    with session_scope(rt.engine) as db:
        ev = db.get(InboxEvent, inbox_id)
        if ev is None or not ev.payload:
            return True
        session_id = ev.session_id
    return sessions.being_erased(rt, session_id)


def _wait(rt, delivery: Delivery, wait: RetryLater) -> None:
    with session_scope(rt.engine) as db:
        ev = db.get(InboxEvent, delivery.inbox_id)
        ev.status, ev.error, ev.updated_at = "received", str(wait)[:500], utcnow()
    try:
        retries.later(rt, "ingest", wait.delay, process_event, delivery.inbox_id,
                      job_id=inbox.retry_job_id(delivery.inbox_id, delivery.attempt),
                      **inbox.JOB_OPTIONS)
    except Exception as exc:  # noqa: BLE001 - Redis away: the inbox sweeper queues it again
        log.warning("inbox %s: retry not scheduled (%s); the sweeper will queue it",
                    delivery.inbox_id, type(exc).__name__)


def _finish(rt, inbox_id: int, status: str, session_id: str | None, error: str | None = None) -> str | None:
    """Record the event's outcome; the id of the session it is tied to, if any."""
    with session_scope(rt.engine) as db:
        ev = db.get(InboxEvent, inbox_id)
        ev.status, ev.error, ev.updated_at = status, error, utcnow()
        ev.session_id = session_id or ev.session_id
        session = db.get(CoachingSession, ev.session_id) if ev.session_id else None
        client = db.get(Client, session.client_id) if session and session.client_id else None
        if client is not None and fence.may_match(client):
            ev.client_id = client.id  # the payload is sealed again, under their key
        # The download token is a credential: once the event is processed, whatever the
        # outcome, it has no reason to stay (a retry downloads with the API token).
        if isinstance(ev.payload, dict) and ev.payload.get("download_token"):
            ev.payload = {**ev.payload, "download_token": None}
        return ev.session_id
