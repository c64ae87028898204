"""How far a running job has got, so the coach sees "transcribing, 40%" instead of a wait.

The job reports the share done (0 to 1) into its own RQ job's meta; the dashboard reads it back
from the job while the job runs. Nothing goes to the database: a share means something only
while a worker is on the job, and a job killed halfway starts again from nothing anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

META_KEY = "progress"
# Redis is written only when the share has grown by this much: Whisper's segments come every
# second or so, and the coach reads whole percents.
STEP = 0.01


def reporter(parts: int = 1, part: int = 0) -> Callable[[float], None]:
    """A function telling the current job's meta how far it is. A job heard in `parts` pieces
    (one per participant's track) reports piece `part`'s share as that part of the whole.
    Outside a worker, or with Redis gone, it does nothing: progress is never worth a failure."""
    from rq import get_current_job
    job = get_current_job()

    def report(share: float) -> None:
        if job is None:
            return
        done = round((part + max(0.0, min(1.0, share))) / parts, 3)
        last = job.meta.get(META_KEY, 0.0)
        # Never backwards (a chunk heard again without its hotwords); the end always counts.
        if done <= last or (done < last + STEP and done < 1.0):
            return
        job.meta[META_KEY] = done
        try:
            job.save_meta()
        except Exception as exc:  # noqa: BLE001
            log.debug("progress of job %s not saved (%s)", job.id, type(exc).__name__)
    return report


def of_job(redis, job_id: str) -> float | None:
    """The share a running job has reported, or None (not running, or nothing reported)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    try:
        job = Job.fetch(job_id, connection=redis)
        if job.get_status() != JobStatus.STARTED:
            return None
        share = job.get_meta(refresh=True).get(META_KEY)
    except NoSuchJobError:
        return None
    except Exception as exc:  # noqa: BLE001 - the dashboard shows the state without a share
        log.debug("progress of job %s not read (%s)", job_id, type(exc).__name__)
        return None
    return float(share) if isinstance(share, (int, float)) else None
