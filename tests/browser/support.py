"""What the browser tests drive: a live server the emailed links point at, a log of the
requests that reached the app, a browser tab that notes every request, dialog, script error
and CSP refusal, and a real recording (demo/session.m4a with its Zoom transcript, written for
it in tests/fixtures/browser/session.vtt) taken to `delivered`."""

from __future__ import annotations

import json
import struct
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import select
from werkzeug.serving import make_server

from models import CoachingSession
from tests.portalhelpers import body_of, links_in
from tests.zoomhelpers import CLIENT_EMAIL, COACH_ZOOM_ID, coach_and_client, post_zoom

ROOT = Path(__file__).resolve().parents[2]
DEMO_AUDIO = ROOT / "demo" / "session.m4a"
DEMO_VTT = ROOT / "tests" / "fixtures" / "browser" / "session.vtt"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def mp4_seconds(data: bytes) -> float:
    """A recording's duration as its MP4 movie header (`mvhd`) states it."""
    at = data.index(b"mvhd")
    if data[at + 4] == 1:  # version 1: 64-bit times
        timescale, duration = struct.unpack(">IQ", data[at + 24:at + 36])
    else:
        timescale, duration = struct.unpack(">II", data[at + 16:at + 24])
    return duration / timescale


# --- the server the browser talks to ----------------------------------------------------------

class LiveServer:
    """A real HTTP server on 127.0.0.1, started before the app exists so that its address can
    be the app's PUBLIC_BASE_URL (the links in the emails); `serve(app)` mounts the app."""

    def __init__(self):
        self._app = None
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _wsgi(self, environ, start_response):
        if self._app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"no app mounted yet"]
        return self._app(environ, start_response)

    def serve(self, app) -> None:
        self._app = app

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass
class Hit:
    path: str
    range: str | None
    user_agent: str
    status: int | None = None


class RequestLog:
    """WSGI middleware around the app: every request that reached it, with its Range header
    and the status the app answered."""

    def __init__(self, app):
        self.app = app
        self.hits: list[Hit] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        hit = Hit(environ.get("PATH_INFO", ""), environ.get("HTTP_RANGE"),
                  environ.get("HTTP_USER_AGENT", ""))
        with self._lock:
            self.hits.append(hit)

        def recording_start_response(status, headers, exc_info=None):
            hit.status = int(status.split()[0])
            return start_response(status, headers, exc_info)

        return self.app(environ, recording_start_response)

    def from_browser(self, path_prefix: str = "", timeout: float = 5.0) -> list[Hit]:
        """The browser's requests to paths under `path_prefix`, once each has been answered
        (a media element keeps fetching ahead while the test goes on)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                hits = [h for h in self.hits if "Chrome" in h.user_agent and h.path.startswith(path_prefix)]
            if all(h.status is not None for h in hits) or time.monotonic() > deadline:
                return hits
            time.sleep(0.02)


# --- a browser tab that notes what happens in it ------------------------------------------------

@dataclass
class Tab:
    """One page in its own browser context, and what happened in it."""
    context: object
    page: object
    origin: str
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser, origin: str, **context_options) -> Tab:
        context = browser.new_context(**context_options)
        context.set_default_timeout(10_000)  # fail in seconds, not Playwright's default 30
        page = context.new_page()
        tab = cls(context, page, origin)
        context.on("request", lambda request: tab.requests.append(request.url))
        page.on("dialog", tab._dialog)
        page.on("pageerror", lambda exc: tab.errors.append(str(exc)))
        page.on("console", lambda msg: tab.console.append(f"{msg.type}: {msg.text}"))
        return tab

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def goto(self, url: str):
        return self.page.goto(url if url.startswith("http") else self.origin + url)

    def elsewhere(self) -> list[str]:
        """Requests the page made to anywhere but the live server."""
        return [u for u in self.requests if not u.startswith(self.origin + "/")]

    def refused(self) -> list[str]:
        """What the page's Content-Security-Policy blocked: a request to another host, an
        inline script or event handler (an injection CSP stopped, not one that never happened)."""
        return [m for m in self.console if "Content Security Policy" in m]

    def overflow(self) -> int:
        """How many CSS pixels the page is wider than the screen (0 when it fits). A mobile
        viewport widens its layout viewport to fit wide content, so innerWidth grows with the
        page: compare with the screen's width as well."""
        scroll, inner = self.page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]")
        return max(scroll, inner) - self.page.viewport_size["width"]


