"""The client's session page in a real browser, opened from the link in the client's email:
the player plays and seeks over Range requests, transcript timestamps move it, the search
filters and highlights, downloads follow the consent's share scope, it fits a phone, and the
journey link leads to the journey page."""

from pytest import approx

from tests.browser.support import DEMO_AUDIO, deliver_recording, emailed_link, mp4_seconds
from tests.portalhelpers import path_of
from tests.zoomhelpers import coach_and_client

PLAYER = "document.getElementById('player')"


def current_time(page) -> float:
    return page.evaluate(f"() => {PLAYER}.currentTime")


def segment(page, n: int):
    """The n-th transcript passage (1-based, as in tests/fixtures/browser/session.vtt)."""
    return page.locator(f"#segments > li.seg:nth-child({n})")


def test_emailed_link_plays_seeks_and_searches(hs, zoom_stub, smtp_sink, browse):
    coach_and_client(hs)  # every scope
    url = deliver_recording(hs, zoom_stub, smtp_sink)
    tab = browse()
    page = tab.page
    assert tab.goto(url).status == 200
    assert page.locator("h1").inner_text() == "Weekly coaching"

    # Play: the real recording loads, and time moves.
    page.wait_for_function(f"() => {PLAYER}.readyState >= 1")
    assert page.evaluate(f"() => {PLAYER}.duration") == approx(mp4_seconds(DEMO_AUDIO.read_bytes()), abs=0.5)
    page.evaluate(f"() => {PLAYER}.play()")
    page.wait_for_function(f"() => {PLAYER}.currentTime > 0.3 && !{PLAYER}.paused")

    # Seek: the player lands where it was sent, and the bytes came by Range requests.
    page.evaluate(f"() => {{ {PLAYER}.currentTime = 55; }}")
    page.wait_for_function(f"() => !{PLAYER}.seeking && {PLAYER}.currentTime >= 55")
    media = hs.requests.from_browser(path_of(url) + "/media")
    assert media, "the browser never asked for the media"
    ranged = [h for h in media if h.range]
    assert ranged and all(h.status == 206 for h in ranged), media

    # A transcript timestamp moves the player back to that passage ("What made it hard…").
    third = segment(page, 3)
    assert third.locator("button.ts").inner_text() == "0:15"
    third.locator("button.ts").click()
    page.wait_for_function(f"() => !{PLAYER}.seeking && {PLAYER}.currentTime < 20")
    assert 15.0 <= current_time(page) < 18
    eighth = segment(page, 8).locator("button.ts")
    assert eighth.inner_text() == "0:39"
    eighth.click()
    page.wait_for_function(f"() => !{PLAYER}.seeking && {PLAYER}.currentTime >= 39.2")
    assert current_time(page) < 42

    # Search: only matching passages stay, the match is highlighted, case aside.
    passages = page.locator("#segments > li.seg")
    assert passages.count() == 11
    assert segment(page, 2).locator(".speaker").inner_text() == "Robin Client"
    page.fill("#search", "THURSDAY")
    assert page.locator("#segments > li.seg:visible").count() == 2
    assert page.locator("#segments mark").all_inner_texts() == ["Thursday", "Thursday"]
    assert page.locator("#search-count").inner_text() == "2 matching passages"
    assert not segment(page, 1).is_visible() and segment(page, 2).is_visible()
    page.fill("#search", "focus hours")
    (only,) = page.locator("#segments > li.seg:visible").all()
    assert only.locator("mark").inner_text() == "focus hours"
    assert "I will share my focus hours with the team by Monday." in only.inner_text()
    assert page.locator("#search-count").inner_text() == "1 matching passage"
    page.fill("#search", "")
    assert page.locator("#segments > li.seg:visible").count() == 11
    assert page.locator("#segments mark").count() == 0

    # Everything the page loaded came from the live server, and nothing broke on it.
    assert any("/static/portal/session.js" in u for u in tab.requests)
    assert tab.elsewhere() == [] and tab.errors == [] and tab.dialogs == []


def test_download_when_shared(hs, zoom_stub, smtp_sink, browse):
    coach_and_client(hs, scopes="record,transcribe,summarise,share_with_client")
    url = deliver_recording(hs, zoom_stub, smtp_sink)
    tab = browse()
    page = tab.page
    assert tab.goto(url).status == 200
    with page.expect_download() as download:
        page.click("#download-recording")
    assert download.value.suggested_filename == "session-2026-11-02.m4a"
    assert open(download.value.path(), "rb").read() == DEMO_AUDIO.read_bytes()
    with page.expect_download() as download:
        page.click("#download-vtt")
    vtt = open(download.value.path(), encoding="utf-8").read()
    assert vtt.startswith("WEBVTT") and "Robin Client: I will share my focus hours" in vtt


