"""The /holdspace slash command, signed with slack_sdk's own signer: every subcommand and its
errors, the signature and freshness checks, unknown users, the response_url path for slow
commands, and notifications to the coach's DM."""

import secrets
import time
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier
from sqlmodel import select

from models import CoachingSession, Consent, DeletionReceipt, PrivateNote
from tests.portalhelpers import delivered_session
from tests.slackstub import BOT_TOKEN, SlackStub
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, coach_and_client, post_zoom
from tests.zoomstub import load_fixture, register_fixture_files

SECRET = "slack-signing-secret-for-tests"
COACH_SLACK = "U0COACH1"


@pytest.fixture
def slack():
    stub = SlackStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink, slack):
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, SLACK_SIGNING_SECRET=SECRET,
                    SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_BASE_URL=slack.api_base_url,
                    TRANSCRIBE_ENGINE="platform", SUMMARY_ENGINE="offline", PLATFORM_TRANSCRIPT_WAIT_SECONDS=0)
    return hs


def with_slack_coach(hs, **kw):
    coach_id, client_id = coach_and_client(hs, **kw)
    from models import Coach
    with hs.db() as db:
        coach = db.get(Coach, coach_id)
        coach.slack_user_id = COACH_SLACK
        db.add(coach)
        db.commit()
    return coach_id, client_id


def slash(hs, text, user=COACH_SLACK, secret=SECRET, timestamp=None, response_url=None, slack=None):
    # Slack gives every invocation its own trigger_id, so no two requests are the same bytes.
    body = urlencode({"command": "/holdspace", "text": text, "user_id": user, "team_id": "T1",
                      "trigger_id": secrets.token_hex(8),
                      "response_url": response_url or (slack.response_url() if slack else "https://hooks.slack.com/x")}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return post_signed(hs, body, ts, SignatureVerifier(secret).generate_signature(timestamp=ts, body=body))


def post_signed(hs, body: bytes, ts: str, sig: str):
    return hs.http.post("/slack/commands", data=body, content_type="application/x-www-form-urlencoded",
                        headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig})


def reply(resp):
    assert resp.status_code == 200, resp.data
    data = resp.get_json()
    assert data["response_type"] == "ephemeral"
    return data["text"]


def test_signature_and_freshness(hs, slack):
    with_slack_coach(hs)
    assert slash(hs, "help", secret="wrong").status_code == 401
    assert slash(hs, "help", timestamp=int(time.time()) - 301).status_code == 401
    body = b"command=%2Fholdspace&text=help&user_id=U0COACH1"
    assert hs.http.post("/slack/commands", data=body, content_type="application/x-www-form-urlencoded").status_code == 401
    assert "holdspace commands" in reply(slash(hs, "help"))


@pytest.mark.parametrize("ts", ["\u00b2", "9" * 5000, "-1", "", "1e9", " 1700000000"])
def test_odd_timestamps_are_401_not_500(hs, ts):
    with_slack_coach(hs)
    body = b"command=%2Fholdspace&text=help&user_id=U0COACH1"
    assert post_signed(hs, body, ts, SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
                       ).status_code == 401


def test_a_replayed_request_is_refused_inside_the_window(hs):
    with_slack_coach(hs)
    body = b"command=%2Fholdspace&text=clients&user_id=U0COACH1&trigger_id=t1"
    ts = str(int(time.time()))
    sig = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
    assert post_signed(hs, body, ts, sig).status_code == 200
    replayed = post_signed(hs, body, ts, sig)
    assert replayed.status_code == 401 and "already received" in replayed.get_json()["error"]


def test_not_configured_is_503(hs_factory, database_url):
    hs = hs_factory(database_url)
    assert slash(hs, "help").status_code == 503


def test_unknown_user_gets_a_polite_answer(hs):
    with_slack_coach(hs)
    text = reply(slash(hs, "clients", user="U0STRANGER"))
    assert "isn't connected" in text and CLIENT_EMAIL not in text


def test_help_and_unknown_and_usage(hs):
    with_slack_coach(hs)
    assert "`/holdspace search <words>`" in reply(slash(hs, "help"))
    assert "`/holdspace assign" in reply(slash(hs, "help assign"))
    assert "I don't know `frobnicate`" in reply(slash(hs, "frobnicate"))
    for text in ("assign", "note onlyone", "consent", "consent shout a@b.c", "resend", "revoke", "delete",
                 "delete planet x", "brief"):
        assert "Usage: /holdspace" in reply(slash(hs, text, slack=None)) or "Working on" in reply(slash(hs, text))


