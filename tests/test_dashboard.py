"""The coach dashboard over HTTP: the magic-link sign-in (emailed, single-use, expiring, silent
about unknown addresses), the session cookie and sign-out, CSRF on every POST, both tiers and
the private notes, search, retry of a failed session, resend and revoke, delete with a
confirmation, and the audit trail of what the coach opened."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from models import (AuditEvent, CoachingSession, DeletionReceipt, Link, OutboundMessage,
                    PrivateNote)
from portal.coach import login_link
from tests.portalhelpers import body_of, delivered_session, links_in, path_of
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, coach_and_client, post_zoom
from tests.zoomstub import load_fixture, register_fixture_files

AUTH_LINK = re.compile(r"https?://[^\s\"'<>]+/coach/auth/[A-Za-z0-9_.\-]+")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FAILING_FIXTURE = "recording_completed_audio_only"
FAILING_FILE = "e2a9c4f8-7b13-4d6e-8c05-9f1b3a7e5d56"  # its one M4A
# That recording has no Zoom transcript: consent without transcription delivers it as it is.
FAILING_SCOPES = "record,share_with_client"


# --- helpers the other dashboard tests use too ------------------------------------------------

def engines_env(**extra) -> dict:
    """Zoom's own transcript and the offline summariser: every session gets both tiers, fast."""
    return dict(TRANSCRIBE_ENGINE="platform", SUMMARY_ENGINE="offline",
                PLATFORM_TRANSCRIPT_WAIT_SECONDS=0, **extra)


def coach_id_of(hs, email: str = COACH_EMAIL) -> str:
    from models import queries as q
    with hs.db() as db:
        return q.coach_by_email(db, email).id


def sign_in(hs, coach_id: str, http=None):
    """A browser-like client signed in as the coach, through a real one-time link."""
    http = http or hs.app.test_client()
    resp = http.get(path_of(login_link(hs.rt, coach_id)))
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/coach"), resp.data
    return http


def csrf(http, path: str = "/coach") -> str:
    page = http.get(path)
    assert page.status_code == 200, (path, page.status_code)
    return CSRF.search(page.get_data(as_text=True)).group(1)


def post(http, path: str, data: dict | None = None, token: str | None = None):
    return http.post(path, data={**(data or {}), "csrf_token": token or csrf(http)})


def page(http, path: str) -> str:
    resp = http.get(path)
    assert resp.status_code == 200, (path, resp.status_code)
    return resp.get_data(as_text=True)


def session_row(hs, **where) -> CoachingSession:
    with hs.db() as db:
        query = select(CoachingSession)
        for name, value in where.items():
            query = query.where(getattr(CoachingSession, name) == value)
        return db.exec(query).one()


def failed_session(hs, zoom_stub) -> CoachingSession:
    """A recording whose download keeps answering Zoom's HTML sign-in page: it fails."""
    payload, body = load_fixture(FAILING_FIXTURE, zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload)
    zoom_stub.set_file_mode(FAILING_FILE, "html")
    assert post_zoom(hs.http, body).status_code == 200
    hs.drain()
    found = session_row(hs, platform_uuid=payload["payload"]["object"]["uuid"])
    for _ in range(3):
        if found.state == "failed":
            break
        # On a loaded machine a retry can fall due later than drain() waits for by itself:
        # let the scheduler's clock run on, as it would.
        hs.drain(advance=300)
        found = session_row(hs, platform_uuid=payload["payload"]["object"]["uuid"])
    assert found.state == "failed", (found.state, found.error)
    return found


def dashboard_audit(hs, coach_id: str) -> list[tuple[str, str]]:
    with hs.db() as db:
        return [(e.action, e.subject) for e in db.exec(
            select(AuditEvent).where(AuditEvent.coach_id == coach_id).order_by(AuditEvent.id))]


# --- tests -------------------------------------------------------------------------------------

@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    return hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url,
                      **engines_env(PUBLIC_BASE_URL="http://holdspace.test"))


