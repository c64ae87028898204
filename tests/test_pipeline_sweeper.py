"""Nothing stays stuck: a session whose next step was lost (Redis emptied) is queued again by
the sweeper and delivered exactly once; one that keeps stalling fails, and the coach is told."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from models import Asset, CoachingSession, utcnow
from tests.conftest import burst
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, audio_recording, coach_and_client, post_zoom
from workers import coaching
from workers.coach_sign_in import login_link
from workers.pipeline import sweep_stalled


def ingest_only(hs) -> None:
    """Run the ingest queue alone: sessions are stored and their next steps queued, not run."""
    burst([hs.rt.queue("ingest")], hs.rt.redis)


def states(hs) -> dict[str, str]:
    with hs.db() as db:
        return {s.id: s.state for s in db.exec(select(CoachingSession))}


def session_emails(smtp_sink) -> list:
    return [m for m in smtp_sink.to(CLIENT_EMAIL) if "session" in m["Subject"].lower()]


def later(seconds: float):
    return utcnow() + timedelta(seconds=seconds)


def test_redis_emptied_mid_pipeline_every_session_is_delivered_once(hs_factory, database_url, zoom_stub,
                                                                     smtp_sink):
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, SESSION_STALL_SECONDS=600)
    coach_and_client(hs, scopes="record,share_with_client")  # no transcription: 40 stay quick
    for i in range(40):
        payload = audio_recording(zoom_stub, b"\x00\x00\x00\x18ftypM4A " + bytes([i]) * 2000,
                                  uuid=f"sweepUUID{i:04d}AAAAAAAAAA==", file_id=f"audio-{i}",
                                  meeting_id=9000 + i)
        assert post_zoom(hs.http, payload).status_code == 200
    ingest_only(hs)
    assert set(states(hs).values()) == {"stored"}
    hs.rt.redis.flushall()  # Redis restarted empty: every queued next step is gone
    hs.drain()
    assert set(states(hs).values()) == {"stored"} and session_emails(smtp_sink) == []

    assert sweep_stalled(now=later(60)) == {"requeued": 0, "failed": 0}  # not stalled yet
    assert sweep_stalled(now=later(601)) == {"requeued": 40, "failed": 0}
    assert sweep_stalled(now=later(601)) == {"requeued": 0, "failed": 0}  # queued: left alone
    hs.drain()
    assert set(states(hs).values()) == {"delivered"}
    assert len(session_emails(smtp_sink)) == 40  # one each
    assert sweep_stalled(now=later(3600)) == {"requeued": 0, "failed": 0}
    hs.drain()
    assert len(session_emails(smtp_sink)) == 40


def test_a_session_that_keeps_stalling_fails_and_the_coach_is_told_once(hs_factory, database_url, zoom_stub,
                                                                        smtp_sink):
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, SESSION_STALL_SECONDS=600,
                    SESSION_STALL_TRIES=2)
    coach_id, _ = coach_and_client(hs, scopes="record")
    assert post_zoom(hs.http, audio_recording(zoom_stub, b"\x00" * 3000)).status_code == 200
    ingest_only(hs)
    for expected in ({"requeued": 1, "failed": 0}, {"requeued": 1, "failed": 0}, {"requeued": 0, "failed": 1}):
        hs.rt.redis.flushall()  # the step is lost every time
        assert sweep_stalled(now=later(601)) == expected
    ((session_id, state),) = states(hs).items()
    assert state == "failed"
    with hs.db() as db:
        assert "stalled 2 times" in db.get(CoachingSession, session_id).error
    hs.drain()  # the coach's message goes out through its own job
    told = [m for m in smtp_sink.to(COACH_EMAIL) if "could not be processed" in m["Subject"]]
    assert len(told) == 1
    assert sweep_stalled(now=later(7200)) == {"requeued": 0, "failed": 0}

    # The coach's retry resumes it, and it is delivered.
    assert coaching.retry(hs.rt, coach_id, session_id, actor="coach") == "Trying again."
    hs.drain()
    assert states(hs)[session_id] == "delivered"


def test_a_stalled_session_can_be_retried_before_the_sweeper_comes(hs_factory, database_url, zoom_stub,
                                                                   smtp_sink):
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url)
    coach_id, _ = coach_and_client(hs, scopes="record")
    assert post_zoom(hs.http, audio_recording(zoom_stub, b"\x01" * 3000)).status_code == 200
    ingest_only(hs)
    hs.rt.redis.flushall()
    ((session_id, state),) = states(hs).items()
    assert state == "stored"
    coaching.retry(hs.rt, coach_id, session_id, actor="coach")
    hs.drain()
    assert states(hs)[session_id] == "delivered" and len(session_emails(smtp_sink)) == 1


def test_a_download_that_ended_in_an_unexpected_error_fails_the_session(hs_factory, database_url, zoom_stub,
                                                                         smtp_sink, s3_server):
    # Storage that is not there (a bucket deleted under us) is no download error the ingest
    # step knows: its job fails for good, and with it the session, at once and with the reason.
    import boto3
    smtp_sink.clear()
    s3 = boto3.client("s3", endpoint_url=s3_server.url)
    s3.create_bucket(Bucket="soon-gone-holdspace")
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, SESSION_STALL_SECONDS=600,
                    storage_url="s3://soon-gone-holdspace/v", s3_endpoint_url=s3_server.url)
    coach_id, _ = coach_and_client(hs, scopes="record")
    # The keys this process already holds (the client's, the coach's, the inbox's, which any
    # webhook accepted earlier made) outlive the bucket.
    hs.rt.vault.owner_key(f"coach.{coach_id}", create=True)
    hs.rt.vault.owner_key("service.inbox", create=True)
    for version in s3.list_object_versions(Bucket="soon-gone-holdspace").get("Versions", []):
        s3.delete_object(Bucket="soon-gone-holdspace", Key=version["Key"], VersionId=version["VersionId"])
    s3.delete_bucket(Bucket="soon-gone-holdspace")
    assert post_zoom(hs.http, audio_recording(zoom_stub, b"\x02" * 3000)).status_code == 200
    for _ in range(5):  # the ingest job's own retries, their clock moved on
        hs.drain(advance=3600)
    ((session_id, state),) = states(hs).items()
    with hs.db() as db:
        session = db.get(CoachingSession, session_id)
        assert not db.exec(select(Asset).where(Asset.session_id == session_id)).all()
    assert session.state == "failed" and "ingest failed: VaultError" in session.error
    assert "NoSuchBucket" in session.error
    assert sweep_stalled(now=later(601)) == {"requeued": 0, "failed": 0}
    assert sweep_stalled(now=later(7200)) == {"requeued": 0, "failed": 0}
    hs.drain()
    told = [m for m in smtp_sink.to(COACH_EMAIL) if "could not be processed" in m["Subject"]]
    assert len(told) == 1


def test_a_stalled_session_needs_attention_on_the_dashboard_and_in_slack(hs_factory, database_url, zoom_stub,
                                                                         smtp_sink):
    from tests.test_slack import SECRET, reply, slash, with_slack_coach
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, SESSION_STALL_SECONDS=0,
                    SLACK_SIGNING_SECRET=SECRET)
    coach_id, _ = with_slack_coach(hs, scopes="record")
    assert post_zoom(hs.http, audio_recording(zoom_stub, b"\x03" * 3000, uuid="attentionUUID0000000==")).status_code == 200
    ingest_only(hs)
    ((session_id, state),) = states(hs).items()
    assert state == "stored"
    # While its step is queued, it is only working: nothing needs the coach, and the dashboard
    # says what comes next.
    assert coaching.needs_attention(hs.rt, coach_id) == []
    browser = hs.app.test_client()
    browser.get("/" + login_link(hs.rt, coach_id).split("/", 3)[3])
    page = browser.get("/coach").get_data(as_text=True)
    assert "Needs attention" not in page
    assert f'id="working-{session_id}"' in page and "stored, encrypted; the transcript comes next" in page

    hs.rt.redis.flushall()  # the queued step is lost
    (attention,) = coaching.needs_attention(hs.rt, coach_id)
    assert attention.session.id == session_id and "stalled while stored" in attention.reason
    browser.get("/" + login_link(hs.rt, coach_id).split("/", 3)[3])  # the flush ended the sign-in too
    page = browser.get("/coach").get_data(as_text=True)
    assert "Needs attention" in page and f'id="retry-{session_id}"' in page and "stalled while stored" in page
    assert 'id="retry"' in browser.get(f"/coach/sessions/{session_id}").get_data(as_text=True)

    status = reply(slash(hs, "status"))
    assert session_id in status and f"/holdspace retry {session_id}" in status
    assert reply(slash(hs, f"retry {session_id}")) == "Trying again."
    hs.drain()
    assert states(hs)[session_id] == "delivered" and len(session_emails(smtp_sink)) == 1
    assert coaching.needs_attention(hs.rt, coach_id) == []
