"""Each Zoom fixture through the real endpoint and a real RQ worker: the session's state, what
the vault holds (decrypting to the source bytes), and the inbox and audit rows."""

import json

import pytest
from sqlmodel import select

from models import Asset, AuditEvent, CoachingSession, InboxEvent
from tests.portalhelpers import body_of
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, STORED_OR_LATER, coach_and_client, post_zoom
from tests.zoomstub import load_fixture, register_fixture_files


@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    return hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url)


def deliver(hs, zoom_stub, name, register=True):
    payload, body = load_fixture(name, zoom_stub.base_url)
    if register:
        register_fixture_files(zoom_stub, payload)
    resp = post_zoom(hs.http, body)
    assert resp.status_code == 200, resp.get_json()
    hs.drain()
    return payload


def sessions(hs):
    with hs.db() as db:
        return list(db.exec(select(CoachingSession)))


def assets(hs):
    with hs.db() as db:
        return list(db.exec(select(Asset).where(Asset.kind != "transcript_vtt").order_by(Asset.kind)))


def actions(hs):
    with hs.db() as db:
        return [e.action for e in db.exec(select(AuditEvent).order_by(AuditEvent.id))]


def inbox(hs):
    with hs.db() as db:
        return list(db.exec(select(InboxEvent).order_by(InboxEvent.id)))


def vault_bytes(hs, key):
    return b"".join(hs.rt.vault.open(key))


def files_by_id(payload):
    obj = payload["payload"]["object"]
    return {f["id"]: f for f in obj.get("recording_files", []) + obj.get("participant_audio_files", [])
            if f.get("id")}


def assert_stored_exactly(hs, zoom_stub, payload, kinds):
    """The session is stored, and each kept file decrypts to what Zoom served."""
    (session,) = sessions(hs)
    assert session.state in STORED_OR_LATER, session.error
    stored = assets(hs)
    assert sorted(a.kind for a in stored) == sorted(kinds)
    files = files_by_id(payload)
    for asset in stored:
        f = files[asset.platform_file_id]
        assert vault_bytes(hs, asset.object_key) == zoom_stub.file_data(f["id"])
        assert asset.size == f["file_size"]
    return session


def test_recording_completed_is_stored_encrypted(hs_factory, both_databases, zoom_stub, smtp_sink):
    hs = hs_factory(both_databases, zoom_stub=zoom_stub, smtp_url=smtp_sink.url)
    coach_id, client_id = coach_and_client(hs)
    payload = deliver(hs, zoom_stub, "recording_completed")
    session = assert_stored_exactly(hs, zoom_stub, payload, ["video", "audio", "transcript", "chat"])
    assert session.client_id == client_id and session.coach_id == coach_id
    assert session.topic == payload["payload"]["object"]["topic"]
    (row,) = inbox(hs)
    assert row.status == "done" and row.session_id == session.id
    assert row.payload["download_token"] is None  # the credential is not kept after use
    acts = actions(hs)
    for expected in ("session.received", "session.client_matched", "asset.stored", "session.stored"):
        assert expected in acts
    # Each stored object is audited once: the four downloads, and the transcript made from them.
    with hs.db() as db:
        assert acts.count("asset.stored") == len(db.exec(select(Asset)).all()) == 5
    assert hs.run("audit", "verify").startswith("audit chain intact")
    # Nothing readable at rest: no 32-byte run of any source file appears in the vault.
    media = zoom_stub.file_data(assets(hs)[0].platform_file_id)
    for path in (hs.rt.settings.var_dir.parent / "vault").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert all(media[i:i + 32] not in data for i in range(0, len(media) - 32, 4096))


def test_audio_only_recording(hs, zoom_stub):
    coach_and_client(hs)
    payload = deliver(hs, zoom_stub, "recording_completed_audio_only")
    assert_stored_exactly(hs, zoom_stub, payload, ["audio"])


def test_files_still_processing_are_not_downloaded(hs, zoom_stub):
    coach_and_client(hs)
    payload = deliver(hs, zoom_stub, "recording_completed_processing")
    assert_stored_exactly(hs, zoom_stub, payload, ["audio"])
    processing = [f["id"] for f in files_by_id(payload).values() if f["status"] != "completed"]
    assert processing and all(zoom_stub.file_downloads(i) == 0 for i in processing)


def test_uuid_with_double_slash(hs, zoom_stub):
    coach_and_client(hs)
    payload = deliver(hs, zoom_stub, "recording_completed_double_slash_uuid")
    session = assert_stored_exactly(hs, zoom_stub, payload, [a.kind for a in assets(hs)] or ["video"])
    assert session.platform_uuid == payload["payload"]["object"]["uuid"]


