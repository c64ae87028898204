"""At-least-once in, exactly-once effect: bursts of duplicates, Redis lost mid-burst, a worker
killed mid-download, and a recording.completed that never comes."""

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import boto3
from sqlmodel import func, select

from tests.zoomhelpers import STORED_OR_LATER
from models import Asset, CoachingSession, InboxEvent
from tests.services import RedisServer
from tests.zoomhelpers import CLIENT_EMAIL, coach_and_client, post_zoom
from tests.zoomstub import ZoomStub, load_fixture, media_bytes, register_fixture_files
from workers import inbox

ROOT = Path(__file__).resolve().parent.parent


def add_recording(stub: ZoomStub, n: int, size: int = 20_000) -> dict:
    """Register one meeting with an MP4 and an M4A on the stub; return its webhook payload."""
    uuid = f"burst{n:03d}Qx7/Zz=="
    files = []
    for ftype, ctype in (("MP4", "video/mp4"), ("M4A", "audio/mp4")):
        fid = f"file-{n}-{ftype}"
        stub.add_file(fid, media_bytes(fid, size), ctype)
        files.append({"id": fid, "meeting_id": uuid, "recording_start": "2026-11-02T10:00:05Z",
                      "recording_end": "2026-11-02T10:50:00Z", "file_type": ftype,
                      "file_extension": ftype, "file_size": size,
                      "download_url": stub.download_url_for(fid), "status": "completed",
                      "recording_type": "audio_only" if ftype == "M4A" else "shared_screen_with_speaker_view"})
    stub.add_meeting(90000 + n, uuid, topic=f"Session {n}", invitees=[CLIENT_EMAIL], files=files)
    return {"event": "recording.completed", "event_ts": 1762077000000 + n,
            "download_token": stub.issue_download_token(),
            "payload": {"account_id": stub.account_id, "object": stub.recordings_object(uuid)}}


def deliveries(stub, payloads, copies=4, seed=7):
    """Each payload `copies` times, some byte-different (a fresh download token), shuffled."""
    out = []
    for p in payloads:
        for c in range(copies):
            out.append(p if c % 2 == 0 else {**p, "download_token": stub.issue_download_token(),
                                              "event_ts": p["event_ts"] + c})
    random.Random(seed).shuffle(out)
    return out


def counts(hs):
    with hs.db() as db:
        sessions = list(db.exec(select(CoachingSession)))
        n_assets = db.exec(select(func.count()).select_from(Asset).where(Asset.kind != "transcript_vtt")).one()
        n_keys = db.exec(select(func.count(func.distinct(Asset.object_key)))).one()
    return sessions, n_assets, n_keys


def test_burst_of_duplicates_makes_exactly_one_session_each(hs_factory, both_databases, zoom_stub):
    hs = hs_factory(both_databases, zoom_stub=zoom_stub)
    coach_and_client(hs)
    payloads = [add_recording(zoom_stub, n) for n in range(50)]
    sent = deliveries(zoom_stub, payloads)
    assert len(sent) == 200
    answers = [post_zoom(hs.http, p).status_code for p in sent]
    assert set(answers) == {200}
    hs.drain()
    sessions, n_assets, n_keys = counts(hs)
    assert len(sessions) == 50 and {s.state for s in sessions} <= set(STORED_OR_LATER)
    assert n_assets == n_keys == 100
    assert all(zoom_stub.file_downloads(f"file-{n}-{t}") == 1 for n in range(50) for t in ("MP4", "M4A"))
    with hs.db() as db:
        assert db.exec(select(func.count()).select_from(InboxEvent)).one() == 50


def test_redis_lost_mid_burst_then_swept(hs_factory, database_url, zoom_stub):
    redis = RedisServer()
    redis.start()
    try:
        hs = hs_factory(database_url, zoom_stub=zoom_stub, REDIS_URL=redis.url)
        coach_and_client(hs)
        payloads = [add_recording(zoom_stub, n) for n in range(20)]
        sent = deliveries(zoom_stub, payloads, copies=2)
        half = len(sent) // 2
        codes = [post_zoom(hs.http, p).status_code for p in sent[:half]]
        redis.stop()  # and with it every queued job: it kept nothing on disk
        started = time.monotonic()
        codes += [post_zoom(hs.http, p).status_code for p in sent[half:]]
        assert set(codes) == {200}
        assert (time.monotonic() - started) / (len(sent) - half) < 1.5  # each answered quickly
        redis.start()
        requeued = inbox.sweep(hs.rt)
        assert len(requeued) == 20
        hs.drain()
        sessions, n_assets, _ = counts(hs)
        assert len(sessions) == 20 and {s.state for s in sessions} <= set(STORED_OR_LATER)
        assert n_assets == 40
        assert inbox.sweep(hs.rt) == []  # nothing left to do
    finally:
        redis.close()