def test_magic_link_signs_in_once(hs, smtp_sink):
    coach_id, _ = coach_and_client(hs)
    http = hs.app.test_client()
    assert http.get("/coach").status_code == 303
    assert http.get("/coach").headers["Location"].endswith("/coach/login")
    form = http.get("/coach/login")
    assert form.status_code == 200 and form.headers["Content-Security-Policy"].startswith("default-src 'none'")
    token = CSRF.search(form.get_data(as_text=True)).group(1)

    known = http.post("/coach/login", data={"email": f"  {COACH_EMAIL.upper()} ", "csrf_token": token})
    unknown = http.post("/coach/login", data={"email": "nobody@example.org", "csrf_token": token})
    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)
    assert "if that address belongs to a coach" in known.get_data(as_text=True).lower()
    hs.drain()
    assert smtp_sink.to("nobody@example.org") == []
    with hs.db() as db:
        # Sent once, and then forgotten: the outbox keeps no sign-in token.
        assert [(m.status, m.recipient, m.body) for m in db.exec(select(OutboundMessage))
                if m.idempotency_key.startswith("coach-login:")] == [("sent", "", "")]
    (mail,) = [m for m in smtp_sink.to(COACH_EMAIL) if "sign-in" in m["Subject"]]
    (url,) = set(AUTH_LINK.findall(body_of(mail)))
    assert url.startswith("http://holdspace.test/coach/auth/")
    # Text and HTML, the HTML a page with a button rather than a long address to copy.
    from tests.test_client_emails import parts
    both = parts(mail)
    assert f'<a href="{url}"' in both["text/html"] and ">Sign in</a>" in both["text/html"]
    assert '<html lang="en">' in both["text/html"] and url in both["text/plain"]

    signed_in = http.get(path_of(url))
    assert signed_in.status_code == 303 and signed_in.headers["Location"].endswith("/coach")
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    dashboard = page(http, "/coach")
    assert "Robin Client" in dashboard and CLIENT_EMAIL in dashboard and "(written)" in dashboard
    assert ("coach.signed_in", f"coach:{coach_id}") in dashboard_audit(hs, coach_id)

    # Single use: the same link, even in another browser, signs no one in.
    other = hs.app.test_client()
    again = other.get(path_of(url))
    assert again.status_code == 410
    assert other.get("/coach").status_code == 303


def test_sign_in_lands_on_the_page_asked_for(hs, smtp_sink):
    coach_id, client_id = coach_and_client(hs)
    http = hs.app.test_client()
    asked = http.get(f"/coach/clients/{client_id}")
    assert asked.status_code == 303
    assert asked.headers["Location"].endswith(f"/coach/login?next=/coach/clients/{client_id}")
    form = page(http, asked.headers["Location"])
    assert f'name="next" value="/coach/clients/{client_id}"' in form
    http.post("/coach/login", data={"email": COACH_EMAIL, "next": f"/coach/clients/{client_id}",
                                    "csrf_token": CSRF.search(form).group(1)})
    hs.drain()
    (url,) = set(AUTH_LINK.findall(body_of(smtp_sink.to(COACH_EMAIL)[-1])))
    landed = http.get(path_of(url))
    assert landed.status_code == 303 and landed.headers["Location"] == f"/coach/clients/{client_id}"
    # Only dashboard pages: anything else lands on the dashboard.
    for elsewhere in ("https://evil.example/", "//evil.example", "/coach\n", "/s/abc", "/coach/../healthz"):
        resp = hs.app.test_client().get(path_of(login_link(hs.rt, coach_id, elsewhere)))
        assert resp.headers["Location"] == "/coach", elsewhere


def test_expired_forged_and_signed_out(hs, monkeypatch):
    import itsdangerous.timed
    coach_id, _ = coach_and_client(hs)
    real_time = itsdangerous.timed.time.time
    with monkeypatch.context() as m:
        m.setattr(itsdangerous.timed.time, "time", lambda: real_time() - 16 * 60)
        expired = login_link(hs.rt, coach_id)
    http = hs.app.test_client()
    assert http.get(path_of(expired)).status_code == 410
    assert http.get("/coach/auth/ImFiYyI.AAAAAAAAAAAAAAAAAAAAAAAAAAA").status_code == 401
    assert http.get(path_of(login_link(hs.rt, "0" * 32))).status_code == 401  # no such coach
    assert http.get("/coach").status_code == 303

    # Signing out ends the session on the server: the old cookie no longer works.
    sign_in(hs, coach_id, http)
    stolen = http.get_cookie("session").value
    assert post(http, "/coach/logout").status_code == 303
    assert http.get("/coach").status_code == 303
    http.set_cookie("session", stolen)
    assert http.get("/coach").status_code == 303


