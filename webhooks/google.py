"""`POST /webhooks/google`: Meet events from Google Workspace Events, pushed by Cloud Pub/Sub.

Pub/Sub redelivers anything not acknowledged within its deadline, so this answers at once:
check the push token, record the event in the inbox (deduplicated), queue the work, 204."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from integrations import google
from workers import inbox
from workers.platforms import meet as meet_events

log = logging.getLogger(__name__)
bp = Blueprint("google_webhook", __name__)


def _bad(status: int, message: str):
    return jsonify({"error": message}), status


@bp.post("/webhooks/google")
def receive():
    rt = current_app.extensions["holdspace"]
    settings = rt.settings
    if not settings.google_pubsub_audience or not settings.google_pubsub_service_account:
        return _bad(503, "Google push is not configured")
    try:
        google.verify_push(request.headers.get("Authorization"),
                           audience=settings.google_pubsub_audience,
                           service_account=settings.google_pubsub_service_account,
                           certs_url=settings.google_certs_url)
    except google.PushCertsUnavailable as exc:
        # Not a verdict on the token: Pub/Sub retries, and by then the certificates may load.
        log.warning("Google push not verified: %s", exc)
        return _bad(503, "cannot verify the push token right now")
    except google.PushAuthError as exc:
        log.info("Google push refused: %s", exc)
        return _bad(401, "push token check failed")
    body = request.get_data(cache=False)  # MAX_CONTENT_LENGTH answers 413 before this
    try:
        message = google.parse_push(body)
    except google.NotWorkspaceEvent as exc:
        log.info("Pub/Sub message acknowledged, not a Workspace event: %s", exc)
        return "", 204
    except google.PushFormatError as exc:
        return _bad(400, str(exc))

    if not meet_events.PLATFORM.handles(message.ce_type):
        log.info("Google event %s not handled; acknowledged", message.ce_type)
        return "", 204

    inbox_id = inbox.accept(rt, meet_events.PLATFORM.name, message.ce_type, message.dedupe_key,
                            message.to_payload())
    if inbox_id is not None:
        inbox.enqueue(rt, inbox_id)  # Redis down: still 204, the sweeper queues it later
    return "", 204
