"""Every page a client or a coach opens, in Debian's chromium at 1366 and 390 px: axe-core finds
no WCAG 2.2 A/AA violation, nothing scrolls sideways, and a screenshot of each lands in
var/screenshots/. On the way the coach does the day's work in the browser: turns on review
before send in the settings, reviews, edits and sends a summary, and assigns an unmatched
recording; the client opens their session, journey and consent pages and withdraws."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models import Coach, Summary
from portal.coach import login_link
from tests.browser.pages import WIDTHS, looked_at
from tests.browser.support import coach_after_a_delivery, deliver_recording, post_recording
from tests.portalhelpers import body_of
from tests.zoomhelpers import CLIENT_EMAIL, coach_and_client


@pytest.fixture(params=sorted(WIDTHS))
def width(request):
    return request.param


def test_client_pages(hs, zoom_stub, smtp_sink, browse, width):
    coach_and_client(hs)  # every scope
    session_url = deliver_recording(hs, zoom_stub, smtp_sink)
    tab = browse(viewport=WIDTHS[width])
    page = tab.page
    assert tab.goto(session_url).status == 200
    looked_at(tab, "client-session")
    journey_url = page.locator("#journey").evaluate("a => a.href")
    consent_url = page.locator("#consent-link").evaluate("a => a.href")
    assert tab.goto(journey_url).status == 200
    looked_at(tab, "client-journey")
    assert tab.goto(consent_url).status == 200
    looked_at(tab, "client-consent")

    # Downloads taken off on the consent page: the session page says so, and how to change it.
    for scope in ("share_with_client",):
        page.uncheck(f'#consent-form input[value="{scope}"]')
    with page.expect_navigation():
        page.click("#grant")
    assert tab.goto(session_url).status == 200
    assert page.locator("#downloads-off").is_visible()
    assert "nodownload" in page.locator("#player").get_attribute("controlslist")
    looked_at(tab, "client-session-no-downloads")
    # Asked for outright, the recording is refused with a page that says where to change that;
    # a whole-file request for the media (what "save as" sends; a player asks for ranges) too.
    assert tab.goto(session_url + "/download/recording").status == 403
    looked_at(tab, "client-download-refused")
    assert page.locator("#message-action").evaluate("a => a.href") == consent_url
    assert tab.goto(session_url + "/media").status == 403
    assert "plays on your session page" in page.inner_text("main")
    assert page.locator("#message-action").evaluate("a => a.href") == consent_url

    assert tab.goto(session_url[:-8]).status == 404  # a link cut short in the email
    looked_at(tab, "client-not-found")
    assert tab.goto("/favicon.ico").status == 404
    looked_at(tab, "client-favicon")

    assert tab.goto(consent_url).status == 200
    page.check("#confirm-withdraw")
    with page.expect_navigation():
        page.click("#withdraw")
    assert page.inner_text("h1") == "Your consent is withdrawn"
    looked_at(tab, "client-withdrawn")
    hs.drain()
    assert tab.goto(session_url).status == 410
    looked_at(tab, "client-link-gone")


def test_coach_pages_and_the_days_work(hs, zoom_stub, smtp_sink, browse, width):
    coach_id, client_id = coach_after_a_delivery(hs, zoom_stub, smtp_sink)
    tab = browse(viewport=WIDTHS[width])
    page = tab.page

    assert tab.goto("/coach/login").status == 200
    looked_at(tab, "coach-login")
    tab.goto(login_link(hs.rt, coach_id))
    assert page.url == tab.origin + "/coach"

    # Settings, in the browser: review before send, and the coach's time zone.
    page.click("#nav-settings")
    looked_at(tab, "coach-settings")
    page.check('input[name="delivery_mode"][value="review"]')
    page.select_option("#time_zone", "Europe/Berlin")
    page.click("#save-settings")
    assert "Saved." in page.locator(".flash").inner_text()
    with hs.db() as db:
        coach = db.get(Coach, coach_id)
        assert (coach.delivery_mode, coach.time_zone) == ("review", "Europe/Berlin")

    # A recording now waits for review, and an unmatched one waits for its client.
    waiting = post_recording(hs, zoom_stub, "ready_for_review", topic="Review me")
    stranger = post_recording(hs, zoom_stub, "unmatched", topic="Whose is this", invitees=())
    assert [m for m in smtp_sink.to(CLIENT_EMAIL) if "/s/" in body_of(m)] == []
    tab.goto("/coach")
    attention = page.locator("#failures").inner_text()
    assert "ready for your review" in attention and "choose the client" in attention
    looked_at(tab, "coach-dashboard", narrowest=320)

    # Review: the coach's own player, an edit, and the send.
    page.click(f"#review-{waiting.id}")
    assert page.locator("#review").is_visible()
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    page.locator("#coach-tier, #client-view").first.wait_for()
    first_ts = page.locator("#segments button.ts").nth(2)
    first_ts.click()
    page.wait_for_function("() => !document.getElementById('player').seeking"
                           " && document.getElementById('player').currentTime >= 14")
    looked_at(tab, "coach-session-review")
    page.fill("#review-overview", "We agreed on one clear next step about the workload.")
    page.click("#save-summary")
    assert "Nothing has been sent yet" in page.locator(".flash").inner_text()
    page.click("#send-reviewed")
    hs.drain()
    with hs.db() as db:
        summary = db.exec(select(Summary).where(Summary.session_id == waiting.id)).one()
    assert summary.client_tier["overview"] == "We agreed on one clear next step about the workload."
    (sent,) = [m for m in smtp_sink.to(CLIENT_EMAIL) if "/s/" in body_of(m)]
    assert "one clear next step" in body_of(sent)

    # Assign the unmatched recording to the client, from the dashboard.
    tab.goto("/coach")
    page.select_option(f"#assign-client-{stranger.id}", client_id)
    page.click(f"#assign-{stranger.id}")
    assert "fetching the recording now" in page.locator(".flash").inner_text()
    for _ in range(4):
        hs.drain()
    tab.goto(f"/coach/sessions/{stranger.id}")
    assert page.locator("#session-state").text_content().strip() == "ready for review"

    for name, path in (("coach-client", f"/coach/clients/{client_id}"),
                       ("coach-session", f"/coach/sessions/{stranger.id}"),
                       ("coach-search", "/coach/search?q=thursday"),
                       ("coach-delete-session", f"/coach/sessions/{stranger.id}/delete"),
                       ("coach-delete-client", f"/coach/clients/{client_id}/delete"),
                       ("coach-zoom", "/coach/zoom"), ("coach-google", "/coach/google"),
                       ("coach-slack", "/coach/slack"), ("coach-not-found", "/coach/sessions/" + "f" * 32)):
        tab.goto(path)
        looked_at(tab, name)
    tab.goto("/coach/audit?kind=session")
    assert page.locator("#audit tbody tr").count() > 0
    looked_at(tab, "coach-audit", narrowest=320)
    assert "holdspace-audit.csv" in page.locator("#audit-export").get_attribute("href") or \
        page.locator("#audit-export").get_attribute("href").startswith("/coach/audit.csv")
