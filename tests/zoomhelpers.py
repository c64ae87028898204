"""Helpers for driving the Zoom webhook the way Zoom does: signed raw bytes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

ZOOM_SECRET = "zoom-webhook-secret-for-tests"

COACH_ZOOM_ID = "z8yCxjabcdEFGHfp8uQ"
COACH_EMAIL = "coach@example.com"
CLIENT_EMAIL = "client@example.com"

# Once stored, the pipeline carries a session on (transcript, summary, delivery); what ingest
# itself must show is that the recording got there and what it stored from the platform.
STORED_OR_LATER = ("stored", "transcribing", "summarising", "delivered")


def signed_headers(body: bytes, secret: str = ZOOM_SECRET, timestamp: int | None = None) -> dict:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-zm-request-timestamp": ts, "x-zm-signature": f"v0={sig}",
            "content-type": "application/json"}


def post_zoom(http, payload: dict | bytes, **kw):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return http.post("/webhooks/zoom", data=body, headers=signed_headers(body, **kw))


def coach_and_client(hs, *, consent: str | None = "written", scopes: str | None = None,
                     media_policy: str = "keep_video", trash: bool = False) -> tuple[str, str]:
    coach_id = hs.run("coach", "add", "--email", COACH_EMAIL, "--name", "Casey Coach",
                      "--zoom-user-id", COACH_ZOOM_ID, "--media-policy", media_policy,
                      "--trash-zoom-copies" if trash else "--keep-zoom-copies")
    client_id = hs.run("client", "add", "--coach-email", COACH_EMAIL, "--email", CLIENT_EMAIL,
                       "--name", "Robin Client")
    if consent:
        args = ["consent", "grant", "--client-email", CLIENT_EMAIL, "--method", consent]
        if scopes:
            args += ["--scopes", scopes]
        hs.run(*args)
    return coach_id, client_id


def audio_recording(zoom_stub, data: bytes, uuid: str = "pipeLineUUID000000000==",
                    file_id: str = "audio-1", meeting_id: int = 7777) -> dict:
    """A signed-ready `recording.completed` for one M4A file of `data`, held by the stand-in,
    in a meeting to which the test client was invited."""
    zoom_stub.add_file(file_id, data, "audio/mp4")
    f = {"id": file_id, "meeting_id": uuid, "file_type": "M4A", "file_extension": "M4A",
         "file_size": len(data), "download_url": zoom_stub.download_url_for(file_id),
         "status": "completed", "recording_type": "audio_only"}
    zoom_stub.add_meeting(meeting_id, uuid, invitees=[CLIENT_EMAIL], files=[f])
    return {"event": "recording.completed", "event_ts": 1, "download_token": zoom_stub.issue_download_token(),
            "payload": {"object": zoom_stub.recordings_object(uuid)}}
