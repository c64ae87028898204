"""Every email to a client, as the SMTP sink receives it: text and HTML, sent as "Coach Name via
holdspace" with replies going to the coach, and (but for the consent request and a withdrawn
client's receipt) a footer link to the client's consent page that opens it."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.utils import getaddresses

import pytest
from sqlmodel import select

from models import Coach, Link, utcnow
from tests.portalhelpers import delivered_session, path_of
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, coach_and_client, post_zoom
from tests.zoomstub import load_fixture, register_fixture_files

HREF = re.compile(r'href="(http[^"]+)"')


@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    return hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url,
                      MAIL_FROM="holdspace <mail@practice.test>")


def parts(message) -> dict[str, str]:
    assert message.get_content_type() in ("multipart/alternative", "multipart/mixed"), message.get_content_type()
    return {part.get_content_type(): part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
            for part in message.walk() if part.get_content_type() in ("text/plain", "text/html")}


def sender(message) -> tuple[str, str]:
    ((name, address),) = getaddresses([str(message["From"])])
    return str(make_header(decode_header(name))), address


def assert_from_the_coach(message, coach_name: str = "Casey Coach"):
    assert sender(message) == (f"{coach_name} via holdspace", "mail@practice.test")
    assert str(message["Reply-To"]) == COACH_EMAIL


def test_every_client_email_is_html_and_text_from_the_coach(hs, zoom_stub, smtp_sink):
    _, session_path = delivered_session(hs, zoom_stub, smtp_sink)
    hs.run("consent", "request", "--client-email", CLIENT_EMAIL)
    hs.drain()
    mails = smtp_sink.to(CLIENT_EMAIL)
    (session_mail,) = [m for m in mails if "Your session with" in m["Subject"]]
    (request_mail,) = [m for m in mails if "asks for your consent" in m["Subject"]]
    for mail in (session_mail, request_mail):
        assert_from_the_coach(mail)
        both = parts(mail)
        assert set(both) == {"text/plain", "text/html"}
        assert '<html lang="en">' in both["text/html"] and "<title>" in both["text/html"]
        for url in HREF.findall(both["text/html"]):
            if "/s/" in url or "/c/" in url:
                assert hs.http.get(path_of(url)).status_code == 200, url
    # The session email's footer opens the client's consent page.
    html = parts(session_mail)["text/html"]
    (consent,) = [u for u in HREF.findall(html) if "/c/" in u]
    assert "consent" in hs.http.get(path_of(consent)).get_data(as_text=True).lower()
    assert "/c/" in parts(session_mail)["text/plain"]
    # The coach's own notes still come from holdspace, with no reply-to.
    note = next(m for m in smtp_sink.to(COACH_EMAIL))
    assert sender(note)[0] == "holdspace" and note["Reply-To"] is None

    # A fresh link, asked for on an expired page: the same, and the footer reuses the live
    # consent link rather than making a new one per email.
    with hs.db() as db:
        consent_links = len(db.exec(select(Link).where(Link.purpose == "consent")).all())
        for link in db.exec(select(Link).where(Link.purpose == "session")):
            link.revoked_at = utcnow()  # the client's page link no longer works
        db.commit()
    token = session_path.rsplit("/", 1)[1]
    assert hs.http.post("/links/fresh", data={"token": token, "email": CLIENT_EMAIL}).status_code == 200
    hs.drain()
    (fresh,) = [m for m in smtp_sink.to(CLIENT_EMAIL) if "fresh" in m["Subject"]]
    assert_from_the_coach(fresh)
    assert {"text/plain", "text/html"} == set(parts(fresh))
    assert "/c/" in parts(fresh)["text/html"]
    with hs.db() as db:
        assert len(db.exec(select(Link).where(Link.purpose == "consent")).all()) == consent_links


def test_a_withdrawn_clients_receipt_names_the_coach_and_links_no_consent_page(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink)
    hs.run("consent", "request", "--client-email", CLIENT_EMAIL)
    hs.drain()
    consent_url = [u for m in smtp_sink.to(CLIENT_EMAIL) for u in HREF.findall(parts(m)["text/html"])
                   if "/c/" in u][-1]
    assert hs.http.post(path_of(consent_url) + "/withdraw", data={"confirm": "yes"}).status_code == 200
    hs.drain()
    (receipt,) = [m for m in smtp_sink.to(CLIENT_EMAIL) if "deletion receipt" in m["Subject"]]
    assert_from_the_coach(receipt)
    both = parts(receipt)
    assert COACH_EMAIL in both["text/plain"] and COACH_EMAIL in both["text/html"]
    assert "/c/" not in both["text/plain"] + both["text/html"]
    assert any(p.get_filename() for p in receipt.walk())  # the signed receipt is still attached


def test_a_coach_name_with_commas_and_accents_survives_the_header(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink)
    with hs.db() as db:
        coach = db.exec(select(Coach)).one()
        coach.name = "Zoë Ångström, PhD"
        db.commit()
    hs.run("consent", "request", "--client-email", CLIENT_EMAIL)
    hs.drain()
    (mail,) = [m for m in smtp_sink.to(CLIENT_EMAIL) if "asks for your consent" in m["Subject"]]
    assert sender(mail) == ("Zoë Ångström, PhD via holdspace", "mail@practice.test")


def test_the_session_email_names_the_day_as_the_coach_lived_it(hs, zoom_stub, smtp_sink):
    # The fixture's meeting starts at 07:30 UTC on Wednesday 15 May 2024: still the evening
    # of Tuesday 14 May for a coach in Pago Pago (UTC-11), which is the day the client was there.
    coach_id, _ = coach_and_client(hs, scopes="record,share_with_client")
    with hs.db() as db:
        coach = db.get(Coach, coach_id)
        coach.time_zone = "Pacific/Pago_Pago"
        db.commit()
    payload, body = load_fixture("recording_completed_audio_only", zoom_stub.base_url)
    assert payload["payload"]["object"]["start_time"] == "2024-05-15T07:30:00Z"
    register_fixture_files(zoom_stub, payload)
    assert post_zoom(hs.http, body).status_code == 200
    hs.drain()
    (mail,) = [m for m in smtp_sink.to(CLIENT_EMAIL) if "Your session with" in m["Subject"]]
    assert mail["Subject"] == "Your session with Casey Coach on Tuesday 14 May 2024"
    assert "Tuesday 14 May 2024" in parts(mail)["text/plain"] and "Wednesday" not in parts(mail)["text/plain"]
