"""Every retry policy holdspace uses, named once, and the one way a job puts work off.

A job that must wait (a platform's Retry-After, a backoff before the next download attempt, a
platform transcript still being made) never sleeps in its worker: it asks the RQ scheduler to
run the work later (`later`) and returns, so the worker is free and a killed worker loses
nothing that the inbox and pipeline sweepers cannot find again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rq import Retry


@dataclass(frozen=True)
class Policy:
    """How many times RQ runs a failed job again, and how long it waits before each run."""
    name: str
    intervals: tuple[int, ...]

    @property
    def tries(self) -> int:
        return len(self.intervals)

    def rq(self) -> Retry:
        return Retry(max=len(self.intervals), interval=list(self.intervals))


# An inbox event's job: a database blip, the platform's API briefly away.
INGEST = Policy("ingest", (30, 120, 600))
# Transcription, summary and delivery: a model or a mail server briefly away.
PIPELINE_STEP = Policy("pipeline step", (60, 300, 900))
# A message to a coach or client: Slack or SMTP may be down for a while.
MESSAGE = Policy("message", (10, 60, 300, 900, 3600))
# A deletion must finish even when storage is unreachable for an hour.
ERASURE = Policy("erasure", (10, 60, 300, 900, 3600))

# However long a platform asks us to wait, a download is tried again within the hour.
MAX_DOWNLOAD_WAIT_SECONDS = 3600.0


def download_delay(settings, attempt: int, retry_after: float | None) -> float:
    """Seconds to wait after failed download attempt `attempt` (1-based): the platform's
    Retry-After when it sent one, else DOWNLOAD_BACKOFF_SECONDS doubled per attempt."""
    wait = retry_after if retry_after is not None else settings.download_backoff_seconds * 2 ** (attempt - 1)
    return min(max(float(wait), 0.0), MAX_DOWNLOAD_WAIT_SECONDS)


def later(rt, queue: str, delay_seconds: float, func, *args, job_id: str, **options):
    """Run `func(*args)` on `queue` after `delay_seconds`, by the scheduler, under `job_id`."""
    return rt.queue(queue).enqueue_in(timedelta(seconds=max(0.0, delay_seconds)), func, *args,
                                      job_id=job_id, **options)
