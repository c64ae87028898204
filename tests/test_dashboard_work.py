"""A coach's everyday work from the dashboard, without Slack or a terminal: add a client and
ask for consent, record a verbal consent with the coach's attestation, assign an unmatched
recording, fetch a refused one once consent exists, delete a client after a confirmation;
the settings page (each value checked, each change audited, and acted on); times in the
coach's time zone. Every action is the signed-in coach's only."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from models import AuditEvent, Client, Coach, Consent, DeletionReceipt
from tests.portalhelpers import body_of
from tests.test_dashboard import csrf, page, post, session_row, sign_in
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, coach_and_client, post_zoom

NEW_EMAIL = "jo.new@client.test"


@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    return hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url,
                      PUBLIC_BASE_URL="http://holdspace.test")


def recording(hs, zoom_stub, *, invitees, uuid="workUUID000000000000==", file_id="work-audio"):
    """An audio-only Zoom recording of the coach's meeting with these invitees, posted and run."""
    data = b"\x03" * 3000
    zoom_stub.add_file(file_id, data, "audio/mp4")
    f = {"id": file_id, "meeting_id": uuid, "file_type": "M4A", "file_extension": "M4A",
         "file_size": len(data), "download_url": zoom_stub.download_url_for(file_id),
         "status": "completed", "recording_type": "audio_only"}
    zoom_stub.add_meeting(4242, uuid, invitees=invitees, files=[f])
    event = {"event": "recording.completed", "event_ts": 1, "download_token": zoom_stub.issue_download_token(),
             "payload": {"object": zoom_stub.recordings_object(uuid)}}
    assert post_zoom(hs.http, event).status_code == 200
    hs.drain()
    return session_row(hs, platform_uuid=uuid)


def flashes(html: str) -> list[str]:
    return re.findall(r'<p class="flash (?:ok|error)" role="status">([^<]+)</p>', html)


def audited(hs, action):
    with hs.db() as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)))


def test_add_a_client_and_ask_for_consent(hs, smtp_sink):
    coach_id = hs.run("coach", "add", "--email", COACH_EMAIL, "--name", "Casey Coach")
    http = sign_in(hs, coach_id)
    empty = page(http, "/coach")
    assert "/holdspace consent" not in empty and 'id="add-client"' in empty
    token = csrf(http)

    resp = post(http, "/coach/clients", {"email": "  Jo.New@Client.test ", "name": "Jo New"}, token)
    assert resp.status_code == 303 and "/coach/clients/" in resp.headers["Location"]
    assert "Nothing is recorded for them until they consent." in page(http, resp.headers["Location"])
    assert smtp_sink.to(NEW_EMAIL) == []  # added only
    again = post(http, "/coach/clients", {"email": NEW_EMAIL, "name": "Jo"}, token)
    assert "already one of your clients" in " ".join(flashes(page(http, again.headers["Location"])))
    bad = post(http, "/coach/clients", {"email": "not an address"}, token)
    assert bad.status_code == 303 and "look like an email" in " ".join(flashes(page(http, "/coach")))

    with hs.db() as db:
        (client,) = db.exec(select(Client)).all()
    resp = post(http, f"/coach/clients/{client.id}/consent-request", {}, token)
    assert resp.status_code == 303
    hs.drain()
    (mail,) = smtp_sink.to(NEW_EMAIL)
    assert "consent" in mail["Subject"] and "/c/" in body_of(mail)
    # And in one go: add and ask.
    post(http, "/coach/clients", {"email": "sam@client.test", "name": "Sam", "ask_consent": "on"}, token)
    hs.drain()
    assert len(smtp_sink.to("sam@client.test")) == 1
    assert len(audited(hs, "client.added")) == 2


def test_verbal_consent_needs_the_coachs_attestation(hs, smtp_sink):
    coach_id, client_id = coach_and_client(hs, consent=None)
    http = sign_in(hs, coach_id)
    view = page(http, f"/coach/clients/{client_id}")
    assert 'id="verbal-consent"' in view and 'id="verbal-attest"' in view
    token = csrf(http, f"/coach/clients/{client_id}")
    unattested = post(http, f"/coach/clients/{client_id}/verbal-consent", {"scope": ["record"]}, token)
    assert "tick the box to attest" in " ".join(flashes(page(http, unattested.headers["Location"])))
    no_record = post(http, f"/coach/clients/{client_id}/verbal-consent",
                     {"scope": ["transcribe"], "attest": "yes"}, token)
    assert "need the record scope" in " ".join(flashes(page(http, no_record.headers["Location"])))
    nothing = post(http, f"/coach/clients/{client_id}/verbal-consent", {"attest": "yes"}, token)
    assert "recording is what a consent is about" in " ".join(flashes(page(http, nothing.headers["Location"])))
    with hs.db() as db:
        assert db.exec(select(Consent)).all() == []

    post(http, f"/coach/clients/{client_id}/verbal-consent",
         {"scope": ["record", "transcribe"], "attest": "yes"}, token)
    with hs.db() as db:
        (consent,) = db.exec(select(Consent)).all()
    assert consent.method == "verbal_attested" and consent.scope_set == {"record", "transcribe"}
    (granted,) = audited(hs, "consent.granted")
    assert granted.actor == f"coach:{coach_id}"
    hs.drain()
    (confirmation,) = smtp_sink.to(CLIENT_EMAIL)
    assert "What you agreed" in confirmation["Subject"]
    view = page(http, f"/coach/clients/{client_id}")
    assert "Consent history" in view and "recording, transcript (verbal attested)" in view