def test_clients_and_consent_commands(hs, smtp_sink):
    with_slack_coach(hs, consent=None)
    assert "Robin Client <client@example.com> — consent: none" in reply(slash(hs, "clients"))
    out = reply(slash(hs, 'consent request new.person@example.com "New Person"'))
    assert "Added New Person" in out
    hs.drain()
    assert smtp_sink.to("new.person@example.com"), "the consent email"
    assert "doesn't look like an email" in reply(slash(hs, "consent request not-an-email"))
    assert "verbal consent" in reply(slash(hs, f"consent verbal {CLIENT_EMAIL}"))
    status = reply(slash(hs, f"consent status <mailto:{CLIENT_EMAIL}|{CLIENT_EMAIL}>"))
    assert "verbal attested" in status and "recording, transcript, summary, downloads" in status
    with hs.db() as db:
        assert db.exec(select(Consent).where(Consent.method == "verbal_attested")).one()
    assert "No client with email ghost@example.com" in reply(slash(hs, "consent status ghost@example.com"))


def delivered_to_slack_coach(hs, zoom_stub, smtp_sink):
    """A delivered session whose coach works from Slack: (session link path, session)."""
    from models import Coach
    payload, path = delivered_session(hs, zoom_stub, smtp_sink)
    with hs.db() as db:
        coach = db.exec(select(Coach)).one()
        coach.slack_user_id = COACH_SLACK
        db.add(coach)
        db.commit()
        return path, db.exec(select(CoachingSession)).one()


def test_sessions_note_resend_revoke_delete(hs, zoom_stub, smtp_sink, slack):
    path, session = delivered_to_slack_coach(hs, zoom_stub, smtp_sink)
    listing = reply(slash(hs, "sessions"))
    assert session.id in listing and "delivered" in listing
    assert session.id in reply(slash(hs, f"sessions {CLIENT_EMAIL}"))
    assert "Private note saved" in reply(slash(hs, f"note {session.id} She lights up talking about design"))
    with hs.db() as db:
        assert db.exec(select(PrivateNote)).one().body == "She lights up talking about design"
    assert "No session nope" in reply(slash(hs, "note nope text"))
    before = len(smtp_sink.to(CLIENT_EMAIL))
    assert "fresh link" in reply(slash(hs, f"resend {session.id}"))
    hs.drain()
    assert len(smtp_sink.to(CLIENT_EMAIL)) == before + 1
    assert "Revoked 2 links" in reply(slash(hs, f"revoke {session.id}"))
    assert hs.http.get(path).status_code == 410
    ask = reply(slash(hs, f"delete session {session.id}"))
    assert "To go ahead" in ask and "confirm" in ask
    code = ask.rsplit("confirm ", 1)[1].strip("`\n ")
    assert "Deleting session" not in reply(slash(hs, f"delete session {session.id} confirm 000000"))
    assert "Deleting session" in reply(slash(hs, f"delete session {session.id} confirm {code}"))
    hs.drain()
    with hs.db() as db:
        assert db.exec(select(CoachingSession)).all() == []
        assert db.exec(select(DeletionReceipt)).one().completed_at
    assert any("Deletion receipt" in m for m in slack.dms_to(COACH_SLACK))


def test_delete_client_needs_confirmation(hs):
    with_slack_coach(hs)
    ask = reply(slash(hs, f"delete client {CLIENT_EMAIL}"))
    code = ask.rsplit("confirm ", 1)[1].strip("`\n ")
    assert "Deleting everything about Robin Client" in reply(slash(hs, f"delete client {CLIENT_EMAIL} confirm {code}"))
    assert "No client" in reply(slash(hs, "delete client ghost@example.com"))


def test_assign_an_unmatched_recording(hs, zoom_stub, smtp_sink, slack):
    with_slack_coach(hs)
    payload, body = load_fixture("recording_completed_audio_only", zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload, invitees=())
    zoom_stub.meeting(payload["payload"]["object"]["uuid"]).participants = []
    post_zoom(hs.http, body)
    hs.drain()
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
    assert session.state == "unmatched"
    assert any("needs a client" in m for m in slack.dms_to(COACH_SLACK))  # notified in Slack, not by email
    out = reply(slash(hs, f"assign {session.id} {CLIENT_EMAIL}"))
    assert "Assigned to Robin Client" in out
    hs.drain()
    with hs.db() as db:
        assert db.get(CoachingSession, session.id).state in ("stored", "transcribing", "summarising", "delivered")
    assert "not waiting for a client" in reply(slash(hs, f"assign {session.id} {CLIENT_EMAIL}"))


