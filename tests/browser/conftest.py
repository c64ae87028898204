"""Real-browser fixtures: one headless Debian chromium for the session, and per test a live
server, the app mounted on it (its emails link to that server) and fresh browser contexts."""

from __future__ import annotations

import os

import pytest

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, LiveServer, RequestLog, Tab


@pytest.fixture(scope="session")
def chromium():
    # No skip: a machine without chromium must fail here, loudly (CI installs it).
    assert os.access(CHROMIUM, os.X_OK), (
        f"{CHROMIUM} not found: the browser tests need Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server():
    server = LiveServer()
    yield server
    server.stop()


@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink, live_server):
    """holdspace served on the live server, using Zoom's transcript and the offline summariser;
    `hs.requests` logs what reached the app."""
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url,
                    TRANSCRIBE_ENGINE="platform", SUMMARY_ENGINE="offline",
                    PLATFORM_TRANSCRIPT_WAIT_SECONDS=0, PUBLIC_BASE_URL=live_server.url)
    hs.requests = RequestLog(hs.app.wsgi_app)
    hs.app.wsgi_app = hs.requests
    live_server.serve(hs.app)
    return hs


@pytest.fixture
def browse(chromium, live_server):
    """`browse(**context_options)` opens a tab in a fresh context (no shared cookies or cache).
    Every tab must have fetched nothing from any host but the live server, thrown no script
    error and tried nothing its Content-Security-Policy refuses (a blocked request to another
    host, or an injected inline script, shows up there rather than as a request)."""
    tabs: list[Tab] = []

    def open_tab(**context_options) -> Tab:
        tab = Tab.open(chromium, live_server.url, **context_options)
        tabs.append(tab)
        return tab

    yield open_tab
    for tab in tabs:
        tab.context.close()
    for tab in tabs:
        assert tab.requests, "the tab fetched nothing at all"
        assert tab.elsewhere() == [], f"requests left the live server: {tab.elsewhere()}"
        assert tab.errors == [], f"script errors on the page: {tab.errors}"
        assert tab.refused() == [], f"the page tried something its CSP refuses: {tab.refused()}"