def test_an_unmatched_recording_is_assigned_from_the_dashboard(hs, zoom_stub, smtp_sink):
    coach_id, client_id = coach_and_client(hs, scopes="record")
    s = recording(hs, zoom_stub, invitees=[])
    assert s.state == "unmatched"
    http = sign_in(hs, coach_id)
    dashboard = page(http, "/coach")
    assert f'id="attention-{s.id}"' in dashboard and "choose the client" in dashboard
    assert f'id="assign-client-{s.id}"' in dashboard
    assert 'id="assign-client"' in page(http, f"/coach/sessions/{s.id}")
    (note,) = [m for m in smtp_sink.to(COACH_EMAIL) if "needs a client" in m["Subject"]]
    assert f"/coach/sessions/{s.id}" in body_of(note)
    resp = post(http, f"/coach/sessions/{s.id}/assign", {"client_id": client_id, "back": "dashboard"})
    assert resp.status_code == 303
    assert "holdspace is fetching the recording now" in " ".join(flashes(page(http, "/coach")))
    hs.drain()
    assert session_row(hs, id=s.id).state == "delivered"
    assert f'id="attention-{s.id}"' not in page(http, "/coach")


def test_a_refused_recording_is_fetched_once_consent_exists(hs, zoom_stub, smtp_sink):
    coach_id, client_id = coach_and_client(hs, consent=None)
    s = recording(hs, zoom_stub, invitees=[CLIENT_EMAIL])
    assert s.state == "refused_no_consent"
    http = sign_in(hs, coach_id)
    dashboard = page(http, "/coach")
    assert f'id="fetch-{s.id}"' in dashboard and "no consent on record" in dashboard
    token = csrf(http)
    post(http, f"/coach/sessions/{s.id}/fetch", {"back": "dashboard"}, token)
    assert "has not consented yet" in " ".join(flashes(page(http, "/coach")))
    hs.drain()
    assert session_row(hs, id=s.id).state == "refused_no_consent"

    assert 'id="fetch"' in page(http, f"/coach/sessions/{s.id}")  # where the coach's note points
    (note,) = [m for m in smtp_sink.to(COACH_EMAIL) if "Recording not kept" in m["Subject"]]
    assert f"/coach/sessions/{s.id}" in body_of(note)
    post(http, f"/coach/clients/{client_id}/verbal-consent", {"scope": ["record"], "attest": "yes"}, token)
    post(http, f"/coach/sessions/{s.id}/fetch", {"back": "dashboard"}, token)
    hs.drain()
    assert session_row(hs, id=s.id).state == "delivered"
    assert len(audited(hs, "session.fetch_requested")) == 1


def test_delete_a_client_after_confirming(hs, zoom_stub, smtp_sink):
    coach_id, client_id = coach_and_client(hs, scopes="record")
    recording(hs, zoom_stub, invitees=[CLIENT_EMAIL])
    http = sign_in(hs, coach_id)
    confirm = page(http, f"/coach/clients/{client_id}/delete")
    assert "Delete Robin Client?" in confirm and "1 session" in confirm
    token = csrf(http, f"/coach/clients/{client_id}/delete")
    unconfirmed = post(http, f"/coach/clients/{client_id}/delete", {}, token)
    assert unconfirmed.headers["Location"].endswith(f"/coach/clients/{client_id}/delete")
    with hs.db() as db:
        assert db.exec(select(DeletionReceipt)).all() == []
    resp = post(http, f"/coach/clients/{client_id}/delete", {"confirm": "yes"}, token)
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/coach")
    hs.drain()
    with hs.db() as db:
        (receipt,) = db.exec(select(DeletionReceipt)).all()
        client = db.get(Client, client_id)
    assert receipt.completed_at is not None and client.email is None and client.name is None
    assert any("Deletion receipt" in m["Subject"] for m in smtp_sink.to(COACH_EMAIL))


