"""Markup in what comes from outside (the meeting topic from Zoom, the transcript, the client's
name as the coach typed it) stays text in a real browser: no dialog opens, no element is
injected, and the payload reads as written."""

import pytest
from sqlmodel import select

from models import Transcript
from tests.browser.support import DEMO_VTT, deliver_recording, emailed_link
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, COACH_ZOOM_ID

TOPIC = '<script>alert("topic")</script><img src=x onerror=alert("topic")>'
NAME = '"><svg onload=alert("name")><script>alert("name")</script>'
SAID = '<img src=x onerror=alert("transcript")> <script>alert("transcript")</script>'
# Zoom writes < and > in a transcript as entities; the parser turns them back into the text.
CUE = SAID.replace("<", "&lt;").replace(">", "&gt;")

INJECTED = """() => document.querySelectorAll(
    'main img, main script, header svg, main svg[onload], [onerror], [onload]').length"""


@pytest.mark.parametrize("which", ["session", "consent", "journey"])
def test_payloads_render_inert(hs, zoom_stub, smtp_sink, browse, which):
    hs.run("coach", "add", "--email", COACH_EMAIL, "--name", "Casey Coach", "--zoom-user-id", COACH_ZOOM_ID)
    hs.run("client", "add", "--coach-email", COACH_EMAIL, "--email", CLIENT_EMAIL, "--name", NAME)
    hs.run("consent", "grant", "--client-email", CLIENT_EMAIL, "--method", "written")
    vtt = DEMO_VTT.read_bytes() + f"\n12\n00:01:03.200 --> 00:01:03.900\nRobin Client: {CUE}\n".encode()
    session_url = deliver_recording(hs, zoom_stub, smtp_sink, topic=TOPIC, vtt=vtt)
    with hs.db() as db:
        assert db.exec(select(Transcript)).one().segments[-1]["text"] == SAID  # the payload got in

    tab = browse()
    page = tab.page
    assert tab.goto(session_url).status == 200
    if which == "session":
        assert page.inner_text("h1") == TOPIC
        assert page.locator("#segments > li.seg").last.locator(".text").inner_text() == SAID
        # The search rebuilds every passage, matching or not: still text, each time.
        for needle in ("Thursday", "onerror", ""):
            page.fill("#search", needle)
            assert page.evaluate(INJECTED) == 0, needle
            if needle == "onerror":
                assert page.locator("#segments mark").all_inner_texts() == ["onerror"]
                assert page.locator("#segments > li.seg:visible .text").inner_text() == SAID
    elif which == "consent":
        hs.run("consent", "request", "--client-email", CLIENT_EMAIL)
        hs.drain()
        assert tab.goto(emailed_link(smtp_sink, "/c/")).status == 200
    else:
        with page.expect_navigation() as nav:
            page.click("#journey")
        assert nav.value.status == 200
        assert TOPIC in page.inner_text("ol.sessions")
    assert page.inner_text("header .who") == f"for {NAME}"
    page.wait_for_timeout(150)  # a broken image's onerror would have fired by now
    assert tab.dialogs == []
    # With script-src 'self' the browser would block an injected script rather than run it;
    # escaping means there is nothing for it to block.
    assert tab.refused() == []
    assert page.evaluate(INJECTED) == 0
    # Only our own scripts: local_time.js on every client page, session.js on a session's.
    ours = {"/static/portal/local_time.js", "/static/portal/session.js"}
    scripts = page.evaluate("() => [...document.scripts].map(s => new URL(s.src || 'inline:', location).pathname)")
    assert scripts and set(scripts) <= ours, scripts