def test_expired_download_token_falls_back_to_oauth(hs, zoom_stub):
    coach_and_client(hs)
    payload = deliver(hs, zoom_stub, "recording_completed_expired_token")
    assert sessions(hs)[0].state == "stored"
    assert payload["download_token"] == "expired-download-token"
    downloads = zoom_stub.requests_to("/files/")
    assert downloads and all(r.authorization.startswith("Bearer access-") for r in downloads)
    assert_stored_exactly(hs, zoom_stub, payload, [a.kind for a in assets(hs)])


def test_duplicate_with_another_token_changes_nothing(hs, zoom_stub):
    coach_and_client(hs)
    payload = deliver(hs, zoom_stub, "recording_completed")
    before = [(a.object_key, a.sha256) for a in assets(hs)]
    deliver(hs, zoom_stub, "recording_completed_duplicate_other_token", register=False)
    assert [(a.object_key, a.sha256) for a in assets(hs)] == before
    assert len(sessions(hs)) == 1 and len(inbox(hs)) == 1
    assert all(zoom_stub.file_downloads(i) == 1 for i in files_by_id(payload)
               if files_by_id(payload)[i]["file_type"] in ("MP4", "M4A", "TRANSCRIPT", "CHAT"))


def test_transcript_completed_adds_the_transcript_later(hs, zoom_stub):
    coach_and_client(hs)
    deliver(hs, zoom_stub, "recording_completed_audio_only")
    payload = deliver(hs, zoom_stub, "recording_transcript_completed")
    kinds = sorted(a.kind for a in assets(hs))
    assert "transcript" in kinds
    (transcript,) = [a for a in assets(hs) if a.kind == "transcript"]
    f = files_by_id(payload)[transcript.platform_file_id]
    assert vault_bytes(hs, transcript.object_key) == zoom_stub.file_data(f["id"])


def test_participant_audio_files_are_kept(hs, zoom_stub):
    coach_and_client(hs)
    payload = deliver(hs, zoom_stub, "recording_completed_participant_audio")
    kinds = [a.kind for a in assets(hs)]
    assert kinds.count("participant_audio") == len(payload["payload"]["object"]["participant_audio_files"])


def test_unhandled_event_is_acknowledged(hs, zoom_stub):
    coach_and_client(hs)
    payload, body = load_fixture("meeting_started", zoom_stub.base_url)
    resp = post_zoom(hs.http, body)
    assert resp.status_code == 200 and resp.get_json()["handled"] is False
    assert inbox(hs) == [] and sessions(hs) == []


def test_no_consent_refuses_and_stores_nothing(hs, zoom_stub, smtp_sink):
    coach_and_client(hs, consent=None, trash=True)
    payload = deliver(hs, zoom_stub, "recording_completed")
    (session,) = sessions(hs)
    assert session.state == "refused_no_consent"
    assert assets(hs) == []
    assert all(zoom_stub.file_downloads(i) == 0 for i in files_by_id(payload))
    assert hs.rt.vault.list_client_objects(session.client_id) == []
    assert payload["payload"]["object"]["uuid"] in zoom_stub.trashed
    (mail,) = smtp_sink.to(COACH_EMAIL)
    assert "no consent" in mail["Subject"].lower()
    assert inbox(hs)[0].status == "refused"
    # A repeat delivery does not tell the coach twice.
    deliver(hs, zoom_stub, "recording_completed_duplicate_other_token", register=False)
    assert len(smtp_sink.to(COACH_EMAIL)) == 1


def test_withdrawn_consent_stops_ingestion(hs, zoom_stub):
    coach_and_client(hs)
    hs.run("consent", "withdraw", "--client-email", CLIENT_EMAIL)
    deliver(hs, zoom_stub, "recording_completed")
    assert sessions(hs)[0].state == "refused_no_consent" and assets(hs) == []


def test_consent_without_transcribe_keeps_media_not_transcript(hs, zoom_stub):
    coach_and_client(hs, scopes="record,share_with_client")
    payload = deliver(hs, zoom_stub, "recording_completed")
    assert_stored_exactly(hs, zoom_stub, payload, ["video", "audio", "chat"])


def test_audio_only_policy_skips_video(hs, zoom_stub):
    coach_and_client(hs, media_policy="audio_only")
    payload = deliver(hs, zoom_stub, "recording_completed")
    assert_stored_exactly(hs, zoom_stub, payload, ["audio", "transcript", "chat"])


