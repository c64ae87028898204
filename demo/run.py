"""`make demo`: the whole pipeline on the embedded defaults, narrated.

A local stand-in plays Zoom (its API, OAuth and file host) and serves a short recorded
coaching conversation; the real app, running on a local port, receives a correctly signed
`recording.completed`, and a real RQ worker runs the pipeline: consent gate, encrypted
storage, local Whisper transcription, the offline summary, the client's email and link. A
second meeting, with a client who never consented, shows the refusal path. It ends with the
client's session link and the coach's dashboard sign-in link.

A re-run starts clean: an earlier run's data is removed first (see `demo.clean`), and a store
holding anything but the demo's is left untouched and the demo declines to run. `--serve`
serves the app at PUBLIC_BASE_URL, where the printed links point, with a worker beside it."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import uuid as uuidlib
from pathlib import Path
from urllib.parse import urlparse

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


def run_demo(base_rt, create_app, serve: bool = False) -> int:
    """`create_app` is the app factory (passed in: the app's CLI is what calls the demo)."""
    from tests.zoomstub import ZoomStub
    from tests.zoomhelpers import signed_headers

    import logging
    for name in ("", "werkzeug", "rq.worker", "rq.scheduler"):  # the narration below is the demo's output
        logging.getLogger(name).setLevel(logging.WARNING)
    say("holdspace demo: Zoom recording → consent gate → encrypted vault")
    say("=" * 64)
    public = urlparse(base_rt.settings.public_base_url)
    try:
        # With --serve the pages are served where the printed links point, so that address
        # must be free before anything is stored.
        server = make_server(public.hostname or "127.0.0.1", public.port or 80, None, threaded=True) \
            if serve else make_server("127.0.0.1", 0, None, threaded=True)
    except (OSError, SystemExit):  # werkzeug says why on stderr, then exits
        say(f"cannot serve on {base_rt.settings.public_base_url}: is `make run` or another demo "
            "serving there? Stop it, or set PUBLIC_BASE_URL to a free address.")
        return 1
    stub = ZoomStub()
    stub.start()
    secret = secrets.token_hex(16)
    settings = base_rt.settings.with_overrides(
        zoom_webhook_secret=secret, zoom_account_id=stub.account_id, zoom_client_id=stub.client_id,
        zoom_client_secret=stub.client_secret, zoom_api_base_url=stub.api_base_url,
        zoom_oauth_url=stub.oauth_url, zoom_download_hosts=(f"127.0.0.1:{stub.port}",))
    app = create_app(settings)
    server.app = app
    rt = app.extensions["holdspace"]
    migrate(rt.engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = settings.public_base_url if serve else f"http://127.0.0.1:{server.server_port}"
    say(f"app listening on {base}; Zoom stand-in on {stub.base_url}")
    say(f"database: {settings.database_url.split('///')[-1]}   vault: {settings.storage_url}")
    say(f"queue: {rt.redis_url}")
    try:
        if not _start_clean(rt):
            return 1
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
        outbox = None if settings.smtp_url else rt.mailer.maildir
        where = (f"written, sealed, to the Maildir {outbox} (read them with `flask --app app outbox`)"
                 if outbox else "sent by SMTP")
        say(f"Emails (the client's and the coach's) were {where}.")
        from models.audit import verify
        from workers.anchors import anchor_head, anchored
        anchor_head(rt, "demo")
        anchors = anchored(rt)
        with session_scope(rt.engine) as db:
            report = verify(db, anchors=anchors)
        say(f"Audit chain: {'intact' if report.ok else 'BROKEN'} ({report.checked} events).")
        link = _client_link(rt, stored_id)
        say()
        if link:
            days = settings.link_ttl_seconds // 86400
            say(f"{CONSENTING[1]}'s session page (the link in their email, valid {days} days):")
            say(f"   {link}")
        else:
            say("No session email reached the client (see the states above).")
        from workers.coach_sign_in import LOGIN_TTL_SECONDS, login_link
        say(f"{COACH[1]}'s dashboard, by a sign-in link that works once, within "
            f"{LOGIN_TTL_SECONDS // 60} minutes:")
        say(f"   {login_link(rt, coach_id)}")
        say(f"   (later, ask for a fresh one at {settings.public_base_url}/coach/login with {COACH[0]};"
            f" it is {where})")
        if serve:
            say("Serving these pages, with a worker that delivers what they queue (sign-in emails, "
                "fresh links); press Ctrl-C to stop.")
            _work_until_stopped(rt)
        else:
            say("Open them while `make run` is serving (it reads the same settings and var/), or run "
                "`.venv/bin/flask --app app demo --serve`, which runs the demo afresh and serves it.")
        return 0 if link else 1
    finally:
        server.shutdown()
        stub.stop()


def _start_clean(rt) -> bool:
    """Remove an earlier demo run's data; refuse (False) when the store holds anything else."""
    from demo.clean import remove_earlier_run, survey
    found = survey(rt, COACH[0])
    if not found.only_demo:
        listed = ", ".join(f"{table}: {_n(n, 'row')}" for table, n in sorted(found.foreign.items()))
        say()
        say(f"This store already holds data that is not the demo's ({listed}); "
            "the demo neither adds to it nor deletes any of it.")
        say("Run it on a store of its own, e.g. `HOLDSPACE_VAR_DIR=/tmp/holdspace-demo make demo` "
            "(with DATABASE_URL, REDIS_URL, STORAGE_URL and SMTP_URL unset).")
        return False
    if found.coach_id is None:
        return True
    removed = remove_earlier_run(rt, COACH[0], found.coach_id)
    rows = found.demo_rows
    say()
    say(f"Starting clean: an earlier demo run left {_n(rows.get('client', 0), 'client')}, "
        f"{_n(rows.get('coachingsession', 0), 'session')}, {_n(removed['vault objects'], 'vault object')}, "
        f"{_n(removed['emails'], 'email')} and {_n(rows.get('auditevent', 0), 'audit event')} here; "
        "all removed, so its links no longer open. The store held nothing else.")
    return True


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _client_link(rt, session_id: str) -> str | None:
    """The session link from the email this run sent the client, if one was sent."""
    from models import OutboundMessage
    with session_scope(rt.engine) as db:
        msg = db.exec(select(OutboundMessage).where(
            OutboundMessage.idempotency_key == f"session-email:{session_id}",
            OutboundMessage.status == "sent")).first()
        body = msg.body if msg else ""
    # The outbox keeps the link's id; its URL is made as the email was (workers/links.py).
    from workers.links import render_urls
    body = render_urls(body, rt.settings.secret_key, rt.settings.public_base_url) or ""
    return next((word for word in body.split() if "/s/" in word), None)


def _work_until_stopped(rt) -> None:
    """An RQ worker in this thread until Ctrl-C or SIGTERM (RQ handles both: it finishes the
    job in hand, then returns); the pages keep being served from the server's thread."""
    from rq import SimpleWorker
    # Jobs run in this process, like the demo's burst worker, and without RQ's scheduler: both
    # would fork, and a child would hold the listening socket. A retry that comes due later
    # waits for the next worker with a scheduler (`make run`'s).
    SimpleWorker(rt.queues, connection=rt.redis).work(logging_level="WARNING")


def _ensure_people(rt) -> str:
    from models import Coach
    from workers import fence
    from workers import consent
    email, name, zoom_id = COACH
    with session_scope(rt.engine) as db:
        coach = q.coach_by_email(db, email)
        if coach is None:
            coach = Coach(email=email, name=name, zoom_user_id=zoom_id)
            db.add(coach)
            db.flush()
        # No Zoom transcript will come from the stand-in: transcribe here, straight away.
        coach.allow_platform_transcript = False
        for client_email, client_name in (CONSENTING, NOT_CONSENTING):
            if q.client_by_email(db, coach.id, client_email) is None:
                client = fence.new_client(db, rt, coach.id, email=client_email, name=client_name)
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
    from datetime import datetime, timezone
    stub.add_meeting(meeting_id, meeting_uuid, COACH[2], topic=topic, host_email=COACH[0],
                     start_time=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
    for a in [a for a in assets if a.kind in ("audio", "video")]:
        plain = b"".join(rt.vault.open(a.object_key))
        same = hashlib.sha256(plain).hexdigest() == hashlib.sha256(audio).hexdigest()
        say(f"   vault object {a.object_key}: {a.size} bytes, encrypted to {a.ciphertext_size}; "
            f"decrypts to the source recording: {'yes' if same else 'NO'}")
    if not assets:
        say("   nothing was downloaded or stored")
        return
    from models import CoachInsight, Summary, Transcript
    with session_scope(rt.engine) as db:
        transcript = db.exec(select(Transcript).where(Transcript.session_id == session_id)).first()
        summary = db.exec(select(Summary).where(Summary.session_id == session_id)).first()
        insight = db.exec(select(CoachInsight).where(CoachInsight.session_id == session_id)).first()
    if transcript:
        say(f"   transcript ({transcript.engine}, {len(transcript.segments)} segments), first lines:")
        for seg in transcript.segments[:3]:
            who = f"{seg['speaker']}{'?' if seg.get('speaker_guessed') else ''}: " if seg.get("speaker") else ""
            say(f"     [{int(seg['start']) // 60}:{int(seg['start']) % 60:02d}] {who}{seg['text'].strip()}")
    if summary:
        tier = summary.client_tier
        say(f"   summary for the client ({summary.engine}{', basic' if summary.basic else ''}):")
        for c in tier.get("commitments", []):
            say(f"     commitment: {c['what']} ({c['who']}{', ' + c['by_when'] if c.get('by_when') else ''})")
        for h in tier.get("homework", []):
            say(f"     homework: {h['task']}")
        for t in tier.get("open_threads", [])[:2]:
            say(f"     open thread: {t}")
    if insight:
        n = sum(len(v) for v in insight.coach_tier.values() if isinstance(v, list))
        say(f"   coach-only notes kept apart from the client's view: {n} items")
