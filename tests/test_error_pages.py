"""What a person's browser is answered when something is wrong: a page of ours with a title
and a language, for every status, while the platforms' routes keep their JSON; and the link to
the consent page that every client page carries."""

from __future__ import annotations

import re

import pytest

from tests.portalhelpers import delivered_session

PAGE = re.compile(r'<html lang="en">.*<title>([^<]+)</title>', re.S)


@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    return hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url)


def assert_page(resp, status: int, title: str):
    assert resp.status_code == status
    assert resp.headers["Content-Type"].startswith("text/html")
    found = PAGE.search(resp.get_data(as_text=True))
    assert found and found.group(1) == title, resp.get_data(as_text=True)[:300]
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_people_get_pages_and_machines_get_json(hs, zoom_stub, smtp_sink):
    _, path = delivered_session(hs, zoom_stub, smtp_sink)
    truncated = path[:-6]
    assert_page(hs.http.get(truncated), 404, "Link not found")
    assert_page(hs.http.get(truncated + "/media"), 404, "Link not found")
    assert_page(hs.http.get("/favicon.ico"), 404, "Link not found")
    assert_page(hs.http.get("/no/such/page"), 404, "Link not found")
    assert_page(hs.http.delete(path), 405, "Not available")
    refused = hs.http.get(f"{path}/transcript.vtt")  # the default scopes: no transcript here
    assert refused.status_code in (403, 404) and refused.headers["Content-Type"].startswith("text/html")

    # Zoom, Google, Slack and a monitor still get a short JSON answer.
    for machine in ("/webhooks/zoom", "/webhooks/google", "/slack/commands", "/slack/events"):
        resp = hs.http.get(machine)
        assert resp.status_code == 405 and resp.is_json and "error" in resp.get_json(), machine
    assert hs.http.post("/webhooks/zoom", data=b"{").is_json


def test_every_client_page_links_to_the_clients_consent_page(hs, zoom_stub, smtp_sink):
    _, path = delivered_session(hs, zoom_stub, smtp_sink)
    session_page = hs.http.get(path).get_data(as_text=True)
    (consent,) = re.findall(r'id="consent-link" href="([^"]+)"', session_page)
    opened = hs.http.get(consent)
    assert opened.status_code == 200 and "consent" in opened.get_data(as_text=True).lower()
    # Opening the page again reuses the same live consent link rather than making another.
    again = re.findall(r'id="consent-link" href="([^"]+)"', hs.http.get(path).get_data(as_text=True))
    assert again == [consent]
    journey = re.search(r'id="journey" href="([^"]+)"', session_page).group(1)
    assert re.findall(r'id="consent-link" href="([^"]+)"', hs.http.get(journey).get_data(as_text=True)) == [consent]


def test_the_consent_page_reads_as_paragraphs_in_plain_words(hs, smtp_sink):
    from models import consent_text
    from tests.portalhelpers import links_in, path_of
    from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, coach_and_client
    coach_and_client(hs, consent=None)
    hs.run("consent", "request", "--client-email", CLIENT_EMAIL)
    hs.drain()
    (url,) = links_in(smtp_sink.to(CLIENT_EMAIL)[0])
    import html as markup
    html = markup.unescape(hs.http.get(path_of(url)).get_data(as_text=True))
    assert "<pre" not in html and "share_with_client</" not in html
    # Every sentence of the agreed text is on the page whole, not broken where it was wrapped.
    flowing = " ".join(consent_text.TEXT.split())
    for heading, words in consent_text.paragraphs():
        assert words in html and words in flowing
        assert "\n" not in words
    assert [h for h, _ in consent_text.paragraphs() if h] == [
        "What is recorded", "Where it is stored", "Who can see it", "How long it is kept", "Your right to withdraw"]
    assert "Downloads" in html and "keep your own copy" in html
    # Not yet consented: agreeing comes first, no withdrawal of what was never given, no box pre-ticked.
    assert 'id="grant"' in html and 'id="withdraw"' not in html and " checked" not in html
    assert html.index('id="consent-form"') < html.index('id="not-now"')
    assert COACH_EMAIL in html

    hs.http.post(path_of(url), data={"scope": ["record", "transcribe"]})
    html = hs.http.get(path_of(url)).get_data(as_text=True)
    assert "You currently agree to: <strong>Recording, A transcript</strong>" in html
    assert html.index('id="consent-form"') < html.index('id="withdraw-form"')
    done = hs.http.post(path_of(url) + "/withdraw", data={"confirm": "yes"})
    assert done.status_code == 200 and COACH_EMAIL in done.get_data(as_text=True)
