"""Consent given and withdrawn by the client in a real browser: the written consent carries
the browser's own evidence, it lets the next recording through, and withdrawing it kills
every link the client ever got."""

from sqlmodel import select

from models import CoachingSession, Consent
from tests.browser.pages import WIDTHS, looked_at
from tests.browser.support import deliver_recording, emailed_link
from tests.portalhelpers import path_of
from tests.zoomhelpers import CLIENT_EMAIL, coach_and_client

SCOPES = ("record", "transcribe", "summarise", "share_with_client")


def test_consent_granted_then_withdrawn_kills_every_link(hs, zoom_stub, smtp_sink, browse):
    coach_and_client(hs, consent=None)
    hs.run("consent", "request", "--client-email", CLIENT_EMAIL)
    hs.drain()
    consent_url = emailed_link(smtp_sink, "/c/")
    tab = browse()
    page = tab.page

    # Asked first, nothing ticked; the page passes axe at both widths before anything is given.
    assert tab.goto(consent_url).status == 200
    assert page.locator("#withdraw").count() == 0
    assert page.locator('#consent-form input[name="scope"]:checked').count() == 0
    looked_at(tab, "client-consent-first", widths=WIDTHS.values())

    # Grant: tick the boxes, submit.
    for words in ("What is recorded", "Where it is stored", "Who can see it", "How long it is kept"):
        assert words in page.inner_text("main"), words
    for scope in SCOPES:
        page.check(f'#consent-form input[name="scope"][value="{scope}"]')
    with page.expect_navigation() as nav:
        page.click("#grant")
    assert nav.value.status == 200
    assert page.inner_text("#notice") == "Thank you. Your choice is saved."
    assert page.inner_text("#current strong") == "Recording, A transcript, A summary, Downloads"
    user_agent = page.evaluate("navigator.userAgent")
    with hs.db() as db:
        (consent,) = db.exec(select(Consent)).all()
    assert consent.withdrawn_at is None and consent.method == "written"
    assert consent.scopes == ",".join(SCOPES)
    assert consent.evidence_user_agent == user_agent and "Chrome" in user_agent
    assert consent.evidence_ip == "127.0.0.1" and len(consent.text_sha256) == 64

    # That consent lets a recording through; the client now holds every kind of link.
    session_url = deliver_recording(hs, zoom_stub, smtp_sink)
    assert tab.goto(session_url).status == 200
    journey_url = page.locator("#journey").evaluate("a => a.href")
    links = {"session page": session_url, "media": session_url + "/media",
             "consent page": consent_url, "journey": journey_url}
    for what, url in links.items():
        assert hs.http.get(path_of(url)).status_code in (200, 206), what

    # Withdraw: the browser will not submit without the confirmation box ticked.
    assert tab.goto(consent_url).status == 200
    page.click("#withdraw")
    assert page.url == consent_url
    assert not page.evaluate("document.getElementById('confirm-withdraw').validity.valid")
    with hs.db() as db:
        assert db.exec(select(Consent).where(Consent.withdrawn_at.is_(None))).all() == [consent]
    page.check("#confirm-withdraw")
    with page.expect_navigation() as nav:
        page.click("#withdraw")
    assert nav.value.status == 200 and page.inner_text("h1") == "Your consent is withdrawn"
    hs.drain()

    # Every link is dead, in the browser and over HTTP; none offers a fresh one.
    for what, url in links.items():
        response = tab.goto(url)
        assert response.status == 410, what
        assert hs.http.get(path_of(url)).status_code == 410, what
        if what != "media":
            assert page.inner_text("h1") == "This link no longer works", what
            assert page.locator("form.fresh").count() == 0, what
    with hs.db() as db:
        assert db.exec(select(CoachingSession)).all() == []
        assert db.exec(select(Consent).where(Consent.withdrawn_at.is_(None))).all() == []