def test_worker_killed_mid_download_resumes_without_duplicates(hs_factory, database_url,
                                                               s3_server, s3_bucket, machine_now):
    stub = ZoomStub(slow_delay=0.05, slow_chunk=256 * 1024)
    stub.start()
    try:
        hs = hs_factory(database_url, zoom_stub=stub, storage_url=f"s3://{s3_bucket}/v",
                        s3_endpoint_url=s3_server.url)
        coach_and_client(hs)
        payload = add_recording(stub, 1, size=24 * 1024 * 1024)  # several multipart parts
        stub.set_file_mode("file-1-MP4", "slow")
        assert post_zoom(hs.http, payload).status_code == 200

        env = {**os.environ, **hs.env, "PYTHONUNBUFFERED": "1"}
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s3 = boto3.client("s3", endpoint_url=s3_server.url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads"):
            time.sleep(0.1)
        assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads"), "the upload never started"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)

        stub.set_file_mode("file-1-MP4", "ok")
        # RQ notices a dead worker's job once its heartbeat lapses; move the sweeper's clock there.
        # Then RQ retries the job after its retry interval; move the queue's clock there too.
        # The heartbeat was the worker's, a process of its own, so count from its clock.
        inbox.sweep(hs.rt, now=machine_now() + timedelta(minutes=5))
        hs.drain(advance=60)

        (session,) = counts(hs)[0]
        assert session.state in STORED_OR_LATER, session.error
        with hs.db() as db:
            stored = list(db.exec(select(Asset).where(Asset.kind != "transcript_vtt")))
        assert sorted(a.kind for a in stored) == ["audio", "video"]
        assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
        video = next(a for a in stored if a.kind == "video")
        assert b"".join(hs.rt.vault.open(video.object_key)) == stub.file_data("file-1-MP4")
        objects = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
                   if "/objects/" in o["Key"]]
        assert len(objects) == 2
    finally:
        stub.stop()


def test_lost_recording_webhook_is_reconciled_and_the_late_one_changes_nothing(
        hs_factory, both_databases, zoom_stub):
    hs = hs_factory(both_databases, zoom_stub=zoom_stub, RECONCILE_MIN_DELAY_SECONDS=1,
                    RECONCILE_DURATION_FACTOR=0)
    coach_and_client(hs)
    payload, body = load_fixture("meeting_ended", zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload)
    assert post_zoom(hs.http, body).status_code == 200
    hs.drain()
    with hs.db() as db:
        (session,) = db.exec(select(CoachingSession)).all()
    assert session.state == "received" and session.ended_at is not None

    hs.drain(advance=1.5)  # the reconciler asks Zoom and ingests what it finds
    with hs.db() as db:
        session = db.get(CoachingSession, session.id)
        stored = list(db.exec(select(Asset).where(Asset.kind != "transcript_vtt")))
        rows = list(db.exec(select(InboxEvent).order_by(InboxEvent.id)))
    assert session.state in STORED_OR_LATER and len(stored) == 2
    assert rows[-1].source == "reconcile"

    uuid = payload["payload"]["object"]["uuid"]
    late = {"event": "recording.completed", "event_ts": 1, "download_token": zoom_stub.issue_download_token(),
            "payload": {"object": zoom_stub.recordings_object(uuid)}}
    assert post_zoom(hs.http, late).status_code == 200
    hs.drain()
    with hs.db() as db:
        after = list(db.exec(select(Asset).where(Asset.kind != "transcript_vtt")))
        assert db.get(CoachingSession, session.id).state in STORED_OR_LATER
    assert [(a.id, a.sha256) for a in after] == [(a.id, a.sha256) for a in stored]
    assert all(zoom_stub.file_downloads(a.platform_file_id) == 1 for a in stored)
