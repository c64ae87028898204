"""Getting a client's links the way a client does: out of the emails in the SMTP sink."""

from __future__ import annotations

import re

from tests.zoomhelpers import CLIENT_EMAIL, coach_and_client, post_zoom
from tests.zoomstub import load_fixture, register_fixture_files

LINK = re.compile(r"https?://[^\s\"'<>]+/(?:s|c|j)/[A-Za-z0-9_.\-]+")


def body_of(message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "\n".join(p.get_payload(decode=True).decode() for p in parts
                     if p.get_content_type() in ("text/plain", "text/html"))


def links_in(message) -> list[str]:
    return sorted(set(LINK.findall(body_of(message))))


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def delivered_session(hs, zoom_stub, smtp_sink, *, scopes="record,share_with_client",
                      fixture="recording_completed_audio_only", **coach_kwargs):
    """A Zoom recording ingested and delivered; returns (payload, session link path)."""
    coach_and_client(hs, scopes=scopes, **coach_kwargs)
    payload, body = load_fixture(fixture, zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload)
    assert post_zoom(hs.http, body).status_code == 200
    hs.drain()
    mails = [m for m in smtp_sink.to(CLIENT_EMAIL) if "/s/" in body_of(m)]
    assert mails, "no session email reached the client"
    (url,) = [u for u in links_in(mails[-1]) if "/s/" in u]
    return payload, path_of(url)