def test_slow_commands_answer_through_response_url(hs, zoom_stub, smtp_sink, slack):
    delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    from models import Coach
    with hs.db() as db:
        coach = db.exec(select(Coach)).one()
        coach.slack_user_id = COACH_SLACK
        db.add(coach)
        db.commit()
    started = time.monotonic()
    ack = reply(slash(hs, "search budget", slack=slack))
    assert time.monotonic() - started < 3 and "Working on `search`" in ack
    ack = reply(slash(hs, f"brief {CLIENT_EMAIL}", slack=slack))
    assert "Working on `brief`" in ack
    assert slack.responses == []
    hs.drain()
    texts = [r["text"] for r in slack.responses]
    assert len(texts) == 2
    assert texts[0].startswith(("Found", "Nothing found"))
    assert "Briefing: Robin Client" in texts[1]
    assert all(r["response_type"] == "ephemeral" for r in slack.responses)
    # A reply address that is not Slack's is refused.
    assert slash(hs, "search budget", response_url="http://169.254.169.254/latest").status_code == 400


def test_status(hs):
    with_slack_coach(hs)
    out = reply(slash(hs, "status"))
    assert "Sessions" in out and "Queue:" in out


def test_refusal_is_sent_to_the_coach_in_slack(hs, zoom_stub, smtp_sink, slack):
    with_slack_coach(hs, consent=None)
    payload, body = load_fixture("recording_completed", zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload)
    post_zoom(hs.http, body)
    hs.drain()
    (dm,) = slack.dms_to(COACH_SLACK)
    assert "no consent" in dm.lower()
    assert smtp_sink.to(COACH_EMAIL) == []


def test_dashboard_and_connect_give_one_time_sign_in_links(hs):
    with_slack_coach(hs)
    text = reply(slash(hs, "dashboard"))
    link = text.rsplit(" ", 1)[1]
    assert "/coach/auth/" in link
    path = "/" + link.split("/", 3)[3]
    assert hs.http.get(path).status_code in (302, 303)  # signed in
    assert hs.http.get("/coach").status_code == 200
    connect = reply(slash(hs, "connect google"))
    assert "/coach/auth/" in connect and "Connect Google Meet" in connect
    zoom = reply(slash(hs, "connect zoom"))
    assert "/coach/auth/" in zoom and "Connect your Zoom" in zoom
    assert "Usage: /holdspace connect zoom | connect google" in reply(slash(hs, "connect teams"))
    resp = slash(hs, "dashboard")
    assert resp.get_json()["unfurl_links"] is False  # no link preview may use up the link


def test_a_revoked_session_leaves_the_journey_and_gets_no_fresh_link_until_reshared(
        hs, zoom_stub, smtp_sink, slack):
    import re
    from models import Link
    from tests.portalhelpers import links_in, path_of
    path, session = delivered_to_slack_coach(hs, zoom_stub, smtp_sink)
    journey = re.search(r'href="(/j/[^"]+)"', hs.http.get(path).get_data(as_text=True)).group(1)
    listed = '<ol class="sessions"><li>'
    assert session.topic and listed in hs.http.get(journey).get_data(as_text=True)
    answer = reply(slash(hs, f"revoke {session.id}"))
    assert "final" in answer and f"resend {session.id}" in answer
    page = hs.http.get(journey)
    assert page.status_code == 200 and listed not in page.get_data(as_text=True)
    # The "email me a fresh link" form on the revoked page sends nothing.
    before = len(smtp_sink.to(CLIENT_EMAIL))
    assert hs.http.post("/links/fresh", data={"token": path.rsplit("/", 1)[1],
                                              "email": CLIENT_EMAIL}).status_code == 200
    hs.drain()
    assert len(smtp_sink.to(CLIENT_EMAIL)) == before
    # The coach shares it again: a new link, and the journey shows it once more.
    assert "fresh link" in reply(slash(hs, f"resend {session.id}"))
    hs.drain()
    (fresh,) = [u for u in links_in(smtp_sink.to(CLIENT_EMAIL)[-1]) if "/s/" in u]
    assert hs.http.get(path_of(fresh)).status_code == 200
    assert listed in hs.http.get(journey).get_data(as_text=True)
    with hs.db() as db:
        assert db.exec(select(Link).where(Link.revoked_at.is_(None), Link.purpose == "session")).all()


def test_a_coach_who_chose_email_is_told_by_email(hs, slack, smtp_sink):
    from models import Coach, OutboundMessage
    from workers import notify
    coach_id, _ = with_slack_coach(hs)
    for choice, channel in (("slack", "slack"), ("email", "email")):
        with hs.db() as db:
            coach = db.get(Coach, coach_id)
            coach.notify_by = choice
            db.commit()
            message = notify.tell_coach(db, hs.rt, coach, key=f"channel-test:{choice}", subject="A note",
                                        body="Something to know.")
            db.commit()
            assert db.get(OutboundMessage, message.id).channel == channel, choice
