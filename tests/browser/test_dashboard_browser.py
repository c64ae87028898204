"""The coach dashboard in a real browser (tests/browser/conftest.py's chromium and live server):
signing in from the emailed magic link, a private note written in the editor that is there after
a reload, a search whose hit leads to the passage, and the retry button bringing a failed
session back (after the worker runs)."""

from __future__ import annotations

import re

from models import queries as q
from tests.portalhelpers import body_of, delivered_session
from tests.test_dashboard import (AUTH_LINK, FAILING_FILE, FAILING_SCOPES, coach_id_of, failed_session,
                                  session_row)
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL


def test_sign_in_note_search_and_retry(hs, zoom_stub, smtp_sink, browse):
    delivered_session(hs, zoom_stub, smtp_sink, fixture="recording_completed", scopes=None)
    hs.run("consent", "grant", "--client-email", CLIENT_EMAIL, "--method", "written", "--scopes", FAILING_SCOPES)
    failed = failed_session(hs, zoom_stub)
    coach_id = coach_id_of(hs)
    with hs.db() as db:
        delivered = next(s for s in q.sessions_of(db, coach_id) if s.state == "delivered")

    tab = browse()
    page = tab.page
    # Signed out, the dashboard sends the browser to the sign-in form.
    tab.goto("/coach")
    assert page.url.endswith("/coach/login")
    page.fill("#email", COACH_EMAIL)
    page.click("#send-link")
    assert "a sign-in link is on its way" in page.locator("#login-sent").inner_text()
    hs.drain()
    (mail,) = [m for m in smtp_sink.to(COACH_EMAIL) if "sign-in" in m["Subject"]]
    (link,) = set(AUTH_LINK.findall(body_of(mail)))
    assert link.startswith(tab.origin + "/coach/auth/")
    tab.goto(link)
    assert page.url == tab.origin + "/coach"
    assert "Robin Client" in page.locator("#clients").inner_text()
    assert failed.error in page.locator("#failures").inner_text()

    # A private note, written in the editor: there after a reload, on the client's page too.
    page.click(f"#sessions a[href='/coach/sessions/{delivered.id}']")
    assert page.url == f"{tab.origin}/coach/sessions/{delivered.id}"
    assert "coach only" in page.locator("#coach-tier").inner_text().lower()
    page.fill("#note-body", "Ask about the manager conversation: did Thursday happen?")
    page.click("#save-note")
    assert "Note saved." in page.locator(".flash").inner_text()
    page.reload()
    assert "did Thursday happen?" in page.locator("#note-list").inner_text()
    assert page.locator(".flash").count() == 0
    page.click(f"a[href='/coach/clients/{delivered.client_id}']")
    assert "did Thursday happen?" in page.locator("#client-notes").inner_text()

    # Search from the box in the header's page, click a hit: the session, at the passage.
    page.click("header nav a[href='/coach/search']")
    page.fill("#search-q", "standup")
    page.click("#search-go")
    hits = page.locator("#hits li.hit")
    assert hits.count() >= 1 and "Robin Client" in hits.first.inner_text()
    assert page.locator("#hits mark").first.inner_text().lower() == "standup"
    hits.first.locator("a").click()
    assert re.fullmatch(rf"{re.escape(tab.origin)}/coach/sessions/{delivered.id}\?at=\d+#found", page.url)
    assert any("standup" in t for t in page.locator("#segments li.found").all_inner_texts())

    # Retry: the button queues the failed session again; once the worker runs, it is delivered.
    zoom_stub.set_file_mode(FAILING_FILE, "ok")
    page.click("header nav a[href='/coach']")
    page.click(f"#retry-{failed.id}")
    assert page.url == tab.origin + "/coach"
    assert "Trying again." in page.locator(".flash").inner_text()
    assert page.locator(f"#retry-{failed.id}").count() == 0
    hs.drain()
    tab.goto(f"/coach/sessions/{failed.id}")
    assert page.locator("#session-state").inner_text().strip().lower() == "delivered"
    assert session_row(hs, id=failed.id).state == "delivered"
