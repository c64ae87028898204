"""Withdrawal against work in flight: a client withdraws at twenty different points in the life
of a two-file recording (both downloads, the transcript, the summary, the delivery), while two
real worker processes run the pipeline. Afterwards nothing of the client may remain (no object,
no key, no row), and the receipt lists exactly what had been stored."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select

from models import (Asset, AuditEvent, Client, ClientMemory, CoachInsight, CoachingSession, DeletionReceipt,
                    InboxEvent, Link, OutboundMessage, SearchTerm, SearchVocabulary, Summary, Transcript,
                    TranscriptPassage)
from tests.conftest import make_env
from tests.media import encode, tone
from tests.zoomhelpers import COACH_EMAIL, COACH_ZOOM_ID, post_zoom

ROOT = Path(__file__).resolve().parent.parent
VTT = ("WEBVTT\n\n" + "\n".join(
    f"{i + 1}\n00:00:{i * 2:02d}.000 --> 00:00:{i * 2 + 1:02d}.500\n"
    f"{'Casey Coach' if i % 2 else 'Robin Client'}: I will write to my manager about point {i} by Friday.\n"
    for i in range(20))).encode()


@pytest.fixture
def race_db(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'holdspace.db'}"
    return request.getfixturevalue("postgres_server").create_database(f"race_{secrets.token_hex(4)}")


@pytest.fixture
def two_workers(tmp_path, redis_server, race_db, zoom_stub, on_machine_clock):
    """An app in this process (webhooks, the client's pages) and two worker processes, on one
    clock: the workers' scheduler and a moved test clock would otherwise disagree."""
    from tests.conftest import Holdspace
    env = make_env(tmp_path, race_db, redis_server.url, zoom_stub=zoom_stub,
                   TRANSCRIBE_ENGINE="platform", SUMMARY_ENGINE="offline",
                   PLATFORM_TRANSCRIPT_WAIT_SECONDS=0, DOWNLOAD_BACKOFF_SECONDS="0.05")
    hs = Holdspace(env)
    hs.run("coach", "add", "--email", COACH_EMAIL, "--name", "Casey Coach",
           "--zoom-user-id", COACH_ZOOM_ID)
    logs = tmp_path / "worker-logs"
    logs.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"],
                              cwd=ROOT, env={**os.environ, **env},
                              stdout=open(logs / f"w{i}.log", "wb"), stderr=subprocess.STDOUT)
             for i in range(2)]
    yield hs
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    hs.rt.engine.dispose()


def _client_and_consent_link(hs, n: int) -> tuple[str, str, str]:
    from workers import links
    email = f"robin{n}@example.com"
    client_id = hs.run("client", "add", "--coach-email", COACH_EMAIL, "--email", email,
                       "--name", f"Robin Client{n}")
    hs.run("consent", "grant", "--client-email", email, "--method", "written")
    with hs.db() as db:
        client = db.get(Client, client_id)
        _, token = links.issue(db, hs.rt.settings.secret_key, coach_id=client.coach_id,
                               client_id=client_id, purpose="consent", ttl_seconds=86400)
        db.commit()
    return client_id, email, token


def _recording(zoom_stub, n: int, email: str) -> tuple[dict, str]:
    uuid = f"raceUUID{n:04d}abcdefgh=="
    audio = encode(tone(4.0, 16_000, channels=1), 16_000, "m4a")
    files = []
    for file_id, data, ftype, ctype in ((f"audio-{n}", audio, "M4A", "audio/mp4"),
                                        (f"vtt-{n}", VTT, "TRANSCRIPT", "text/vtt")):
        zoom_stub.add_file(file_id, data, ctype, mode="slow")
        files.append({"id": file_id, "meeting_id": uuid, "file_type": ftype,
                      "file_extension": ftype if ftype == "M4A" else "VTT", "file_size": len(data),
                      "download_url": zoom_stub.download_url_for(file_id), "status": "completed",
                      "recording_type": "audio_only" if ftype == "M4A" else "audio_transcript"})
    zoom_stub.add_meeting(9000 + n, uuid, invitees=[email], files=files)
    payload = {"event": "recording.completed", "event_ts": 1,
               "download_token": zoom_stub.issue_download_token(),
               "payload": {"object": zoom_stub.recordings_object(uuid)}}
    return payload, uuid