def test_no_download_without_the_share_scope(hs, zoom_stub, smtp_sink, browse):
    coach_and_client(hs, scopes="record,transcribe,summarise")
    url = deliver_recording(hs, zoom_stub, smtp_sink)
    tab = browse()
    page = tab.page
    assert tab.goto(url).status == 200
    page.wait_for_function(f"() => {PLAYER}.readyState >= 1")  # the recording itself is still there
    for link in ("#download-recording", "#download-vtt", "#download-txt"):
        assert page.locator(link).count() == 0, link
    for direct in ("/download/recording", "/transcript.vtt", "/transcript.txt"):
        assert tab.goto(url + direct).status == 403, direct
        assert hs.http.get(path_of(url) + direct).status_code == 403, direct


PHONE = dict(viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True,
             has_touch=True)


def test_readable_on_a_phone(hs, zoom_stub, smtp_sink, browse):
    coach_and_client(hs)
    url = deliver_recording(hs, zoom_stub, smtp_sink)
    hs.run("consent", "request", "--client-email", "client@example.com")
    hs.drain()
    tab = browse(**PHONE)
    page = tab.page
    for link in (url, emailed_link(smtp_sink, "/c/")):
        assert tab.goto(link).status == 200
        assert tab.overflow() <= 0, link
    # The player and the search box fit the screen too, not just the page.
    tab.goto(url)
    for element in ("#player", "#search", "#segments"):
        box = page.locator(element).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (element, box)


def test_journey_link_opens_the_journey(hs, zoom_stub, smtp_sink, browse):
    coach_and_client(hs)
    first = deliver_recording(hs, zoom_stub, smtp_sink, topic="First session", start_time="2026-10-19T10:00:00Z")
    url = deliver_recording(hs, zoom_stub, smtp_sink, topic="Second session")
    tab = browse(**PHONE)
    page = tab.page
    assert tab.goto(url).status == 200
    with page.expect_navigation() as nav:
        page.click("#journey")
    assert nav.value.status == 200 and "/j/" in page.url
    assert page.locator("h1").inner_text() == "Your journey with Casey Coach"
    listed = page.locator("ol.sessions > li").all_inner_texts()
    assert len(listed) == 2 and any("First session" in s for s in listed) \
        and any("Second session" in s for s in listed), listed
    assert tab.overflow() <= 0

    # The chart tells made from done by a stripe and in words, its labels 12 px or more on screen.
    assert page.locator("#commitments-chart rect[fill='url(#done-hatch)']").count() == 2
    assert "striped" in page.inner_text("figure.chart figcaption")
    assert page.locator("table.chart-data th").all_inner_texts() == ["Session", "Made", "Done"]
    sizes = page.locator("#commitments-chart text").evaluate_all(
        "ts => ts.map(t => t.getScreenCTM().d * parseFloat(getComputedStyle(t).fontSize))")
    assert sizes and min(sizes) >= 12, sizes

    # An open commitment, marked done by the client: the page says so, and it is done.
    first_open = page.locator("ul.commitments > li.open").first
    what = first_open.locator("button").get_attribute("aria-label").removeprefix("Mark done: ")
    with page.expect_navigation() as nav:
        first_open.locator("button").click()
    assert nav.value.status == 200 and page.locator("#marked").is_visible()
    done = page.locator("ul.commitments > li.done").all_inner_texts()
    assert any(what in d for d in done), (what, done)

    # Each past session is a link to its page: the client's own live links, reused.
    journey = page.url.split("?")[0]
    assert sorted(page.locator("ol.sessions > li a").evaluate_all("as => as.map(a => a.href)")) == sorted([first, url])
    for i, topic in enumerate(("First session", "Second session")):
        tab.goto(journey)
        with page.expect_navigation() as nav:
            page.locator("ol.sessions > li a").nth(i).click()
        assert nav.value.status == 200 and "/s/" in page.url
        assert page.locator("h1").inner_text() == topic


def test_dates_are_read_in_the_readers_own_zone(hs, zoom_stub, smtp_sink, browse):
    # A session at 10:00 UTC on Monday 2 November is Sunday evening in Pago Pago (UTC-11): a
    # client there reads Sunday 1 November on every client page, from the session to the chart.
    coach_and_client(hs)
    url = deliver_recording(hs, zoom_stub, smtp_sink, start_time="2026-11-02T10:00:00Z")
    tab = browse(timezone_id="Pacific/Pago_Pago", locale="en-GB")
    page = tab.page
    sent = tab.goto(url).text()
    assert "Monday 2 November 2026, 10:00 UTC" in sent  # what is sent: UTC, as the fallback
    header = page.locator("time[data-local=moment]").inner_text()
    assert "Sunday" in header and "1 November 2026" in header and "23:00" in header, header
    with page.expect_navigation():
        page.click("#journey")
    assert page.locator("ol.sessions time").all_inner_texts() == ["1 Nov 2026"]
    assert page.locator("#commitments-chart text").evaluate_all("ts => ts.map(t => t.textContent)") == ["1 Nov"]
    assert set(page.locator("table.chart-data time").all_inner_texts()) == {"1 Nov"}
    since = page.locator("ul.commitments time").all_inner_texts()
    assert since and set(since) == {"1 Nov 2026"}, since
