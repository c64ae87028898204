"""The scheduler's jobs: the daily sweep finds recordings no webhook announced, through the
same inbox and dedupe; and the cron scheduler registers what the Procfile promises."""

from datetime import datetime, timezone

from sqlmodel import select

from tests.zoomhelpers import STORED_OR_LATER
from models import Asset, CoachingSession, InboxEvent
from tests.zoomhelpers import coach_and_client, post_zoom
from tests.zoomstub import load_fixture, register_fixture_files
from workers.platforms import zoom


def test_daily_sweep_ingests_unannounced_recordings_once(hs_factory, database_url, zoom_stub):
    hs = hs_factory(database_url, zoom_stub=zoom_stub)
    coach_and_client(hs)
    payload, body = load_fixture("recording_completed_audio_only", zoom_stub.base_url)
    meeting = register_fixture_files(zoom_stub, payload)
    meeting.start_time = "2026-11-20T10:00:00Z"
    swept_on = datetime(2026, 11, 21, 4, 17, tzinfo=timezone.utc)  # the sweep's window holds it
    found = zoom.sweep_recordings(now=swept_on)
    assert found == 1
    hs.drain()
    assert zoom.sweep_recordings(now=swept_on) == 0  # the second sweep finds nothing new
    assert post_zoom(hs.http, body).status_code == 200  # nor does the late webhook change anything
    hs.drain()
    with hs.db() as db:
        (session,) = db.exec(select(CoachingSession)).all()
        assert session.state in STORED_OR_LATER
        assert len(db.exec(select(Asset).where(Asset.kind != "transcript_vtt")).all()) == 1
        sources = [r.source for r in db.exec(select(InboxEvent).order_by(InboxEvent.id))]
    assert sources[0] == "sweep"


def test_cron_registration(hs_factory, database_url):
    from rq.cron import CronScheduler
    from workers.cron import register, sweep_inbox
    hs = hs_factory(database_url)
    sched = CronScheduler(connection=hs.rt.redis)
    register(sched)
    funcs = {job.func for job in sched.get_jobs()}
    assert sweep_inbox in funcs and zoom.sweep_recordings in funcs
    assert sweep_inbox() == {"inbox": 0, "messages": 0, "erasures": 0}