def test_settings_are_checked_audited_and_acted_on(hs, zoom_stub, smtp_sink):
    coach_id, _ = coach_and_client(hs, scopes="record")
    http = sign_in(hs, coach_id)
    view = page(http, "/coach/settings")
    for field in ("delivery_mode", "media_policy", "retention_years", "drop_media_after_days",
                  "trash_zoom_copies", "time_zone", "notify_by", "show_mood_to_client"):
        assert f'name="{field}"' in view, field
    assert 'id="connections"' in view and "/coach/zoom" in view and "/coach/slack" in view
    token = csrf(http, "/coach/settings")
    good = {"delivery_mode": "review", "media_policy": "audio_only", "retention_years": "3",
            "drop_media_after_days": "90", "trash_zoom_copies": "on", "time_zone": "Asia/Tokyo",
            "notify_by": "email", "show_mood_to_client": "on"}
    for bad in ({"time_zone": "Mars/Olympus_Mons"}, {"retention_years": "0"},
                {"retention_years": "many"}, {"media_policy": "keep_everything"},
                {"delivery_mode": "whenever"}, {"drop_media_after_days": "-4"}):
        resp = post(http, "/coach/settings", {**good, **bad}, token)
        assert resp.status_code == 303
        assert flashes(page(http, "/coach/settings")), bad
        with hs.db() as db:
            assert db.get(Coach, coach_id).delivery_mode == "auto", bad  # nothing applied
    post(http, "/coach/settings", good, token)
    with hs.db() as db:
        coach = db.get(Coach, coach_id)
    assert (coach.delivery_mode, coach.media_policy, coach.retention_years, coach.drop_media_after_days,
            coach.trash_zoom_copies, coach.time_zone, coach.notify_by, coach.show_mood_to_client) == \
        ("review", "audio_only", 3, 90, True, "Asia/Tokyo", "email", True)
    (change,) = audited(hs, "coach.settings_changed")
    assert change.actor == f"coach:{coach_id}"
    assert change.detail["retention_years"] == {"from": 7, "to": 3}
    assert change.detail["time_zone"] == {"from": "UTC", "to": "Asia/Tokyo"}
    post(http, "/coach/settings", good, token)
    assert "Nothing changed." in flashes(page(http, "/coach/settings"))
    assert len(audited(hs, "coach.settings_changed")) == 1

    # Acted on: the next recording waits for review, and times read in Tokyo's zone.
    s = recording(hs, zoom_stub, invitees=[CLIENT_EMAIL])
    assert s.state == "ready_for_review"
    dashboard = page(http, "/coach")
    assert f'id="review-{s.id}"' in dashboard and "JST" in dashboard
    # The note asking for the review went by email, as chosen, with the time in Tokyo too.
    hs.drain()
    (note,) = [m for m in smtp_sink.to(COACH_EMAIL) if "Ready for your review" in m["Subject"]]
    assert note["Subject"].endswith(" JST") and f"/coach/sessions/{s.id}" in body_of(note)


def test_another_coachs_clients_and_sessions_are_out_of_reach(hs, zoom_stub, smtp_sink):
    coach_id, client_id = coach_and_client(hs, consent=None)
    s = recording(hs, zoom_stub, invitees=[CLIENT_EMAIL])
    other = hs.run("coach", "add", "--email", "other@coach.test", "--name", "Other Coach")
    http = sign_in(hs, other)
    token = csrf(http)
    for path, data in ((f"/coach/clients/{client_id}/consent-request", {}),
                       (f"/coach/clients/{client_id}/verbal-consent", {"scope": ["record"], "attest": "yes"}),
                       (f"/coach/clients/{client_id}/revoke-links", {}),
                       (f"/coach/clients/{client_id}/delete", {"confirm": "yes"}),
                       (f"/coach/sessions/{s.id}/assign", {"client_id": client_id}),
                       (f"/coach/sessions/{s.id}/fetch", {})):
        assert post(http, path, data, token).status_code == 404, path
    assert http.get(f"/coach/clients/{client_id}/delete").status_code == 404
    hs.drain()
    with hs.db() as db:
        assert db.exec(select(Consent)).all() == [] and db.exec(select(DeletionReceipt)).all() == []
    assert smtp_sink.to(CLIENT_EMAIL) == []


def test_the_audit_trail_filters_and_exports(hs, zoom_stub, smtp_sink):
    import csv
    import io
    coach_id, client_id = coach_and_client(hs, scopes="record")
    recording(hs, zoom_stub, invitees=[CLIENT_EMAIL])
    http = sign_in(hs, coach_id)
    page(http, f"/coach/clients/{client_id}")
    everything = page(http, "/coach/audit")
    assert 'id="audit-filters"' in everything and "dashboard.viewed" in everything

    sessions_only = page(http, "/coach/audit?kind=session")
    actions = set(re.findall(r'<td data-label="What">([^<]+)</td>', sessions_only))
    assert actions and all(a.split(".")[0] in ("session", "summary", "recording", "transcript", "note")
                           for a in actions), actions
    mine = page(http, f"/coach/audit?kind=client&client={client_id}")
    assert "consent.granted" in mine and "dashboard.viewed" not in mine
    future = page(http, "/coach/audit?from=2999-01-01")
    assert "0 events that match" in future
    assert page(http, "/coach/audit?kind=nonsense&from=yesterday&client=../../x")  # ignored, not an error

    export = http.get(f"/coach/audit.csv?kind=client&client={client_id}")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert export.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert rows and {r["action"].split(".")[0] for r in rows} <= {"client", "consent"}
    assert CLIENT_EMAIL not in export.get_data(as_text=True)  # ids, never the client's address
    assert audited(hs, "dashboard.audit_exported")
    other = hs.run("coach", "add", "--email", "other@coach.test", "--name", "Other Coach")
    theirs = sign_in(hs, other).get(f"/coach/audit.csv?client={client_id}")
    assert len(list(csv.DictReader(io.StringIO(theirs.get_data(as_text=True))))) == 0
