"""The pre-session briefing before Google Meet sessions, against the local Google stand-in: a
coach who connected Google from the dashboard is briefed, once, about the Meet events on their
calendar an hour ahead with one consenting client among the guests; nothing goes out for the
events that are not that (no Meet link, cancelled, declined, too far off, under way, no client,
a withdrawn client); a moved event is briefed again; and a coach whose connection has no
calendar access, or a dead token, is skipped quietly while the others are briefed."""

import logging
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from sqlmodel import select

from integrations import google as g
from models import GoogleConnection, utcnow
from tests.googlestub import CLIENT_EMAIL, COACH_EMAIL, GoogleStub
from tests.portalhelpers import path_of

OTHER_CLIENT = "jo.client@example.com"
STRANGER = "stranger@example.com"


@pytest.fixture
def google_stub():
    with GoogleStub() as stub:  # two events a page: every sweep reads several pages
        yield stub


@pytest.fixture
def hs(hs_factory, database_url, google_stub, smtp_sink, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the stand-in speaks plain http
    smtp_sink.clear()
    return hs_factory(database_url, smtp_url=smtp_sink.url, **google_stub.env(),
                      GOOGLE_CLIENT_ID=google_stub.client_id, GOOGLE_CLIENT_SECRET=google_stub.client_secret,
                      GOOGLE_OAUTH_AUTH_URL=google_stub.auth_url, GOOGLE_OAUTH_TOKEN_URL=google_stub.token_url,
                      PUBLIC_BASE_URL="http://holdspace.test", SUMMARY_ENGINE="offline")


def coach_with_clients(hs, coach_email, *clients):
    """A coach and their clients (email, name), each with written consent; the coach's id."""
    coach_id = hs.run("coach", "add", "--email", coach_email, "--name", coach_email.split("@")[0].title())
    for email, name in clients:
        hs.run("client", "add", "--coach-email", coach_email, "--email", email, "--name", name)
        hs.run("consent", "grant", "--client-email", email, "--method", "written")
    return coach_id


def connect_from_dashboard(hs, coach_id):
    """The coach connects Google on the dashboard, consenting to what holdspace asks; the
    scopes it asked for."""
    from portal.coach import login_link
    assert hs.http.get(path_of(login_link(hs.rt, coach_id))).status_code in (200, 302, 303)
    page = hs.http.get("/coach/google").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = hs.http.post("/coach/google/connect", data={"csrf_token": token})
    assert resp.status_code == 303
    asked = parse_qs(urlparse(resp.location).query)["scope"][0].split()
    consent = requests.get(resp.location, allow_redirects=False, timeout=10)
    back = urlparse(consent.headers["Location"])
    assert hs.http.get(f"{back.path}?{back.query}").status_code == 303
    with hs.db() as db:
        assert db.exec(select(GoogleConnection).where(GoogleConnection.coach_id == coach_id)).one().status == "active"
    return asked


def connect_with_token(hs, coach_id, refresh_token, user):
    """What the dashboard's connect stores for a coach, for a grant made earlier."""
    from workers.platforms.meet import TOKEN_PURPOSE
    sealed = hs.rt.vault.seal(refresh_token.encode(), TOKEN_PURPOSE.format(coach_id=coach_id))
    with hs.db() as db:
        db.add(GoogleConnection(coach_id=coach_id, mode="oauth", google_user_id=user.split("/")[1],
                                refresh_token_sealed=sealed, status="active"))
        db.commit()


def briefings_to(smtp_sink, address):
    return [m for m in smtp_sink.to(address) if "Before your" in m["Subject"]]


def body_of(mail) -> str:
    return mail.get_payload(decode=True).decode() if not mail.is_multipart() else str(mail)


def test_meet_events_an_hour_ahead_brief_the_coach_once(hs, google_stub, smtp_sink):
    from workers.briefing import send_upcoming_meet_briefings
    coach_id = coach_with_clients(hs, COACH_EMAIL, (CLIENT_EMAIL, "Sam Rivera"), (OTHER_CLIENT, "Jo Park"))
    asked = connect_from_dashboard(hs, coach_id)
    assert g.SCOPE_CALENDAR_EVENTS in asked and "https://www.googleapis.com/auth/calendar.readonly" not in asked
    assert 'id="google-briefings"' in hs.http.get("/coach/google").get_data(as_text=True)  # how to get them
    now = utcnow()
    at = lambda minutes: now + timedelta(minutes=minutes)  # noqa: E731
    due = google_stub.add_calendar_event(at(50), summary="Sam / coaching", attendees=[CLIENT_EMAIL],
                                         rooms=["room-3@resource.calendar.google.com"])
    google_stub.add_calendar_event(at(30), attendees=[OTHER_CLIENT], meet="video")  # a Meet link only
    google_stub.add_calendar_event(at(20), attendees=[CLIENT_EMAIL], meet="zoom")   # not Meet
    google_stub.add_calendar_event(at(25), attendees=[CLIENT_EMAIL], meet=None)     # no call at all
    google_stub.add_calendar_event(at(35), attendees=[CLIENT_EMAIL], status="cancelled")
    google_stub.add_calendar_event(at(45), attendees=[CLIENT_EMAIL], response="declined")
    google_stub.add_calendar_event(at(90), attendees=[CLIENT_EMAIL])                # too far off
    google_stub.add_calendar_event(at(-10), attendees=[CLIENT_EMAIL])               # under way
    google_stub.add_calendar_event(at(15), attendees=[STRANGER])                    # no client
    google_stub.add_calendar_event(at(40), attendees=[CLIENT_EMAIL, OTHER_CLIENT])  # a group
    smtp_sink.clear()
    google_stub.clear_requests()

    assert send_upcoming_meet_briefings(now=now) == 2
    # Calendar was asked the way the briefing needs: the primary calendar, recurring events
    # expanded, soonest first, bounded by the lead time, with the coach's own token; and
    # every page was read (eight events in the window, the cancelled one hidden, two a page).
    listed = google_stub.requests_to("/calendar/v3/calendars/primary/events", "GET")
    assert [bool(r.param("pageToken")) for r in listed] == [False, True, True, True]
    for r in listed:
        assert r.param("singleEvents") == "true" and r.param("orderBy") == "startTime"
        assert r.param("timeMin") and r.param("timeMax") and r.authorization.startswith("Bearer ya29.")
    assert send_upcoming_meet_briefings(now=at(1)) == 0  # a second sweep sends nothing again
    hs.drain()
    sam, = [m for m in briefings_to(smtp_sink, COACH_EMAIL) if "Sam Rivera" in m["Subject"]]
    jo, = [m for m in briefings_to(smtp_sink, COACH_EMAIL) if "Jo Park" in m["Subject"]]
    assert len(briefings_to(smtp_sink, COACH_EMAIL)) == 2
    assert f"{at(50):%H:%M} UTC" in sam["Subject"]  # Google wrote the time at +05:30
    assert f"{at(30):%H:%M} UTC" in jo["Subject"]
    assert "Briefing: Sam Rivera" in body_of(sam)

    # The coach drags the session later: the new time gets its own briefing, once.
    google_stub.move_calendar_event(due["id"], at(55))
    assert send_upcoming_meet_briefings(now=at(2)) == 1
    assert send_upcoming_meet_briefings(now=at(3)) == 0
    hs.drain()
    moved = [m for m in briefings_to(smtp_sink, COACH_EMAIL) if f"{at(55):%H:%M} UTC" in m["Subject"]]
    assert len(moved) == 1 and "Sam Rivera" in moved[0]["Subject"]
    assert briefings_to(smtp_sink, CLIENT_EMAIL) == [] and briefings_to(smtp_sink, STRANGER) == []


def test_a_client_who_withdrew_gets_no_briefing(hs, google_stub, smtp_sink):
    from workers.briefing import send_upcoming_meet_briefings
    user = "users/40001"
    coach_id = coach_with_clients(hs, COACH_EMAIL, (CLIENT_EMAIL, "Sam Rivera"))
    connect_with_token(hs, coach_id, google_stub.issue_refresh_token(user, g.OAUTH_SCOPES), user)
    hs.run("consent", "withdraw", "--client-email", CLIENT_EMAIL)
    now = utcnow()
    google_stub.add_calendar_event(now + timedelta(minutes=50), user=user, attendees=[CLIENT_EMAIL])
    smtp_sink.clear()
    assert send_upcoming_meet_briefings(now=now) == 0
    hs.drain()
    assert briefings_to(smtp_sink, COACH_EMAIL) == []


def test_a_coach_without_calendar_access_is_skipped_and_the_others_are_briefed(hs, google_stub, smtp_sink,
                                                                                caplog):
    from workers.briefing import send_upcoming_meet_briefings
    now = utcnow()
    # Connected before briefings were offered: Meet's scopes only, so Calendar answers 403.
    old, old_user = "early@example.com", "users/50001"
    old_id = coach_with_clients(hs, old, ("early.client@example.com", "Early Client"))
    old_token = google_stub.issue_refresh_token(old_user, (*g.SIGN_IN_SCOPES, *g.SCOPES))
    connect_with_token(hs, old_id, old_token, old_user)
    google_stub.add_calendar_event(now + timedelta(minutes=50), user=old_user, owner_email=old,
                                   attendees=["early.client@example.com"])
    # A coach whose grant Google has revoked meanwhile.
    gone, gone_user = "gone@example.com", "users/50002"
    gone_id = coach_with_clients(hs, gone, ("gone.client@example.com", "Gone Client"))
    gone_token = google_stub.issue_refresh_token(gone_user, g.OAUTH_SCOPES)
    connect_with_token(hs, gone_id, gone_token, gone_user)
    google_stub.revoke_refresh_token(gone_token)
    # And a coach connected with the calendar scope, swept last.
    user = "users/50003"
    coach_id = coach_with_clients(hs, COACH_EMAIL, (CLIENT_EMAIL, "Sam Rivera"))
    connect_with_token(hs, coach_id, google_stub.issue_refresh_token(user, g.OAUTH_SCOPES), user)
    google_stub.add_calendar_event(now + timedelta(minutes=50), user=user, attendees=[CLIENT_EMAIL])
    smtp_sink.clear()

    caplog.set_level(logging.DEBUG, logger="workers.briefing")
    assert send_upcoming_meet_briefings(now=now) == 1
    assert send_upcoming_meet_briefings(now=now + timedelta(minutes=1)) == 0  # and again, quietly
    hs.drain()
    (mail,) = briefings_to(smtp_sink, COACH_EMAIL)
    assert "Sam Rivera" in mail["Subject"]
    # Nothing, not even an error, for the other two; their connections are left as they were.
    assert smtp_sink.to(old) == [] and smtp_sink.to(gone) == []
    with hs.db() as db:
        assert {c.status for c in db.exec(select(GoogleConnection))} == {"active"}
    denied = [r for r in google_stub.requests_to("/calendar/v3/") if r.authorization]
    assert len(denied) == 4  # both sweeps asked Calendar for the early and the current coach
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "workers.briefing"]
    # No calendar access is not a fault: no warning every few minutes for it. A dead token is.
    assert [level for level, text in records if old_id in text] == [logging.DEBUG] * 2
    assert [level for level, text in records if gone_id in text] == [logging.WARNING] * 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (old_token, gone_token, "ya29.", "1//", CLIENT_EMAIL, "early.client@example.com",
                   "gone.client@example.com"):
        assert secret not in logged