def _state(hs, uuid: str) -> dict:
    """What can be seen of the recording's progress right now."""
    with hs.db() as db:
        session = db.exec(select(CoachingSession).where(CoachingSession.platform_uuid == uuid)).first()
        if session is None:
            return {"state": None, "assets": 0}
        return {"state": session.state, "id": session.id,
                "assets": len(db.exec(select(Asset.id).where(Asset.session_id == session.id)).all()),
                "transcript": db.exec(select(Transcript.id).where(Transcript.session_id == session.id)).first(),
                "summary": db.exec(select(Summary.id).where(Summary.session_id == session.id)).first(),
                "emailed": db.exec(select(OutboundMessage.id).where(
                    OutboundMessage.idempotency_key == f"session-email:{session.id}")).first()}


# The moment each run withdraws: (what to wait for, then how long to wait on top).
POINTS = [
    ("posted", 0.0), ("posted", 0.05), ("posted", 0.2), ("posted", 0.4),
    ("session", 0.0), ("fetching", 0.0), ("fetching", 0.15), ("fetching", 0.35),
    ("one asset", 0.0), ("one asset", 0.1), ("one asset", 0.3), ("two assets", 0.0),
    ("stored", 0.0), ("transcribing", 0.0), ("transcript", 0.0), ("summarising", 0.0),
    ("summary", 0.0), ("emailed", 0.0), ("delivered", 0.0), ("delivered", 0.5),
]


def _reached(point: str, seen: dict) -> bool:
    order = ["received", "fetching", "stored", "transcribing", "summarising", "delivered"]
    here = order.index(seen["state"]) if seen.get("state") in order else -1
    return {
        "posted": True,
        "session": seen["state"] is not None,
        "fetching": here >= 1,
        "one asset": seen["assets"] >= 1,
        "two assets": seen["assets"] >= 2,
        "stored": here >= 2,
        "transcribing": here >= 3 or bool(seen.get("transcript")),
        "transcript": bool(seen.get("transcript")),
        "summarising": here >= 4,
        "summary": bool(seen.get("summary")),
        "emailed": bool(seen.get("emailed")),
        "delivered": here >= 5,
    }[point] or seen.get("state") in ("failed", "refused_no_consent", "unmatched", "nothing_to_keep")


def _quiet(hs, deadline: float) -> None:
    """Until every queue is empty and no job runs or waits."""
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry
    while time.monotonic() < deadline:
        busy = sum(len(q) + len(StartedJobRegistry(queue=q)) + len(ScheduledJobRegistry(queue=q))
                   for q in hs.rt.queues)
        if not busy:
            time.sleep(0.3)  # a job between dequeue and its registry entry
            if not sum(len(q) + len(StartedJobRegistry(queue=q)) for q in hs.rt.queues):
                return
        time.sleep(0.1)
    left = {q.name: (q.job_ids, StartedJobRegistry(queue=q).get_job_ids(),
                     ScheduledJobRegistry(queue=q).get_job_ids()) for q in hs.rt.queues}
    raise AssertionError(f"the workers did not go quiet: {left}")


def _stored_keys(hs, client_id: str) -> set[str]:
    """Every object the audit trail says was stored for this client."""
    with hs.db() as db:
        events = db.exec(select(AuditEvent).where(AuditEvent.action == "asset.stored")).all()
    return {e.detail["object_key"] for e in events
            if e.detail.get("object_key", "").startswith(f"clients/{client_id}/")}


def _nothing_left(hs, client_id: str, email: str, uuid: str) -> None:
    backend = hs.rt.vault.backend
    assert backend.list(f"clients/{client_id}/") == []
    assert f"keys/{client_id}" not in backend.list("keys/")
    vault_root = Path(hs.rt.settings.storage_url[len("file://"):])
    assert not [p for p in vault_root.rglob("*") if client_id in str(p) and p.is_file()]
    with hs.db() as db:
        for model in (CoachingSession, Asset, TranscriptPassage, ClientMemory, SearchTerm, SearchVocabulary):
            assert not db.exec(select(model).where(model.client_id == client_id)).all(), model
        # The webhook's record stays counted, its payload (sealed under their key) emptied.
        assert all(e.payload is None for e in db.exec(select(InboxEvent).where(InboxEvent.client_id == client_id)))
        assert not db.exec(select(CoachingSession).where(CoachingSession.platform_uuid == uuid)
                           .where(CoachingSession.client_id.is_not(None))).all()
        live = {s for s in db.exec(select(CoachingSession.id))}
        for model in (Transcript, Summary, CoachInsight):
            orphans = [r for r in db.exec(select(model)) if r.session_id not in live]
            assert not orphans, model
        # Nothing about the client is left in the outbox; the receipt, once sent, keeps no address.
        assert not db.exec(select(OutboundMessage).where(OutboundMessage.client_id == client_id)).all()
        to_client = [m for m in db.exec(select(OutboundMessage)) if m.recipient == email]
        assert [m.idempotency_key.split(":")[0] for m in to_client] in ([], ["receipt-client"])