def test_every_post_needs_the_csrf_token(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink, fixture="recording_completed", scopes=None)
    coach_id = coach_id_of(hs)
    sid = session_row(hs).id
    http = sign_in(hs, coach_id)
    good = csrf(http)
    posts = [r for r in hs.app.url_map.iter_rules() if r.rule.startswith("/coach") and "POST" in r.methods]
    assert len(posts) >= 7
    for rule in posts:
        path = rule.rule.replace("<session_id>", sid)
        for data in ({}, {"csrf_token": "wrong"}, {"csrf_token": good[:-2]}):
            resp = http.post(path, data={"body": "a note", "confirm": "yes", "email": COACH_EMAIL, **data})
            assert resp.status_code == 403, (path, data)
    with hs.db() as db:
        assert db.exec(select(PrivateNote)).all() == []
        assert db.exec(select(DeletionReceipt)).all() == []
        assert all(link.revoked_at is None for link in db.exec(select(Link)))
    assert page(http, "/coach")  # still signed in: the forged sign-out did nothing


def test_both_tiers_notes_and_the_clients_view(hs, zoom_stub, smtp_sink):
    payload, client_path = delivered_session(hs, zoom_stub, smtp_sink, fixture="recording_completed",
                                             scopes=None)
    coach_id, s = coach_id_of(hs), session_row(hs)
    http = sign_in(hs, coach_id)
    view = page(http, f"/coach/sessions/{s.id}")
    assert "Coaching: Sam Rivera" in view and "What Robin Client sees" in view
    assert "coach only" in view and "Share of words spoken" in view  # the coach tier
    assert "book a one-to-one for Thursday" in view  # the client tier
    assert "raise the workload issue with my manager" in view  # the transcript
    assert 'id="note-body"' in view

    note = "Robin lights up talking about <b>autonomy</b> — explore next time."
    token = CSRF.search(view).group(1)
    resp = http.post(f"/coach/sessions/{s.id}/notes", data={"body": note, "csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/coach/sessions/{s.id}#notes")
    view = page(http, f"/coach/sessions/{s.id}")
    assert "Note saved." in view
    assert "Robin lights up talking about &lt;b&gt;autonomy&lt;/b&gt;" in view
    empty = http.post(f"/coach/sessions/{s.id}/notes", data={"body": "  ", "csrf_token": token})
    assert empty.status_code == 303 and "The note is empty." in page(http, f"/coach/sessions/{s.id}")
    with hs.db() as db:
        (stored,) = db.exec(select(PrivateNote)).all()
        assert stored.coach_id == coach_id and stored.session_id == s.id and stored.client_id == s.client_id

    # The client's page: the notes, the coach tier, it carries none of them.
    mine = hs.http.get(client_path).get_data(as_text=True)
    assert "autonomy" not in mine and "Share of words spoken" not in mine and "coach only" not in mine

    client = page(http, f"/coach/clients/{s.client_id}")
    assert "Robin Client" in client and "recording, transcript, summary, downloads (written)" in client
    assert "book a one-to-one for Thursday" in client  # an open commitment in the memory
    assert "workload issue" in client  # a theme
    assert "Briefing" in client and "autonomy" in client  # the note, in the briefing and the notes
    assert ("dashboard.viewed", f"session:{s.id}") in dashboard_audit(hs, coach_id)
    assert ("dashboard.viewed", f"client:{s.client_id}") in dashboard_audit(hs, coach_id)
    trail = page(http, "/coach/audit")
    assert f"session:{s.id}" in trail and "note.added" in trail and "link.used" in trail

    assert http.get("/coach/sessions/" + "f" * 32).status_code == 404
    assert http.get("/coach/clients/" + "f" * 32).status_code == 404


def test_search_finds_passages_and_links_to_them(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink, fixture="recording_completed", scopes=None)
    coach_id, s = coach_id_of(hs), session_row(hs)
    http = sign_in(hs, coach_id)
    results = page(http, "/coach/search?q=workload+mana")  # the last word as a prefix
    hits = re.findall(r'href="(/coach/sessions/[0-9a-f]+\?at=\d+#found)"', results)
    assert hits and all(f"/coach/sessions/{s.id}?" in h for h in hits)
    assert "<mark>workload</mark>" in results and "Robin Client" in results
    target = page(http, hits[0].split("#")[0])
    assert 'class="seg found" id="found"' in target
    assert "Nothing found" in page(http, "/coach/search?q=zeppelin")
    for odd in ('"workload" OR *', "NEAR(a b)", "coach_id : x", "'", "%00"):
        assert http.get("/coach/search", query_string={"q": odd}).status_code == 200
    assert ("transcripts.searched", f"coach:{coach_id}") in dashboard_audit(hs, coach_id)


def test_retry_requeues_a_failed_session(hs, zoom_stub, smtp_sink):
    coach_id, _ = coach_and_client(hs, scopes=FAILING_SCOPES)
    failed = failed_session(hs, zoom_stub)
    http = sign_in(hs, coach_id)
    dashboard = page(http, "/coach")
    assert f'id="retry-{failed.id}"' in dashboard and failed.error in dashboard

    zoom_stub.set_file_mode(FAILING_FILE, "ok")  # Zoom answers properly again
    resp = post(http, f"/coach/sessions/{failed.id}/retry", {"back": "dashboard"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/coach")
    assert "Trying again." in page(http, "/coach")
    assert session_row(hs, id=failed.id).state == "received"
    hs.drain()
    assert session_row(hs, id=failed.id).state == "delivered"
    assert ("session.retried", f"session:{failed.id}") in dashboard_audit(hs, coach_id)
    # Retrying what has not failed is refused with a reason, and changes nothing.
    post(http, f"/coach/sessions/{failed.id}/retry")
    assert "has not failed" in page(http, f"/coach/sessions/{failed.id}")


def test_resend_and_revoke_links(hs, zoom_stub, smtp_sink):
    payload, client_path = delivered_session(hs, zoom_stub, smtp_sink)
    coach_id, s = coach_id_of(hs), session_row(hs)
    http = sign_in(hs, coach_id)
    before = len(smtp_sink.to(CLIENT_EMAIL))
    assert post(http, f"/coach/sessions/{s.id}/resend").status_code == 303
    assert "Sent Robin Client a fresh link" in page(http, f"/coach/sessions/{s.id}")
    hs.drain()
    mails = smtp_sink.to(CLIENT_EMAIL)
    assert len(mails) == before + 1
    (fresh,) = [u for u in links_in(mails[-1]) if "/s/" in u]
    assert hs.http.get(path_of(fresh) + "/media", headers={"Range": "bytes=0-0"}).status_code == 206

    assert post(http, f"/coach/sessions/{s.id}/revoke").status_code == 303
    assert "Revoked 2 links to that session." in page(http, f"/coach/sessions/{s.id}")
    for path in (client_path, path_of(fresh)):
        assert hs.http.get(path).status_code == 410
        assert hs.http.get(path + "/media").status_code == 410


def test_delete_asks_for_confirmation(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink)
    coach_id, s = coach_id_of(hs), session_row(hs)
    http = sign_in(hs, coach_id)
    post(http, f"/coach/sessions/{s.id}/notes", {"body": "keep this thought"})
    confirm = page(http, f"/coach/sessions/{s.id}/delete")
    assert "Delete this session?" in confirm and 'name="confirm" value="yes"' in confirm

    unconfirmed = post(http, f"/coach/sessions/{s.id}/delete")
    assert unconfirmed.status_code == 303 and unconfirmed.headers["Location"].endswith("/delete")
    with hs.db() as db:
        assert db.exec(select(DeletionReceipt)).all() == []
    assert session_row(hs, id=s.id)

    done = post(http, f"/coach/sessions/{s.id}/delete", {"confirm": "yes"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/coach")
    assert f"Deleting session {s.id}" in page(http, "/coach")
    hs.drain()
    assert http.get(f"/coach/sessions/{s.id}").status_code == 404
    with hs.db() as db:
        assert db.exec(select(CoachingSession)).all() == []
        (receipt,) = db.exec(select(DeletionReceipt)).all()
        assert receipt.completed_at is not None
        (note,) = db.exec(select(PrivateNote)).all()
        assert note.body == "keep this thought" and note.session_id is None
    assert "keep this thought" in page(http, f"/coach/clients/{s.client_id}")
