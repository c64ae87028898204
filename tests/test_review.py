"""Review before send: a coach in review mode gets the summary first; the client gets nothing
until the coach sends it; the coach's edits are what the client, the email and the memory
carry; the edit and the send are audited (without the words); a second send, a killed send
and a send job run twice email the client once. And the coach's own player."""

from __future__ import annotations

from sqlmodel import select

from models import AuditEvent, ClientMemory, Coach, CoachingSession, OutboundMessage, Summary
from tests import test_dashboard
from tests.test_dashboard import csrf, page, post, session_row, sign_in
from tests.portalhelpers import body_of, links_in, path_of
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, coach_and_client, post_zoom
from tests.zoomstub import load_fixture, register_fixture_files

# The dashboard tests' app: SQLite, the Zoom and SMTP stand-ins, the fast engines.
hs = test_dashboard.hs


def recorded_in_review_mode(hs, zoom_stub):
    coach_id, _ = coach_and_client(hs)
    with hs.db() as db:
        coach = db.get(Coach, coach_id)
        coach.delivery_mode = "review"
        db.commit()
    payload, body = load_fixture("recording_completed", zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload)
    assert post_zoom(hs.http, body).status_code == 200
    hs.drain()
    return coach_id, session_row(hs)


def client_mail(smtp_sink):
    return [m for m in smtp_sink.to(CLIENT_EMAIL) if "/s/" in body_of(m)]


def test_review_mode_holds_the_summary_until_the_coach_sends_it(hs, zoom_stub, smtp_sink):
    coach_id, s = recorded_in_review_mode(hs, zoom_stub)
    assert s.state == "ready_for_review" and s.approved_at is None
    assert client_mail(smtp_sink) == []  # nothing reached the client
    told = [m for m in smtp_sink.to(COACH_EMAIL) if "Ready for your review" in m["Subject"]]
    assert len(told) == 1 and f"/coach/sessions/{s.id}" in body_of(told[0])

    # A sweep or a re-run of delivery leaves it waiting: only the coach moves it on.
    from workers.delivery import deliver_session
    assert deliver_session(s.id) == "ready for review"
    hs.drain()
    assert session_row(hs, id=s.id).state == "ready_for_review" and client_mail(smtp_sink) == []
    assert len([m for m in smtp_sink.to(COACH_EMAIL) if "Ready for your review" in m["Subject"]]) == 1

    http = sign_in(hs, coach_id)
    view = page(http, f"/coach/sessions/{s.id}")
    assert 'id="review"' in view and "has received nothing yet" in view
    with hs.db() as db:
        before = db.exec(select(Summary)).one().client_tier
    assert before["commitments"], "the fixture's summary has commitments to edit"
    kept, dropped = before["commitments"][0], before["commitments"][1:]

    token = csrf(http, f"/coach/sessions/{s.id}")
    resp = post(http, f"/coach/sessions/{s.id}/summary", {
        "overview": "We looked at   the workload\nand what to ask for.",
        "commitments": f"{kept['what']}\nEmail Sam the draft agenda by Wednesday\n",
        "homework": "Notice one moment of autonomy each day"}, token)
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/coach/sessions/{s.id}#review")
    assert "Saved. Nothing has been sent yet." in page(http, f"/coach/sessions/{s.id}")
    assert client_mail(smtp_sink) == []
    with hs.db() as db:
        tier = db.exec(select(Summary)).one().client_tier
        memory = db.exec(select(ClientMemory)).one().data
        edits = [e for e in db.exec(select(AuditEvent).where(AuditEvent.action == "summary.edited"))]
    assert tier["overview"] == "We looked at the workload and what to ask for."
    assert [c["what"] for c in tier["commitments"]] == [kept["what"], "Email Sam the draft agenda by Wednesday"]
    assert tier["commitments"][0] == kept  # an unchanged line keeps when and where it was said
    assert tier["commitments"][1]["source_timestamp"] is None  # the coach's own line
    assert [h["task"] for h in tier["homework"]] == ["Notice one moment of autonomy each day"]
    # The memory (and so the next briefing) carries the coach's version, not the dropped lines.
    open_items = [c["what"] for c in memory["commitments"] if c["status"] == "open"]
    assert "Email Sam the draft agenda by Wednesday" in open_items
    assert not any(d["what"] == item for d in dropped for item in open_items)
    (edit,) = edits
    assert edit.actor == f"coach:{coach_id}" and edit.subject == f"session:{s.id}"
    assert "Sam" not in str(edit.detail) and "autonomy" not in str(edit.detail)  # no words

    # Send: the client gets the coach's version, once, however often it is pressed.
    resp = post(http, f"/coach/sessions/{s.id}/send", {}, token)
    assert resp.status_code == 303
    hs.drain()
    assert post(http, f"/coach/sessions/{s.id}/send", {}, token).status_code == 303
    hs.drain()
    assert session_row(hs, id=s.id).state == "delivered"
    (mail,) = client_mail(smtp_sink)
    assert "We looked at the workload" in body_of(mail)
    (url,) = [u for u in links_in(mail) if "/s/" in u]
    client_page = hs.http.get(path_of(url)).get_data(as_text=True)
    assert "Email Sam the draft agenda by Wednesday" in client_page
    assert "Notice one moment of autonomy each day" in client_page
    assert not any(d["what"] in client_page for d in dropped)
    with hs.db() as db:
        actions = [e.action for e in db.exec(select(AuditEvent).where(
            AuditEvent.subject == f"session:{s.id}").order_by(AuditEvent.id))]
    assert actions.count("summary.approved") == 1
    assert actions.index("summary.edited") < actions.index("summary.approved") < actions.index("session.delivered")
    # Once sent, the summary is no longer editable here.
    post(http, f"/coach/sessions/{s.id}/summary", {"overview": "changed later"}, token)
    with hs.db() as db:
        assert db.exec(select(Summary)).one().client_tier["overview"].startswith("We looked at")


