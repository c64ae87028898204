"""The client's player in a real browser, at 1366 and 390 px: it stays in view after a
timestamp far down the transcript is clicked (sticky on a desktop, docked on a phone), the
passage playing is marked and followed, ±15 s and the speed work, key moments seek, and
captions come from the transcript for a session link holder."""

from __future__ import annotations

import pytest
from pytest import approx

from tests.browser.pages import WIDTHS
from tests.browser.support import deliver_recording
from tests.portalhelpers import path_of
from tests.zoomhelpers import coach_and_client

PLAYER = "document.getElementById('player')"


@pytest.fixture(params=sorted(WIDTHS))
def width(request):
    return request.param


def player_on_screen(page) -> bool:
    return page.evaluate(f"""() => {{ const b = {PLAYER}.getBoundingClientRect();
        return b.top >= 0 && b.bottom <= window.innerHeight && b.height > 0; }}""")


def test_the_player_stays_in_view_and_follows_the_transcript(hs, zoom_stub, smtp_sink, browse, width):
    coach_and_client(hs)
    url = deliver_recording(hs, zoom_stub, smtp_sink)
    tab = browse(viewport=WIDTHS[width])
    page = tab.page
    assert tab.goto(url).status == 200
    page.wait_for_function(f"() => {PLAYER}.readyState >= 1")

    last = page.locator("#segments > li.seg").last
    last.scroll_into_view_if_needed()
    last.locator("button.ts").click()
    page.wait_for_function(f"() => !{PLAYER}.seeking && {PLAYER}.currentTime >= 59")
    assert player_on_screen(page), "the player is off screen after seeking from the transcript"
    page.wait_for_function("() => document.querySelector('#segments li.playing') !== null")
    assert page.locator("#segments li.playing").count() == 1
    assert page.locator("#segments li[aria-current='true']").inner_text() == last.inner_text()

    # Another passage: the mark moves with the time.
    third = page.locator("#segments > li.seg:nth-child(3)")
    third.locator("button.ts").click()
    page.wait_for_function("() => document.querySelector('#segments > li.seg:nth-child(3)')"
                           ".classList.contains('playing')")
    assert page.locator("#segments li.playing").count() == 1
    assert player_on_screen(page)

    page.evaluate(f"() => {PLAYER}.pause()")
    before = page.evaluate(f"() => {PLAYER}.currentTime")
    page.click("#ahead-15")
    page.wait_for_function(f"() => !{PLAYER}.seeking")
    assert page.evaluate(f"() => {PLAYER}.currentTime") == approx(before + 15, abs=0.6)
    page.click("#back-15")
    page.click("#back-15")
    page.wait_for_function(f"() => !{PLAYER}.seeking")
    assert page.evaluate(f"() => {PLAYER}.currentTime") == approx(max(0, before - 15), abs=0.6)
    page.select_option("#speed", "1.5")
    assert page.evaluate(f"() => {PLAYER}.playbackRate") == 1.5

    moments = page.locator(".moments button.ts")
    if moments.count():
        target = float(moments.first.get_attribute("data-t"))
        moments.first.click()
        page.wait_for_function(f"() => !{PLAYER}.seeking && Math.abs({PLAYER}.currentTime - {target}) < 1")
    assert page.get_attribute("#search-count", "aria-live") == "polite"
    assert tab.overflow() <= 0


def test_captions_are_the_transcript_for_the_link_holder(hs, zoom_stub, smtp_sink):
    coach_and_client(hs, scopes="record,transcribe,summarise")  # no downloads: captions still
    url = deliver_recording(hs, zoom_stub, smtp_sink)
    resp = hs.http.get(path_of(url) + "/captions.vtt")
    assert resp.status_code == 200 and resp.mimetype == "text/vtt"
    assert resp.get_data(as_text=True).startswith("WEBVTT") and "Content-Disposition" not in resp.headers
    assert hs.http.get(path_of(url)[:-6] + "/captions.vtt").status_code == 404
    assert hs.http.get(path_of(url) + "/transcript.vtt").status_code == 403  # the download is not
