"""A step that fails for good, whichever it is: the session ends `failed` with the reason, the
coach is told once, and nothing half-written remains.

The failures are real ones: a full disk under the vault (a tiny tmpfs in a mount namespace,
with a real worker process inside it), a summariser answering nonsense, and a summary row that
delivery cannot read. Each step runs under its own RQ retries, their clock moved on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlmodel import select

from models import Asset, CoachingSession, Summary, Transcript
from tests.conftest import burst
from tests.zoomhelpers import COACH_EMAIL, CLIENT_EMAIL, audio_recording, coach_and_client, post_zoom

ROOT = Path(__file__).resolve().parents[1]
DEMO_AUDIO = ROOT / "demo" / "session.m4a"


def told(smtp_sink, subject_part: str) -> list:
    return [m for m in smtp_sink.to(COACH_EMAIL) if subject_part in m["Subject"]]


def session_of(hs) -> CoachingSession:
    with hs.db() as db:
        return db.exec(select(CoachingSession)).one()


def retries_run_out(hs, runs: int = 5) -> None:
    for _ in range(runs):  # the step's own retries, their clock moved on
        hs.drain(advance=3600)


# --- the download: a full disk ---------------------------------------------------------------------

# Run inside a mount namespace whose vault directory for client objects is a tmpfs too small for
# the recording (the keys beside it stay where they are):
# a real worker processes the queued event (and its retries), then lists what the vault holds.
WORKER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, sys.argv[1])
    from rq import SimpleWorker
    from rq.registry import ScheduledJobRegistry
    from app import create_app
    from config import Settings
    rt = create_app(Settings.from_env()).extensions["holdspace"]
    for _ in range(6):
        for queue in rt.queues:
            registry = ScheduledJobRegistry(queue=queue)
            for job_id in registry.get_jobs_to_schedule(time.time() + 3600):
                registry.requeue(job_id)
        SimpleWorker([rt.queue("ingest")], connection=rt.redis).work(burst=True, logging_level="WARNING")
    for folder, _, files in os.walk(sys.argv[2]):
        for name in files:
            print("FILE", os.path.relpath(os.path.join(folder, name), sys.argv[2]))
""")


def in_small_tmpfs(vault: Path, kib: int, env: dict) -> subprocess.CompletedProcess:
    script = (f"mount -t tmpfs -o size={kib}k holdspace-test {vault} && "
              f"exec {sys.executable} -c \"$WORKER\" {ROOT} {vault}")
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          env={**os.environ, **env, "WORKER": WORKER}, capture_output=True, text=True,
                          timeout=300)


def mount_namespaces_work() -> str | None:
    if shutil.which("unshare") is None:
        return "util-linux's unshare is not installed"
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=8k probe /mnt"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount a tmpfs in a namespace: {probe.stderr.strip()}"


def test_a_full_disk_during_the_download_fails_the_session_and_leaves_nothing(
        hs_factory, database_url, zoom_stub, smtp_sink, tmp_path):
    why_not = mount_namespaces_work()
    if why_not:
        pytest.skip(why_not)
    smtp_sink.clear()
    vault = tmp_path / "vault"
    vault.mkdir()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, storage_url=f"file://{vault}")
    coach_and_client(hs)
    recording = os.urandom(600_000)  # far more than the 64 KiB the disk holds
    assert post_zoom(hs.http, audio_recording(zoom_stub, recording)).status_code == 200

    (vault / "clients").mkdir()
    done = in_small_tmpfs(vault / "clients", 64, hs.env)
    assert done.returncode == 0, done.stderr[-3000:]
    left = sorted(line[5:] for line in done.stdout.splitlines() if line.startswith("FILE "))

    session = session_of(hs)
    assert session.state == "failed", session.error
    assert "No space left on device" in session.error
    # No object, part or temporary file of the recording is left.
    assert left == [], left
    with hs.db() as db:
        assert db.exec(select(Asset)).all() == []
    hs.drain()  # the coach's message, sent by a worker outside the namespace
    assert len(told(smtp_sink, "could not be processed")) == 1
    assert smtp_sink.to(CLIENT_EMAIL) == [] or all("session" not in m["Subject"].lower()
                                                   for m in smtp_sink.to(CLIENT_EMAIL))


# --- the summary: a summariser answering nonsense ---------------------------------------------------

def test_a_summariser_answering_nonsense_fails_the_session_after_its_retries(
        hs_factory, database_url, zoom_stub, smtp_sink):
    from tests.openaistub import OpenAIStub
    stub = OpenAIStub().start()
    try:
        stub.chat_reply = lambda request: "this is not the JSON the schema asks for"
        smtp_sink.clear()
        hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, TRANSCRIBE_ENGINE="local",
                        SUMMARY_ENGINE="openai", OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="sk-test")
        coach_and_client(hs)
        assert post_zoom(hs.http, audio_recording(zoom_stub, DEMO_AUDIO.read_bytes())).status_code == 200
        retries_run_out(hs)
    finally:
        stub.close()
    session = session_of(hs)
    assert session.state == "failed" and session.error.startswith("summary failed:"), session.error
    with hs.db() as db:
        assert db.exec(select(Summary)).all() == []          # nothing half-summarised
        assert len(db.exec(select(Transcript)).all()) == 1   # what was done stays, for a retry
    assert len(told(smtp_sink, "could not be processed")) == 1
    assert smtp_sink.to(CLIENT_EMAIL) == []


# --- the delivery: a summary it cannot read ---------------------------------------------------------

def test_a_delivery_that_cannot_be_written_fails_the_session_and_sends_nothing(
        hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, TRANSCRIBE_ENGINE="local",
                    SUMMARY_ENGINE="offline")
    coach_and_client(hs)
    assert post_zoom(hs.http, audio_recording(zoom_stub, DEMO_AUDIO.read_bytes())).status_code == 200
    # Ingest, transcription and summary, one job at a time, stopping before delivery.
    burst([hs.rt.queue("ingest")], hs.rt.redis)
    for _ in range(2):
        burst([hs.rt.queue("default")], hs.rt.redis, max_jobs=1)
    with hs.db() as db:
        summary = db.exec(select(Summary)).one()
        # A row no version of the summariser writes: delivery meets what it cannot render.
        summary.client_tier = {**summary.client_tier, "commitments": 17}
        db.add(summary)
        db.commit()
    retries_run_out(hs)
    session = session_of(hs)
    assert session.state == "failed" and session.error.startswith("delivery failed:"), session.error
    assert len(told(smtp_sink, "could not be processed")) == 1
    assert smtp_sink.to(CLIENT_EMAIL) == []
    with hs.db() as db:
        from models import Link, OutboundMessage
        assert db.exec(select(Link).where(Link.purpose == "session")).all() == []
        assert [m for m in db.exec(select(OutboundMessage)) if m.recipient == CLIENT_EMAIL] == []
    json.dumps(session.error)  # the reason is plain text the dashboard can show
