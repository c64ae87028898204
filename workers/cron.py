"""What the scheduler runs: the inbox and stalled-session sweepers, the daily sweep for missed
recordings, retention, briefings, and each platform's own scheduled jobs."""

from __future__ import annotations

from datetime import timedelta

from models import utcnow
from workers import inbox, notify
from workers.anchors import daily_anchor
from workers.briefing import send_upcoming_briefings, send_upcoming_meet_briefings
from workers.erasure import apply_retention, resume_unfinished
from workers.pipeline import sweep_stalled
from workers.platforms import PLATFORMS
from workers.runtime import current


def sweep_inbox(now=None) -> dict:
    """Every minute: queue inbox rows and messages whose job was lost or died.

    `now` (default: the clock) is the one moment all three staleness checks count back from."""
    rt = current()
    now = now or utcnow()
    requeued = inbox.sweep(rt, now=now)
    stale = notify.pending_messages(rt, now - timedelta(seconds=rt.settings.sweep_stale_seconds))
    notify.dispatch(rt, stale)
    erasures = resume_unfinished(rt, older_than_seconds=rt.settings.sweep_stale_seconds, now=now)
    return {"inbox": len(requeued), "messages": len(stale), "erasures": len(erasures)}


def register(scheduler) -> None:
    scheduler.register(sweep_inbox, "default", interval=60, name="inbox sweeper")
    scheduler.register(sweep_stalled, "default", interval=300, name="stalled sessions sweeper")
    scheduler.register(apply_retention, "default", cron="41 3 * * *", name="daily retention")
    scheduler.register(daily_anchor, "default", cron="7 0 * * *", name="daily audit anchor")
    scheduler.register(send_upcoming_briefings, "default", interval=300, name="pre-session briefings")
    scheduler.register(send_upcoming_meet_briefings, "default", interval=300,
                       name="pre-session briefings (Google Meet)")
    for platform in PLATFORMS.values():  # each platform's own reconciliation and keepers
        for job in platform.schedules:
            when = {"interval": job.interval} if job.interval else {"cron": job.cron}
            scheduler.register(job.func, "default", name=job.name, **when)
