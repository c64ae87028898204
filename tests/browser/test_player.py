"""The client's player in a real browser, at 1366 and 390 px: it stays in view after a
timestamp far down the transcript is clicked (sticky on a desktop, docked on a phone) and
covers nothing, the passage playing is marked and followed (not against a reader who scrolled
away), ±15 s and the speed work, key moments sit beside the player and seek; on a video,
chapters seek and captions come from the transcript without the download scope."""

from __future__ import annotations

import re

import pytest
from pytest import approx
from sqlmodel import select

from models import AuditEvent, Asset, Link, Summary, Transcript, utcnow
from tests.browser.pages import WIDTHS, axe_violations, looked_at, screenshot
from tests.browser.support import deliver_recording
from tests.portalhelpers import path_of
from tests.zoomhelpers import coach_and_client

PLAYER = "document.getElementById('player')"
MOMENTS = [{"timestamp": 18.42, "line": "I worry that people will see me as unhelpful."},
           {"timestamp": 39.22, "line": "I will share my focus hours with the team by Monday."}]
CHAPTERS = [{"start": 0, "title": "How the week went"}, {"start": 35.74, "title": "Before next time"}]


@pytest.fixture(params=sorted(WIDTHS))
def width(request):
    return request.param


def player_on_screen(page) -> bool:
    return page.evaluate(f"""() => {{ const b = {PLAYER}.getBoundingClientRect();
        return b.height > 0 && b.top >= 0 && b.bottom <= window.innerHeight; }}""")


def playing_index(page) -> int:
    """The 0-based index of the passage marked as playing (-1 for none, -2 when the class and
    aria-current disagree or more than one is marked)."""
    return page.evaluate("""() => {
        const all = [...document.querySelectorAll('#segments > li.seg')];
        const marked = all.filter(li => li.classList.contains('playing'));
        const current = all.filter(li => li.getAttribute('aria-current') === 'true');
        if (marked.length > 1 || marked.length !== current.length || marked[0] !== current[0]) return -2;
        return marked.length ? all.indexOf(marked[0]) : -1; }""")


def passage_at(page, t: float) -> int:
    """The index of the passage that holds time `t`, by the transcript's own timestamps."""
    starts = [float(s) for s in page.locator("#segments > li.seg > button.ts").evaluate_all(
        "els => els.map(e => e.dataset.t)")]
    return max(i for i, s in enumerate(starts) if s <= t + 0.05)


def plays_in_view_from_the_last_passage(page) -> None:
    """The last passage's timestamp, clicked: the player plays from there, is still on screen
    (sticky or docked), and marks that passage (the 11th) as playing."""
    last = page.locator("#segments > li.seg").last
    last.scroll_into_view_if_needed()
    last.locator("button.ts").click()
    page.wait_for_function(f"() => !{PLAYER}.seeking && !{PLAYER}.paused && {PLAYER}.currentTime >= 59.8")
    assert player_on_screen(page), "the player is off screen after a timestamp low on the page"
    page.wait_for_function("() => document.querySelector('#segments li.playing') !== null")
    assert playing_index(page) == passage_at(page, now_at(page)) == 10


def add_to_summary(hs, **fields) -> None:
    """The delivered session's summary with more in it (the offline summariser finds no key
    moments in this short conversation, and makes no chapters)."""
    with hs.db() as db:
        summary = db.exec(select(Summary)).one()
        summary.client_tier = {**summary.client_tier, **fields}
        db.add(summary)
        db.commit()


def settle(page) -> None:
    page.wait_for_function(f"() => !{PLAYER}.seeking && {PLAYER}.readyState >= 1")


def now_at(page) -> float:
    return page.evaluate(f"() => {PLAYER}.currentTime")