# --- a recording, taken to `delivered` -----------------------------------------------------------

def add_demo_recording(stub, *, topic: str = "Weekly coaching", vtt: bytes | None = None,
                       start_time: str = "2026-11-02T10:00:00Z", invitees=(CLIENT_EMAIL,)) -> dict:
    """Zoom holds demo/session.m4a and its transcript as one meeting's cloud recording; returns
    the `recording.completed` event Zoom would send for it (no invitees: no one to match)."""
    audio = DEMO_AUDIO.read_bytes()
    vtt = DEMO_VTT.read_bytes() if vtt is None else vtt
    meeting_uuid = uuidlib.uuid4().hex[:22] + "=="
    files = []
    for ftype, ext, rtype, data, ctype in (("M4A", "M4A", "audio_only", audio, "audio/mp4"),
                                           ("TRANSCRIPT", "VTT", "audio_transcript", vtt, "text/vtt")):
        file_id = uuidlib.uuid4().hex
        stub.add_file(file_id, data, ctype)
        files.append({"id": file_id, "meeting_id": meeting_uuid, "recording_start": start_time,
                      "recording_end": start_time, "file_type": ftype, "file_extension": ext,
                      "file_size": len(data), "download_url": stub.download_url_for(file_id),
                      "status": "completed", "recording_type": rtype})
    stub.add_meeting(10**10 + uuidlib.uuid4().int % 10**9, meeting_uuid, COACH_ZOOM_ID, topic=topic,
                     start_time=start_time, duration=1, invitees=list(invitees), files=files)
    return {"event": "recording.completed", "event_ts": int(time.time() * 1000),
            "download_token": stub.issue_download_token(),
            "payload": {"account_id": stub.account_id, "object": stub.recordings_object(meeting_uuid)}}


def post_recording(hs, zoom_stub, until: str, **recording) -> CoachingSession:
    """Zoom announces a recording; the pipeline runs until the session is in state `until`."""
    payload = add_demo_recording(zoom_stub, **recording)
    assert post_zoom(hs.http, json.dumps(payload).encode()).status_code == 200
    meeting_uuid = payload["payload"]["object"]["uuid"]
    for _ in range(4):  # each pipeline step is its own job
        hs.drain()
        with hs.db() as db:
            session = db.exec(select(CoachingSession)
                              .where(CoachingSession.platform_uuid == meeting_uuid)).one()
        if session.state == until:
            break
    assert session.state == until, (session.state, session.error)
    return session


def deliver_recording(hs, zoom_stub, smtp_sink, **recording) -> str:
    """Zoom announces a recording (signed webhook); the pipeline runs until the session is
    delivered; returns the session link from the email the client got, as emailed."""
    post_recording(hs, zoom_stub, "delivered", **recording)
    return emailed_link(smtp_sink, "/s/")


def coach_after_a_delivery(hs, zoom_stub, smtp_sink) -> tuple[str, str]:
    """A coach and their consenting client with one session delivered and the client's
    email read, so the sink holds only what comes next: (coach id, client id)."""
    coach_id, client_id = coach_and_client(hs)
    deliver_recording(hs, zoom_stub, smtp_sink)
    smtp_sink.clear()
    return coach_id, client_id


def emailed_link(smtp_sink, kind: str) -> str:
    """The newest link of a kind (`/s/`, `/c/`, `/j/`) in the client's email."""
    urls = [u for m in smtp_sink.to(CLIENT_EMAIL) for u in links_in(m) if kind in u]
    assert urls, f"no {kind} link in the client's email: {[body_of(m)[:200] for m in smtp_sink.to(CLIENT_EMAIL)]}"
    return urls[-1]
