"""The inbox: every accepted delivery becomes one row, unique on its dedupe key, before any
work is queued. The row is the record; a lost job is found again by `sweep()`."""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from rq.registry import StartedJobRegistry
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select

from models import InboxEvent, sealing, utcnow
from models.db import session_scope
from workers import retries

log = logging.getLogger(__name__)

PENDING = ("received", "processing")


# What lets anyone play or join a meeting's recording: Zoom documents passcode + share_url as
# enough to play it. holdspace never needs them, so they are never stored.
NEVER_STORED = frozenset({"password", "recording_play_passcode", "share_url"})


def without_secrets(value, drop=NEVER_STORED):
    """`value` (a decoded JSON payload) less every member named in `drop`, at any depth."""
    if isinstance(value, dict):
        return {k: without_secrets(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [without_secrets(v, drop) for v in value]
    return value


def accept(rt, platform: str, event: str, dedupe_key: str, payload: dict,
           source: str = "webhook") -> int | None:
    """Record a delivery once: the new row's id, or None when the key was seen before.

    One INSERT ... ON CONFLICT DO NOTHING, so a repeat costs one short write and no error path.
    Passcodes and share links are dropped first; the download token stays only until the
    event has been processed."""
    # Sealed before the INSERT (a Core statement, which the models' sealing does not see),
    # under the service's inbox key: the host is not known yet.
    sealed = sealing.seal_value(sealing.provider_for(rt.engine), InboxEvent(dedupe_key=dedupe_key),
                                "payload", "json", without_secrets(payload))
    insert = pg_insert if rt.engine.dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    stmt = (insert(InboxEvent)
            .values(platform=platform, event=event, dedupe_key=dedupe_key, payload=sealed,
                    source=source, status="received", attempts=0, received_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(InboxEvent.id))
    with rt.engine.begin() as conn:
        return conn.execute(stmt).scalar()


# The job that processes an event, named rather than imported: the platforms it dispatches to
# record their own discoveries here, so importing it would close a loop.
PROCESS_EVENT = "workers.platforms.process_event"
JOB_OPTIONS = dict(job_timeout=3 * 3600, retry=retries.INGEST.rq(), failure_ttl=7 * 86400)


def job_id(inbox_id: int) -> str:
    return f"inbox-{inbox_id}"


def retry_job_id(inbox_id: int, attempt: int) -> str:
    """The scheduled re-run after attempt `attempt` stopped at something that may pass."""
    return f"inbox-{inbox_id}-after-{attempt}"


def job_alive(rt, inbox_id: int, attempts: int) -> bool:
    """Whether the event's job, or the re-run its last attempt scheduled, is still to come."""
    return rt.job_alive(job_id(inbox_id)) or (attempts > 0 and rt.job_alive(retry_job_id(inbox_id, attempts)))


def enqueue(rt, inbox_id: int) -> bool:
    """Queue the processing job; False (and no exception) when Redis is unreachable.

    The row stays `received` until the job starts: whether a job is still alive is asked of
    RQ by the sweeper, which keeps the webhook's path to one database write."""
    try:
        rt.queue("ingest").enqueue(PROCESS_EVENT, inbox_id, job_id=job_id(inbox_id), **JOB_OPTIONS)
    except (redis.RedisError, OSError) as exc:
        log.warning("inbox %s recorded but not queued (%s); the sweeper will queue it",
                    inbox_id, type(exc).__name__)
        return False
    return True


def sweep(rt, now=None) -> list[int]:
    """Re-queue inbox rows whose job never ran, was lost with Redis, or died with its worker.

    `now` lets tests move the clock: RQ itself only notices a killed worker's job once that
    job's heartbeat has expired."""
    now = now or utcnow()
    for q in rt.queues:
        StartedJobRegistry(queue=q).cleanup(timestamp=now.timestamp())
    stale_before = now - timedelta(seconds=rt.settings.sweep_stale_seconds)
    with session_scope(rt.engine) as db:
        rows = list(db.exec(select(InboxEvent.id, InboxEvent.attempts)
                            .where(InboxEvent.status.in_(PENDING), InboxEvent.updated_at < stale_before)
                            .order_by(InboxEvent.id)))
    requeued = [i for i, attempts in rows if not job_alive(rt, i, attempts) and enqueue(rt, i)]
    if requeued:
        log.info("sweeper re-queued %d inbox events", len(requeued))
    return requeued