def test_the_player_stays_in_view_follows_and_skips(hs, zoom_stub, smtp_sink, browse, width):
    coach_and_client(hs)
    url = deliver_recording(hs, zoom_stub, smtp_sink)
    add_to_summary(hs, key_moments=MOMENTS)
    tab = browse(viewport=WIDTHS[width])
    page = tab.page
    assert tab.goto(url).status == 200
    settle(page)
    assert axe_violations(page) == []
    screenshot(page, "session-moments")

    # A timestamp low in the transcript: the player is still on screen, playing that passage.
    plays_in_view_from_the_last_passage(page)

    # The reader scrolls back to the top: the mark still moves, the page stays where they put it.
    page.mouse.move(10, 10)
    page.mouse.wheel(0, -100000)
    page.wait_for_function("() => window.scrollY === 0")
    page.evaluate(f"() => {{ {PLAYER}.currentTime = 24.5; }}")
    page.wait_for_function("() => document.querySelector('#segments > li.seg:nth-child(5)')"
                           ".classList.contains('playing')")
    assert playing_index(page) == 4 == passage_at(page, now_at(page))
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.scrollY") == 0, "the page scrolled against the reader"
    assert player_on_screen(page)

    # Left alone for the 4 s the page waits, following brings the playing passage into view,
    # clear of the player.
    page.wait_for_timeout(4100)
    page.evaluate(f"() => {{ {PLAYER}.currentTime = 60; }}")
    clear_of_dock = """() => { const b = document.querySelector('#segments > li.seg:last-child')
        .getBoundingClientRect(), dock = document.getElementById('player-dock'),
        d = dock.getBoundingClientRect(), fixed = getComputedStyle(dock).position === 'fixed';
        return b.top >= (fixed ? 0 : d.bottom) && b.bottom <= (fixed ? d.top : innerHeight); }"""
    page.wait_for_function(clear_of_dock)

    # ±15 s and speed, found by their accessible names as a screen reader would.
    page.evaluate(f"() => {PLAYER}.pause()")
    back = page.get_by_role("button", name="back 15 seconds")
    ahead = page.get_by_role("button", name="forward 15 seconds")
    speed = page.get_by_role("combobox", name="Speed")
    page.evaluate(f"() => {{ {PLAYER}.currentTime = 30; }}")
    settle(page)
    ahead.click()
    settle(page)
    assert now_at(page) == approx(45, abs=0.5)
    back.click()
    back.click()
    settle(page)
    assert now_at(page) == approx(15, abs=0.5)
    back.click()  # not before the start
    settle(page)
    assert now_at(page) == approx(0, abs=0.5)
    assert speed.locator("option").evaluate_all("os => os.map(o => o.value)") == ["0.75", "1", "1.25", "1.5", "2"]
    for rate in ("1.5", "1"):
        speed.select_option(rate)
        assert page.evaluate(f"() => {PLAYER}.playbackRate") == float(rate)

    # Key moments: their own navigation, right after the player; each timestamp seeks.
    nav = page.get_by_role("navigation", name="Key moments")
    assert nav.evaluate("n => n.closest('.moments-nav').previousElementSibling.id") == "player-dock"
    moments = nav.locator("button.ts")
    assert moments.all_inner_texts() == ["0:18", "0:39"]
    for i, moment in enumerate(MOMENTS):
        moments.nth(i).click()
        page.wait_for_function(
            f"() => !{PLAYER}.seeking && Math.abs({PLAYER}.currentTime - {moment['timestamp']}) < 1")
    assert page.get_by_role("navigation", name="Chapters").count() == 0  # none in this summary
    assert page.get_attribute("#search-count", "aria-live") == "polite"

    # Nothing scrolls sideways, and at the very end of the page the footer sits above the dock.
    assert tab.overflow() <= 0
    page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_timeout(100)
    assert page.evaluate("""() => {
        const dock = document.getElementById('player-dock'), d = dock.getBoundingClientRect();
        const end = document.querySelector('footer').getBoundingClientRect();
        return getComputedStyle(dock).position !== 'fixed' || end.bottom <= d.top + 1; }""")


def test_chapters_and_captions_on_a_video(hs, zoom_stub, smtp_sink, browse):
    coach_and_client(hs, scopes="record,transcribe,summarise")  # captions need no download scope
    url = deliver_recording(hs, zoom_stub, smtp_sink)
    with hs.db() as db:
        # The same recording filed as a video (a <video> plays the audio), in a detected language.
        (asset,) = [a for a in db.exec(select(Asset)) if a.kind == "audio"]
        asset.kind = "video"
        transcript = db.exec(select(Transcript)).one()
        transcript.language = "en"
        db.add_all([asset, transcript])
        db.commit()
    add_to_summary(hs, chapters=CHAPTERS)
    tab = browse(viewport=WIDTHS["desktop"])
    page = tab.page
    assert tab.goto(url).status == 200
    assert page.get_attribute("video#player", "controlslist") == "nodownload"
    assert page.locator("#downloads-off").is_visible()
    assert page.get_attribute("video#player > track[kind=captions]", "srclang") == "en"
    assert page.get_attribute("#segments", "lang") == "en"
    # The browser fetches the captions itself (the CSP allows them): the transcript's cues.
    page.wait_for_function(f"() => {PLAYER}.textTracks.length && {PLAYER}.textTracks[0].cues"
                           f" && {PLAYER}.textTracks[0].cues.length === 11")
    assert "focus hours" in page.evaluate(f"() => {PLAYER}.textTracks[0].cues[7].text")

    chapters = page.get_by_role("navigation", name="Chapters")
    assert chapters.locator("li").all_inner_texts() == ["0:00 How the week went", "0:35 Before next time"]
    chapters.locator("button.ts").nth(1).click()
    page.wait_for_function(f"() => !{PLAYER}.seeking && Math.abs({PLAYER}.currentTime - 35.74) < 0.5")
    # It plays on the windowed ranges the media route answers without the download scope.
    page.evaluate(f"() => {PLAYER}.play()")
    page.wait_for_function(f"() => !{PLAYER}.paused && {PLAYER}.currentTime > 36")
    media = hs.requests.from_browser(path_of(url) + "/media")
    assert media and all(h.range and h.status == 206 for h in media), media
    looked_at(tab, "session-video", widths=WIDTHS.values())