def test_unmatched_client_downloads_nothing_and_tells_the_coach(hs, zoom_stub, smtp_sink):
    hs.run("coach", "add", "--email", COACH_EMAIL, "--name", "Casey", "--zoom-user-id", "z8yCxjabcdEFGHfp8uQ")
    hs.run("client", "add", "--coach-email", COACH_EMAIL, "--email", "someone.else@example.com", "--name", "S")
    payload = deliver(hs, zoom_stub, "recording_completed")
    assert sessions(hs)[0].state == "unmatched"
    assert all(zoom_stub.file_downloads(i) == 0 for i in files_by_id(payload))
    (mail,) = smtp_sink.to(COACH_EMAIL)
    assert "needs a client" in mail["Subject"]


def test_meeting_mapping_matches_when_zoom_hides_emails(hs, zoom_stub):
    from models import MeetingMapping
    coach_id, client_id = coach_and_client(hs)
    payload, body = load_fixture("recording_completed", zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload)
    meeting_id = str(payload["payload"]["object"]["id"])
    meeting = zoom_stub.meeting(payload["payload"]["object"]["uuid"])
    meeting.invitees, meeting.registrants, meeting.participants = [], [], []
    with hs.db() as db:
        db.add(MeetingMapping(coach_id=coach_id, client_id=client_id, meeting_id=meeting_id))
        db.commit()
    post_zoom(hs.http, body)
    hs.drain()
    assert sessions(hs)[0].client_id == client_id and sessions(hs)[0].state in STORED_OR_LATER


def test_unknown_host_is_ignored_and_audited(hs, zoom_stub):
    payload = deliver(hs, zoom_stub, "recording_completed")
    assert sessions(hs) == [] and inbox(hs)[0].status == "ignored"
    assert "inbox.ignored" in actions(hs)
    assert all(zoom_stub.file_downloads(i) == 0 for i in files_by_id(payload))


@pytest.mark.parametrize("consent, outcome", [("written", "done"), (None, "refused")])
def test_the_inbox_keeps_no_secret_whatever_the_outcome(hs, zoom_stub, consent, outcome):
    # Zoom documents passcode + share_url as enough to play a recording; the download token
    # fetches it. None of them may stay in the database once the event is processed.
    coach_and_client(hs, consent=consent)
    payload, _ = load_fixture("recording_completed", zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload)
    obj = payload["payload"]["object"]
    obj.update(password="Xy7!pass", recording_play_passcode="pLaYpAsScOdE123")
    obj["recording_files"][0]["share_url"] = "https://example.zoom.us/rec/share/file-only"
    assert post_zoom(hs.http, payload).status_code == 200
    with hs.db() as db:
        (received,) = db.exec(select(InboxEvent)).all()
    assert received.payload["download_token"]  # kept only until the event is processed
    hs.drain()
    (row,) = inbox(hs)
    assert row.status == outcome
    stored = json.dumps(row.payload)
    for secret in ("Xy7!pass", "pLaYpAsScOdE123", "/rec/share/", payload["download_token"]):
        assert secret not in stored
    assert row.payload["payload"]["object"]["uuid"] == obj["uuid"]  # the rest is kept


def test_files_without_a_status_are_judged_by_what_they_are(hs, zoom_stub):
    # Some real deliveries leave `status` out of every file; they are finished files all the same.
    coach_and_client(hs)
    payload = deliver(hs, zoom_stub, "recording_completed_no_status")
    assert not any("status" in f for f in payload["payload"]["object"]["recording_files"])
    assert_stored_exactly(hs, zoom_stub, payload, ["video", "audio", "transcript", "chat"])


def test_a_transcript_the_client_did_not_consent_to_leaves_nothing_to_keep(hs, zoom_stub, smtp_sink):
    # meeting.ended, then recording.transcript_completed, for a client who consented to being
    # recorded but not transcribed: nothing may be kept, nothing delivered, and the coach told.
    coach_and_client(hs, scopes="record")
    transcript, _ = load_fixture("recording_transcript_completed", zoom_stub.base_url)
    ended, _ = load_fixture("meeting_ended", zoom_stub.base_url)
    ended["payload"]["object"]["uuid"] = transcript["payload"]["object"]["uuid"]
    assert post_zoom(hs.http, ended).status_code == 200
    hs.drain()
    register_fixture_files(zoom_stub, transcript)
    assert post_zoom(hs.http, transcript).status_code == 200
    hs.drain()
    (session,) = sessions(hs)
    assert session.state == "nothing_to_keep"
    assert "Zoom sent transcript" in session.error
    assert assets(hs) == [] and zoom_stub.requests_to("/files/") == []
    assert smtp_sink.to(CLIENT_EMAIL) == []
    (told,) = [m for m in smtp_sink.to(COACH_EMAIL) if "nothing to keep" in m["Subject"]]
    assert "Zoom sent transcript" in body_of(told)
    assert "session.nothing_to_keep" in actions(hs)