# Every point on SQLite; every other one on Postgres, where the fence is a real row lock.
RUNS = [("sqlite", i) for i in range(len(POINTS))] + [("postgres", i) for i in range(1, len(POINTS), 2)]


@pytest.mark.parametrize("race_db,n", RUNS, indirect=["race_db"],
                         ids=[f"{db}-{n:02d}-{POINTS[n][0]}+{POINTS[n][1]}" for db, n in RUNS])
def test_withdrawal_at_any_point_leaves_nothing_and_the_receipt_lists_what_was_stored(
        two_workers, zoom_stub, n):
    hs, (point, extra) = two_workers, POINTS[n]
    zoom_stub.slow_delay, zoom_stub.slow_chunk = 0.03, 2048
    client_id, email, token = _client_and_consent_link(hs, n)
    payload, uuid = _recording(zoom_stub, n, email)
    assert post_zoom(hs.http, payload).status_code == 200
    deadline = time.monotonic() + 60
    while not _reached(point, _state(hs, uuid)):
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.01)
    time.sleep(extra)

    response = hs.http.post(f"/c/{token}/withdraw", data={"confirm": "yes"})
    assert response.status_code == 200, response.get_data(as_text=True)
    _quiet(hs, time.monotonic() + 90)

    _nothing_left(hs, client_id, email, uuid)
    with hs.db() as db:
        (receipt,) = db.exec(select(DeletionReceipt).where(DeletionReceipt.client_id == client_id)).all()
        assert receipt.completed_at is not None
        revoked = db.exec(select(Link).where(Link.client_id == client_id)).all()
    assert all(link.revoked_at for link in revoked)
    # Objects with rows are exactly those the audit trail says were committed; an object a
    # writer had streamed but not yet committed when the inventory was taken is listed too,
    # as "unlisted" (it existed in storage, and was deleted).
    described = {o["key"] for o in receipt.body["objects"] if o["kind"] != "unlisted"}
    unlisted = {o["key"] for o in receipt.body["objects"] if o["kind"] == "unlisted"}
    stored = _stored_keys(hs, client_id)
    assert described == stored, json.dumps(receipt.body, indent=1, default=str)
    assert not unlisted & stored and all(k.startswith(f"clients/{client_id}/") for k in unlisted)
    assert receipt.body["key_shredded"] is not None


def test_what_a_writer_killed_after_the_erasure_left_is_swept_and_no_key_is_minted(hs_factory, database_url):
    """A writer in another process held the client's key when the client withdrew, wrote one
    more object after the receipt was signed, and died before it could find the fence: the
    erasure sweep deletes the object. No write creates a key for the erased client."""
    from vault import ObjectErased, load_master_key, open_vault
    from workers import fence
    from workers.erasure import resume_unfinished
    hs = hs_factory(database_url)
    hs.run("coach", "add", "--email", COACH_EMAIL, "--name", "Casey Coach")
    client_id = hs.run("client", "add", "--coach-email", COACH_EMAIL, "--email", "robin@example.com",
                       "--name", "Robin Client")
    hs.run("consent", "grant", "--client-email", "robin@example.com", "--method", "written")
    with hs.db() as db:
        coach_id = db.get(Client, client_id).coach_id
        fence.client_key(db, hs.rt, coach_id, client_id)
        db.commit()
    s = hs.rt.settings
    writer = open_vault(s.storage_url, master_key=load_master_key(s.vault_master_key, None, s.var_dir))
    writer.ensure_client_key(client_id)  # the other process's cached key

    hs.run("consent", "withdraw", "--client-email", "robin@example.com")
    late = writer.put_stream(client_id, "sessions/x/late.m4a", [b"late audio " * 100], "audio/mp4")
    assert hs.rt.vault.backend.list(f"clients/{client_id}/") == [late.key]
    with pytest.raises(ObjectErased):
        b"".join(hs.rt.vault.open(late.key))  # sealed under the shredded key already

    resume_unfinished(hs.rt, older_than_seconds=0)
    assert hs.rt.vault.backend.list(f"clients/{client_id}/") == []
    # A fresh writer has no key to use, and nothing creates one for an erased client.
    fresh = open_vault(s.storage_url, master_key=load_master_key(s.vault_master_key, None, s.var_dir))
    with pytest.raises(ObjectErased):
        fresh.put_stream(client_id, "sessions/x/later.m4a", [b"x"], "audio/mp4")
    with hs.db() as db, pytest.raises(fence.Fenced):
        fence.client_key(db, hs.rt, coach_id, client_id)
    assert f"keys/{client_id}" not in hs.rt.vault.backend.list("keys/")