def test_captions_are_the_transcript_for_the_link_holder(hs, zoom_stub, smtp_sink):
    coach_and_client(hs, scopes="record,transcribe,summarise")  # no downloads: captions still
    url = deliver_recording(hs, zoom_stub, smtp_sink)
    resp = hs.http.get(path_of(url) + "/captions.vtt")
    assert resp.status_code == 200 and resp.mimetype == "text/vtt"
    assert resp.get_data(as_text=True).startswith("WEBVTT")
    assert "I will share my focus hours" in resp.get_data(as_text=True)
    assert "Content-Disposition" not in resp.headers and resp.headers["Cache-Control"] == "no-store"
    with hs.db() as db:  # watching, not downloading: nothing audited as a download
        assert not [e for e in db.exec(select(AuditEvent)) if "downloaded" in e.action]
    assert hs.http.get(path_of(url)[:-6] + "/captions.vtt").status_code == 404
    assert hs.http.get(path_of(url) + "/transcript.vtt").status_code == 403  # the download is not


def test_journey_issues_a_link_when_none_is_live(hs, zoom_stub, smtp_sink):
    coach_and_client(hs)
    url = deliver_recording(hs, zoom_stub, smtp_sink)
    (journey,) = re.findall(r'id="journey" href="([^"]+)"', hs.http.get(path_of(url)).get_data(as_text=True))
    with hs.db() as db:  # the emailed session link revoked: the journey must not offer it
        for link in db.exec(select(Link).where(Link.purpose == "session")):
            link.revoked_at = utcnow()
            db.add(link)
        db.commit()
    page = hs.http.get(journey)
    assert page.status_code == 200
    (href,) = re.findall(r'<ol class="sessions"><li><a href="([^"]+)"', page.get_data(as_text=True))
    assert href != path_of(url)
    opened = hs.http.get(href)
    assert opened.status_code == 200 and "Weekly coaching" in opened.get_data(as_text=True)
    assert hs.http.get(path_of(url)).status_code == 410  # the revoked one stays revoked
    assert hs.http.get(journey).get_data(as_text=True).count(href) == 1  # and the new one is reused


def test_the_coachs_player_is_the_clients(hs, zoom_stub, smtp_sink, browse, width):
    """The coach's session page plays the recording with the same player: in view after a
    timestamp low on the page, the passage marked, ±15 s (its captions route: test_review)."""
    from models import CoachingSession
    from workers.coach_sign_in import login_link
    coach_id, _ = coach_and_client(hs)
    deliver_recording(hs, zoom_stub, smtp_sink)
    with hs.db() as db:
        (session,) = db.exec(select(CoachingSession)).all()
    tab = browse(viewport=WIDTHS[width])
    page = tab.page
    tab.goto(login_link(hs.rt, coach_id, next_path=f"/coach/sessions/{session.id}"))
    assert page.url == f"{tab.origin}/coach/sessions/{session.id}"
    settle(page)

    plays_in_view_from_the_last_passage(page)
    page.evaluate(f"() => {PLAYER}.pause()")
    page.evaluate(f"() => {{ {PLAYER}.currentTime = 30; }}")
    settle(page)
    page.get_by_role("button", name="back 15 seconds").click()
    settle(page)
    assert now_at(page) == approx(15, abs=0.5)
    looked_at(tab, "coach-session-player")
    media = hs.requests.from_browser(f"/coach/sessions/{session.id}/media")
    assert media and all(h.status in (200, 206) for h in media), media
