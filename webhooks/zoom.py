"""`POST /webhooks/zoom`: Zoom's signed event deliveries.

Zoom gives up on an endpoint that is slow or failing, so this answers within milliseconds:
check the signature, record the delivery in the inbox (deduplicated), queue the work, 200."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from flask import Blueprint, current_app, jsonify, request

from integrations.payloads import PayloadError, is_timestamp, load_json
from workers import inbox
from workers.platforms import zoom as zoom_events
from workers.platforms import zoom_tokens

log = logging.getLogger(__name__)
bp = Blueprint("zoom_webhook", __name__)


def zoom_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


def signature_ok(secret: str, headers, body: bytes, window_seconds: int, now: float) -> bool:
    """Zoom's v0 HMAC over the raw bytes, compared in constant time, inside the freshness window.

    The window is a setting because Zoom's retries may keep the first timestamp; replay safety
    comes from the inbox's dedupe key, not from the window."""
    timestamp = headers.get("x-zm-request-timestamp", "")
    given = headers.get("x-zm-signature", "")
    if not is_timestamp(timestamp) or not given:
        return False
    if abs(now - int(timestamp)) > window_seconds:
        return False
    return hmac.compare_digest(zoom_signature(secret, timestamp, body).encode(), given.encode())


def _bad(status: int, message: str):
    return jsonify({"error": message}), status


@bp.post("/webhooks/zoom")
def receive():
    rt = current_app.extensions["holdspace"]
    secret = rt.settings.zoom_webhook_secret
    if not secret:
        return _bad(503, "Zoom webhooks are not configured")
    body = request.get_data(cache=False)  # MAX_CONTENT_LENGTH answers 413 before this
    if not signature_ok(secret, request.headers, body, rt.settings.zoom_signature_window_seconds,
                        time.time()):
        return _bad(401, "signature check failed")
    try:
        message = load_json(body)
    except PayloadError as exc:
        return _bad(400, str(exc))
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        return _bad(400, "body has no event")
    event = message["event"]

    if event == "endpoint.url_validation":
        plain = (message.get("payload") or {}).get("plainToken")
        if not isinstance(plain, str) or not plain:
            return _bad(400, "plainToken missing")
        encrypted = hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
        return jsonify({"plainToken": plain, "encryptedToken": encrypted})

    if event == "app_deauthorized":
        return _deauthorized(rt, message.get("payload"))

    if not zoom_events.PLATFORM.handles(event):
        log.info("Zoom event %s not handled; acknowledged", event)
        return jsonify({"ok": True, "handled": False})

    obj = (message.get("payload") or {}).get("object") if isinstance(message.get("payload"), dict) else None
    if not isinstance(obj, dict) or not isinstance(obj.get("uuid"), str) or not obj["uuid"]:
        return _bad(400, "payload.object.uuid missing")
    for field in ("recording_files", "participant_audio_files"):
        files = obj.get(field) or []
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            return _bad(400, f"{field} is not a list of files")

    inbox_id = inbox.accept(rt, zoom_events.NAME, event, zoom_events.delivery_key(event, obj), message)
    if inbox_id is not None:
        inbox.enqueue(rt, inbox_id)  # Redis down: still 200, the sweeper queues it later
    return jsonify({"ok": True, "duplicate": inbox_id is None})


def _deauthorized(rt, payload):
    """A user removed holdspace's app from their Zoom: their tokens go now, inside this request,
    not after a queue (Zoom's rules ask that they stop being used at once)."""
    if not isinstance(payload, dict):
        return _bad(400, "payload missing")
    account_id, user_id = payload.get("account_id"), payload.get("user_id")
    if not (isinstance(account_id, str) and account_id and isinstance(user_id, str) and user_id):
        return _bad(400, "payload.account_id and payload.user_id are required")
    client_id = payload.get("client_id")
    if client_id is not None and client_id != rt.settings.zoom_app_client_id:
        # Another Zoom app's user: not a connection of ours.
        return jsonify({"ok": True, "handled": False})
    ended = zoom_tokens.deauthorized(rt, account_id, user_id)
    return jsonify({"ok": True, "handled": ended})