@pytest.mark.parametrize("item, expected", [
    ({"status": "cancelled"}, None),
    ({"attendees": [{"email": COACH_EMAIL, "self": True, "responseStatus": "declined"}]}, None),
    ({"start": {"date": "2031-03-04"}}, None),                                          # all day
    ({"conferenceData": None, "hangoutLink": "https://meet.google.com.example.net/abc-defg-hij"}, None),
    ({"conferenceData": None, "hangoutLink": "http://meet.google.com/abc-defg-hij"}, None),
    ({"conferenceData": None}, "abc-defg-hij"),                        # hangoutLink alone is enough
    ({"hangoutLink": None, "conferenceData": {"conferenceSolution": {"key": {"type": "hangoutsMeet"}},
                                              "conferenceId": "abc-defg-hij"}}, "abc-defg-hij"),
])
def test_what_counts_as_a_meet_event(item, expected):
    base = {"id": "e1", "status": "confirmed", "summary": "Coaching",
            "start": {"dateTime": "2031-03-04T20:30:00+05:30"},
            "organizer": {"email": CLIENT_EMAIL},   # the client sent the invitation
            "attendees": [{"email": CLIENT_EMAIL, "organizer": True, "responseStatus": "accepted"},
                          {"email": COACH_EMAIL, "self": True, "responseStatus": "accepted"},
                          {"email": "room@resource.calendar.google.com", "resource": True}],
            "hangoutLink": "https://meet.google.com/abc-defg-hij",
            "conferenceData": {"conferenceSolution": {"key": {"type": "hangoutsMeet"}},
                               "conferenceId": "abc-defg-hij",
                               "entryPoints": [{"entryPointType": "video",
                                                "uri": "https://meet.google.com/abc-defg-hij"}]}}
    event = g.meet_event({**base, **item})
    if expected is None:
        assert event is None
        return
    assert event["meet_code"] == expected and event["meet_link"] == "https://meet.google.com/abc-defg-hij"
    assert event["attendees"] == [CLIENT_EMAIL]          # not the coach, not the room
    assert event["start"].utcoffset() == timedelta(0) and f"{event['start']:%H:%M}" == "15:00"
