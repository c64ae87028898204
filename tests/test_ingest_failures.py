"""Downloads that go wrong: retried with backoff, reported to the coach, never stored as a
recording; and hosts outside the allow-list refused outright."""

import boto3
import pytest
from sqlmodel import select

from tests.zoomhelpers import STORED_OR_LATER
from models import Asset, CoachingSession
from tests.zoomhelpers import COACH_EMAIL, coach_and_client, post_zoom
from tests.zoomstub import load_fixture, register_fixture_files


@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink, s3_server, s3_bucket):
    smtp_sink.clear()
    return hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url,
                      storage_url=f"s3://{s3_bucket}/vault", s3_endpoint_url=s3_server.url)


def run_fixture(hs, zoom_stub, mode=None, times=None, name="recording_completed_audio_only"):
    coach_and_client(hs)
    payload, body = load_fixture(name, zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload)
    (audio,) = [f for f in payload["payload"]["object"]["recording_files"] if f["file_type"] == "M4A"]
    if mode:
        zoom_stub.set_file_mode(audio["id"], mode, times=times)
    assert post_zoom(hs.http, body).status_code == 200
    hs.drain()
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
        stored = list(db.exec(select(Asset).where(Asset.kind != "transcript_vtt")))
    return session, stored, audio


def open_uploads(s3_server, bucket):
    return boto3.client("s3", endpoint_url=s3_server.url).list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def vault_objects(s3_server, bucket):
    return boto3.client("s3", endpoint_url=s3_server.url).list_objects_v2(Bucket=bucket).get("Contents", [])


@pytest.mark.parametrize("mode", ["html", "html_octet", "drop", "short", "429"])
def test_a_passing_failure_is_retried_then_stored(hs, zoom_stub, mode, s3_server, s3_bucket):
    session, stored, audio = run_fixture(hs, zoom_stub, mode, times=1)
    assert session.state in STORED_OR_LATER, session.error
    (asset,) = stored
    assert b"".join(hs.rt.vault.open(asset.object_key)) == zoom_stub.file_data(audio["id"])
    assert open_uploads(s3_server, s3_bucket) == []


@pytest.mark.parametrize("mode", ["html", "html_octet", "drop", "short"])
def test_a_lasting_failure_fails_the_session_and_tells_the_coach(hs, zoom_stub, smtp_sink, mode,
                                                                  s3_server, s3_bucket):
    session, stored, _ = run_fixture(hs, zoom_stub, mode)
    assert session.state == "failed" and "download" in session.error
    assert stored == []
    assert hs.rt.vault.list_client_objects(session.client_id) == []
    assert open_uploads(s3_server, s3_bucket) == []
    assert [o["Key"] for o in vault_objects(s3_server, s3_bucket) if "/objects/" in o["Key"]] == []
    (mail,) = smtp_sink.to(COACH_EMAIL)
    assert "could not be downloaded" in mail["Subject"]


def test_redirect_off_the_allow_list_is_refused_at_once(hs, zoom_stub):
    session, stored, audio = run_fixture(hs, zoom_stub, "redirect_offlist")
    assert session.state == "failed" and stored == []
    assert zoom_stub.requests_to(f"/files/{audio['id']}") == []  # the redirect was never followed


def test_download_url_off_the_allow_list_is_refused(hs, zoom_stub):
    coach_and_client(hs)
    payload, body = load_fixture("recording_completed_audio_only", zoom_stub.base_url.replace("127.0.0.1", "localhost"))
    register_fixture_files(zoom_stub, payload)
    post_zoom(hs.http, body)
    hs.drain()
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
        assert session.state == "failed" and not list(db.exec(select(Asset).where(Asset.kind != "transcript_vtt")))
    assert zoom_stub.requests_to("/rec/download/") == []
