"""Google Meet end to end, against the local Google stand-in: a coach connects through Google's
OAuth consent from the dashboard, a recording's push arrives, the Drive file streams into the
vault, Meet's transcript entries become the transcript, the summary is made, the client gets
their email and page. Plus the subscription keeper with a moved clock, and a conference whose
recording never comes."""

import re
import time
import tracemalloc
from datetime import timedelta
from urllib.parse import urlparse

import pytest
import requests
from sqlmodel import select

from models import Asset, CoachingSession, GoogleConnection, Transcript, utcnow
from tests.googlestub import (CLIENT_EMAIL, CLIENT_USER, COACH_EMAIL, COACH_USER, CONFERENCE, PUBSUB_TOPIC,
                              RECORDING, TRANSCRIPT, GoogleStub, SeededBlob, make_push)
from tests.conftest import burst
from tests.portalhelpers import links_in, path_of

DRIVE_FILE = "1MeetRecordingDriveFileId0001"


@pytest.fixture
def google_stub():
    with GoogleStub() as stub:
        yield stub


@pytest.fixture
def hs(hs_factory, database_url, google_stub, smtp_sink, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the stand-in speaks plain http
    smtp_sink.clear()
    return hs_factory(database_url, smtp_url=smtp_sink.url, **google_stub.env(),
                      GOOGLE_CLIENT_ID=google_stub.client_id, GOOGLE_CLIENT_SECRET=google_stub.client_secret,
                      GOOGLE_OAUTH_AUTH_URL=google_stub.auth_url, GOOGLE_OAUTH_TOKEN_URL=google_stub.token_url,
                      GOOGLE_PUBSUB_TOPIC=PUBSUB_TOPIC, PUBLIC_BASE_URL="http://holdspace.test",
                      SUMMARY_ENGINE="offline", MEET_ARTIFACT_WAIT_SECONDS=1)


def sign_in(hs, coach_id):
    from portal.coach import login_link
    resp = hs.http.get(path_of(login_link(hs.rt, coach_id)))
    assert resp.status_code in (200, 302, 303)


def csrf(hs, path="/coach/google"):
    page = hs.http.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def connect_google(hs, google_stub):
    coach_id = hs.run("coach", "add", "--email", COACH_EMAIL, "--name", "Alex Morgan")
    hs.run("client", "add", "--coach-email", COACH_EMAIL, "--email", CLIENT_EMAIL, "--name", "Sam Rivera")
    hs.run("consent", "grant", "--client-email", CLIENT_EMAIL, "--method", "written")
    sign_in(hs, coach_id)
    resp = hs.http.post("/coach/google/connect", data={"csrf_token": csrf(hs)})
    assert resp.status_code == 303 and resp.location.startswith(google_stub.auth_url)
    consent = requests.get(resp.location, allow_redirects=False, timeout=10)  # Google's consent screen
    assert consent.status_code == 302
    back = urlparse(consent.headers["Location"])
    assert back.path == "/coach/google/callback"
    done = hs.http.get(f"{back.path}?{back.query}")
    assert done.status_code == 303 and "connected" in done.location
    with hs.db() as db:
        conn = db.exec(select(GoogleConnection)).one()
    return coach_id, conn


def meet_with_recording(google_stub, data, *, transcript=True):
    google_stub.add_conference(CONFERENCE)
    google_stub.add_participant(CONFERENCE, user=COACH_USER, display_name="Alex Morgan", participant_id="pcoach")
    google_stub.add_participant(CONFERENCE, user=CLIENT_USER, display_name="Sam Rivera", participant_id="pclient")
    google_stub.add_participant(CONFERENCE, display_name="Dial-in guest", kind="phone")
    google_stub.add_person(CLIENT_USER, [CLIENT_EMAIL])
    google_stub.add_person(COACH_USER, [COACH_EMAIL])
    google_stub.add_drive_file(DRIVE_FILE, data)
    google_stub.add_recording(RECORDING, drive_file=DRIVE_FILE)
    if transcript:
        google_stub.add_transcript(TRANSCRIPT, entries=[
            {"participant": "pcoach", "text": "What would you like to work on today?",
             "startTime": "2024-05-14T15:01:00Z", "endTime": "2024-05-14T15:01:04Z"},
            {"participant": "pclient", "text": "I will send the budget proposal to my manager by Friday.",
             "startTime": "2024-05-14T15:01:05Z", "endTime": "2024-05-14T15:01:10Z"},
            {"participant": "pcoach", "text": "For homework, please notice when you say yes too quickly.",
             "startTime": "2024-05-14T15:01:12Z", "endTime": "2024-05-14T15:01:18Z"}])


def push(hs, google_stub, conn, ce_type, data, **kw):
    body = make_push(ce_type, data, source=f"//workspaceevents.googleapis.com/{conn.subscription_name}", **kw)
    return hs.http.post("/webhooks/google", data=body, headers=google_stub.push_headers())


def test_connect_stores_only_a_sealed_token_and_subscribes(hs, google_stub):
    coach_id, conn = connect_google(hs, google_stub)
    assert conn.mode == "oauth" and conn.google_user_id == COACH_USER.split("/")[1]
    assert conn.refresh_token_sealed and "1//" not in conn.refresh_token_sealed
    from workers.platforms.meet import TOKEN_PURPOSE
    token = hs.rt.vault.unseal(conn.refresh_token_sealed, TOKEN_PURPOSE.format(coach_id=coach_id)).decode()
    assert token and token not in conn.refresh_token_sealed
    sub = google_stub.subscription(conn.subscription_name)
    assert sub and sub["targetResource"].endswith(COACH_USER)
    assert set(sub["eventTypes"]) >= {"google.workspace.meet.recording.v2.fileGenerated",
                                       "google.workspace.meet.transcript.v2.fileGenerated",
                                       "google.workspace.meet.conference.v2.ended"}
    assert conn.subscription_expires_at is not None
    # Disconnecting deletes the subscription and the token.
    resp = hs.http.post("/coach/google/disconnect", data={"csrf_token": csrf(hs)})
    assert resp.status_code == 303
    assert google_stub.subscription(conn.subscription_name) is None
    with hs.db() as db:
        assert db.exec(select(GoogleConnection)).all() == []


def test_push_to_stored_transcribed_summarised_emailed_and_shown(hs, google_stub, smtp_sink):
    coach_id, conn = connect_google(hs, google_stub)
    blob = SeededBlob(3 * 1024 * 1024 + 17, seed="meet-7")
    meet_with_recording(google_stub, blob)
    resp = push(hs, google_stub, conn, "google.workspace.meet.recording.v2.fileGenerated",
                {"recording": {"name": RECORDING}})
    assert resp.status_code == 204
    for _ in range(3):
        hs.drain()
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
        video = db.exec(select(Asset).where(Asset.kind == "video")).one()
        transcript = db.exec(select(Transcript)).one()
    assert session.platform == "meet" and session.platform_uuid == CONFERENCE
    assert session.state == "delivered", session.error
    assert video.size == blob.size and b"".join(hs.rt.vault.open(video.object_key)) == blob.read(0, blob.size)
    assert transcript.engine.startswith("platform")
    assert [s["speaker"] for s in transcript.segments] == ["Alex Morgan", "Sam Rivera", "Alex Morgan"]
    (mail,) = [m for m in smtp_sink.to(CLIENT_EMAIL) if "/s/" in str(m)]
    page = hs.http.get(path_of(next(u for u in links_in(mail) if "/s/" in u))).get_data(as_text=True)
    assert "budget proposal" in page
    # The transcript's own push, arriving after, changes nothing.
    resp = push(hs, google_stub, conn, "google.workspace.meet.transcript.v2.fileGenerated",
                {"transcript": {"name": TRANSCRIPT}})
    assert resp.status_code == 204
    hs.drain()
    with hs.db() as db:
        assert len(db.exec(select(Asset).where(Asset.kind == "transcript")).all()) == 1


def test_large_recording_streams_with_flat_memory(hs, google_stub):
    coach_id, conn = connect_google(hs, google_stub)
    blob = SeededBlob(300 * 1024 * 1024, seed="meet-300")
    meet_with_recording(google_stub, blob, transcript=False)
    google_stub.fail_drive(DRIVE_FILE, "drop", after_bytes=40 * 1024 * 1024)
    push(hs, google_stub, conn, "google.workspace.meet.recording.v2.fileGenerated",
         {"recording": {"name": RECORDING}})
    tracemalloc.start()
    burst([hs.rt.queue("ingest")], hs.rt.redis)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    with hs.db() as db:
        video = db.exec(select(Asset).where(Asset.kind == "video")).one()
    assert video.size == blob.size and video.sha256 == blob.sha256()
    assert peak < 100 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB for a 300 MiB recording"
    # The dropped connection was resumed from where it broke off, not restarted from zero.
    starts = [first for first, _last, _status in google_stub.drive_ranges(DRIVE_FILE)]
    assert starts.count(0) == 1 and max(starts) > 40 * 1024 * 1024
    assert google_stub.drive_bytes_served(DRIVE_FILE) < blob.size + 32 * 1024 * 1024


def test_unknown_participants_leave_the_session_unmatched(hs, google_stub, smtp_sink):
    coach_id, conn = connect_google(hs, google_stub)
    meet_with_recording(google_stub, b"\x00\x00\x00\x18ftypmp42" + b"x" * 5000)
    google_stub.add_person(CLIENT_USER, [], hidden=True)
    push(hs, google_stub, conn, "google.workspace.meet.recording.v2.fileGenerated",
         {"recording": {"name": RECORDING}})
    hs.drain()
    with hs.db() as db:
        assert db.exec(select(CoachingSession)).one().state == "unmatched"
        assert db.exec(select(Asset)).all() == []
    assert any("needs a client" in m["Subject"] for m in smtp_sink.to(COACH_EMAIL))


def test_conference_ended_without_a_recording_tells_the_coach(hs, google_stub, smtp_sink):
    coach_id, conn = connect_google(hs, google_stub)
    google_stub.add_conference(CONFERENCE)
    push(hs, google_stub, conn, "google.workspace.meet.conference.v2.ended", {"conferenceRecord": {"name": CONFERENCE}})
    hs.drain()
    hs.drain(advance=2)
    assert any("never arrived" in m["Subject"] for m in smtp_sink.to(COACH_EMAIL))


def test_subscription_keeper_with_a_moved_clock(hs, google_stub, smtp_sink):
    from workers.platforms.meet import renew_subscriptions
    coach_id, conn = connect_google(hs, google_stub)
    first_expiry = conn.subscription_expires_at
    assert renew_subscriptions(now=utcnow()) == 0  # days from expiry: nothing to do
    assert renew_subscriptions(now=first_expiry - timedelta(days=1)) == 1  # within two days: renewed
    with hs.db() as db:
        renewed = db.exec(select(GoogleConnection)).one()
    assert renewed.subscription_name == conn.subscription_name
    assert any(r.method == "PATCH" for r in google_stub.requests_to("/v1/subscriptions"))
    # Past expiry Google deletes it: the keeper creates a new one.
    google_stub.expire_subscription(renewed.subscription_name)
    assert renew_subscriptions(now=renewed.subscription_expires_at + timedelta(hours=1)) == 1
    with hs.db() as db:
        recreated = db.exec(select(GoogleConnection)).one()
    assert google_stub.subscription(recreated.subscription_name) is not None
    # Google suspends it: the coach is told, once.
    google_stub.suspend_subscription(recreated.subscription_name)
    for _ in range(2):
        push(hs, google_stub, recreated, "google.workspace.events.subscription.v1.suspended",
             {"subscription": {"name": recreated.subscription_name}}, ce_id=f"susp-{time.time()}")
        hs.drain()
    with hs.db() as db:
        assert db.exec(select(GoogleConnection)).one().status == "suspended"
    assert len([m for m in smtp_sink.to(COACH_EMAIL) if "Google Meet needs" in m["Subject"]]) == 1