def test_automatic_mode_is_the_default_and_sends_at_once(hs, zoom_stub, smtp_sink):
    coach_and_client(hs)
    payload, body = load_fixture("recording_completed", zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload)
    assert post_zoom(hs.http, body).status_code == 200
    hs.drain()
    assert session_row(hs).state == "delivered" and len(client_mail(smtp_sink)) == 1


def test_a_send_killed_before_the_email_is_sent_once_on_its_retry(hs, zoom_stub, smtp_sink):
    coach_id, s = recorded_in_review_mode(hs, zoom_stub)
    from workers.delivery import deliver_session
    from workers.review import send_reviewed
    with hs.db() as db:
        session = db.get(CoachingSession, s.id)
        session.approved_at = None
        db.commit()
    # The coach's send is recorded, then the worker dies before delivery runs: the job (or
    # the sweeper) runs delivery again, twice even, and the client gets one email.
    send_reviewed(hs.rt, coach_id, s.id, actor="coach:test")
    assert deliver_session(s.id) == "delivered"
    assert deliver_session(s.id) in ("delivered", "already delivered")
    hs.drain()
    assert len(client_mail(smtp_sink)) == 1
    with hs.db() as db:
        assert len([m for m in db.exec(select(OutboundMessage)) if m.idempotency_key == f"session-email:{s.id}"]) == 1


def test_review_pages_are_the_coachs_own(hs, zoom_stub, smtp_sink):
    coach_id, s = recorded_in_review_mode(hs, zoom_stub)
    other = hs.run("coach", "add", "--email", "other@coach.test", "--name", "Other Coach")
    http = sign_in(hs, other)
    token = csrf(http)
    for path in (f"/coach/sessions/{s.id}/summary", f"/coach/sessions/{s.id}/send"):
        assert post(http, path, {"overview": "taken over"}, token).status_code == 404
    assert http.get(f"/coach/sessions/{s.id}/media").status_code == 404
    assert http.get(f"/coach/sessions/{s.id}/captions.vtt").status_code == 404
    hs.drain()
    assert session_row(hs, id=s.id).state == "ready_for_review" and client_mail(smtp_sink) == []


def test_the_coach_plays_the_recording_from_any_timestamp(hs, zoom_stub, smtp_sink):
    coach_id, s = recorded_in_review_mode(hs, zoom_stub)
    http = sign_in(hs, coach_id)
    view = page(http, f"/coach/sessions/{s.id}")
    assert f'src="/coach/sessions/{s.id}/media"' in view and 'id="player"' in view
    # The client's player: ±15 s, speed, and the script that marks and follows the passage.
    assert 'class="ts" data-t=' in view and "session.js" in view and 'id="ahead-15"' in view
    captions = http.get(f"/coach/sessions/{s.id}/captions.vtt")
    assert captions.status_code == 200 and captions.mimetype == "text/vtt"
    assert captions.get_data(as_text=True).startswith("WEBVTT") and "-->" in captions.get_data(as_text=True)
    whole = http.get(f"/coach/sessions/{s.id}/media")
    part = http.get(f"/coach/sessions/{s.id}/media", headers={"Range": "bytes=10-19"})
    assert whole.status_code == 200 and len(whole.data) > 1000
    assert part.status_code == 206 and part.data == whole.data[10:20]
    signed_out = hs.app.test_client().get(f"/coach/sessions/{s.id}/media")
    assert signed_out.status_code == 303 and "/coach/login" in signed_out.headers["Location"]
