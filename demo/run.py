"""`make demo`: the whole pipeline on the embedded defaults, narrated.

A local stand-in plays Zoom (its API, OAuth and file host) and serves a short recorded
coaching conversation; the real app, running on a local port, receives a correctly signed
`recording.completed`, and a real RQ worker runs the pipeline. A second meeting, with a
client who never consented, shows the refusal path."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import uuid as uuidlib
from pathlib import Path

import requests
from sqlmodel import select
from werkzeug.serving import make_server

from models import AuditEvent, CoachingSession, Asset
from models import queries as q
from models.db import migrate, session_scope

HERE = Path(__file__).resolve().parent
COACH = ("casey.coach@demo.holdspace.test", "Casey Coach", "demo-zoom-host-1")
CONSENTING = ("robin@demo.holdspace.test", "Robin Client")
NOT_CONSENTING = ("sam@demo.holdspace.test", "Sam Nocon")


def say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(base_rt) -> int:
    from app import create_app
    from tests.zoomstub import ZoomStub
    from tests.zoomhelpers import signed_headers

    import logging
    logging.getLogger().setLevel(logging.WARNING)  # the narration below is the demo's output
    say("holdspace demo: Zoom recording → consent gate → encrypted vault")
    say("=" * 64)
    stub = ZoomStub()
    stub.start()
    secret = secrets.token_hex(16)
    settings = base_rt.settings.with_overrides(
        zoom_webhook_secret=secret, zoom_account_id=stub.account_id, zoom_client_id=stub.client_id,
        zoom_client_secret=stub.client_secret, zoom_api_base_url=stub.api_base_url,
        zoom_oauth_url=stub.oauth_url, zoom_download_hosts=("127.0.0.1",))
    app = create_app(settings)
    rt = app.extensions["holdspace"]
    migrate(rt.engine)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    say(f"app listening on {base}; Zoom stand-in on {stub.base_url}")
    say(f"database: {settings.database_url.split('///')[-1]}   vault: {settings.storage_url}")
    say(f"queue: {rt.redis_url}")
    try:
        coach_id = _ensure_people(rt)
        audio = (HERE / "session.m4a").read_bytes()
        say()
        say(f"1. {CONSENTING[1]} consented in writing. Their session's recording arrives:")
        stored_id = _one_meeting(rt, stub, base, secret, signed_headers, audio, CONSENTING, "Weekly coaching")
        _narrate(rt, coach_id, stored_id, audio)
        say()
        say(f"2. {NOT_CONSENTING[1]} never consented. Their session's recording arrives:")
        refused_id = _one_meeting(rt, stub, base, secret, signed_headers, audio, NOT_CONSENTING, "Intro call")
        _narrate(rt, coach_id, refused_id, audio)
        files = [f for f in stub.requests_to("/files/")]
        say()
        say(f"Zoom's file host served {len(files)} download(s) in all: the refused recording was never fetched.")
        outbox = settings.var_dir / "outbox"
        say(f"Coach notifications were written to the Maildir {outbox}.")
        with session_scope(rt.engine) as db:
            from models.audit import verify
            report = verify(db)
        say(f"Audit chain: {'intact' if report.ok else 'BROKEN'} ({report.checked} events).")
        return 0
    finally:
        server.shutdown()
        stub.stop()


def _ensure_people(rt) -> str:
    from models import Client, Coach
    from workers import consent
    email, name, zoom_id = COACH
    with session_scope(rt.engine) as db:
        coach = q.coach_by_email(db, email)
        if coach is None:
            coach = Coach(email=email, name=name, zoom_user_id=zoom_id)
            db.add(coach)
            db.flush()
        for client_email, client_name in (CONSENTING, NOT_CONSENTING):
            if q.client_by_email(db, coach.id, client_email) is None:
                client = Client(coach_id=coach.id, email=client_email, name=client_name)
                db.add(client)
                db.flush()
                if client_email == CONSENTING[0]:
                    consent.grant(db, client, scopes=list(consent.parse_scopes(None)),
                                  method="written", actor="demo")
        say(f"coach {coach.name} <{coach.email}> with clients {CONSENTING[1]} (consent: written) "
            f"and {NOT_CONSENTING[1]} (no consent)")
        return coach.id


def _one_meeting(rt, stub, base, secret, signed_headers, audio, client, topic) -> str:
    from rq import SimpleWorker
    meeting_uuid = uuidlib.uuid4().hex[:22] + "=="
    file_id = uuidlib.uuid4().hex
    stub.add_file(file_id, audio, "audio/mp4")
    meeting_id = secrets.randbelow(10**10) + 10**10
    stub.add_meeting(meeting_id, meeting_uuid, COACH[2], topic=topic, host_email=COACH[0],
                     duration=1, invitees=[client[0]],
                     files=[{"id": file_id, "meeting_id": meeting_uuid, "file_type": "M4A",
                             "file_extension": "M4A", "file_size": len(audio),
                             "download_url": stub.download_url_for(file_id), "status": "completed",
                             "recording_type": "audio_only"}])
    event = {"event": "recording.completed", "event_ts": 0,
             "download_token": stub.issue_download_token(),
             "payload": {"account_id": stub.account_id, "object": stub.recordings_object(meeting_uuid)}}
    body = json.dumps(event).encode()
    resp = requests.post(f"{base}/webhooks/zoom", data=body, headers=signed_headers(body, secret=secret),
                         timeout=10)
    say(f"   POST /webhooks/zoom (signed) → {resp.status_code} {resp.json()}")
    say("   a worker runs the queued pipeline …")
    SimpleWorker(rt.queues, connection=rt.redis).work(burst=True, logging_level="WARNING")
    with session_scope(rt.engine) as db:
        session = db.exec(select(CoachingSession).where(CoachingSession.platform_uuid == meeting_uuid)).one()
        return session.id


def _narrate(rt, coach_id, session_id, audio) -> None:
    with session_scope(rt.engine) as db:
        session = q.session_of(db, coach_id, session_id)
        events = db.exec(select(AuditEvent).where(AuditEvent.subject == f"session:{session_id}")
                         .order_by(AuditEvent.id)).all()
        for e in events:
            extra = {k: v for k, v in (e.detail or {}).items() if k in ("source", "object_key", "size")}
            say(f"   · {e.at:%H:%M:%S} {e.action}{'  ' + json.dumps(extra) if extra else ''}")
        say(f"   session {session.id}: state = {session.state}"
            + (f" ({session.error})" if session.error else ""))
        assets = list(db.exec(select(Asset).where(Asset.coach_id == coach_id, Asset.session_id == session_id)))
    for a in assets:
        plain = b"".join(rt.vault.open(a.object_key))
        same = hashlib.sha256(plain).hexdigest() == hashlib.sha256(audio).hexdigest()
        say(f"   vault object {a.object_key}: {a.size} bytes, encrypted to {a.ciphertext_size}; "
            f"decrypts to the source recording: {'yes' if same else 'NO'}")
    if not assets:
        say("   nothing was downloaded or stored")
