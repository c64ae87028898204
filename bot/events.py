"""`POST /slack/events`: the Events API, signed like slash commands. `url_verification` is
echoed; `app_uninstalled` and `tokens_revoked` end the workspace's installation at once (its
token deleted, its coaches told by email); any other event is acknowledged and left alone.
Slack retries an event not answered within 3 seconds, so each event_id is handled once."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, current_app, jsonify

from bot.signature import signed_request
from workers import notify

log = logging.getLogger(__name__)
bp = Blueprint("slack_events", __name__)

# Slack retries for about an hour at most; a day outlasts every retry.
EVENT_SEEN_SECONDS = 24 * 60 * 60


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _workspace(envelope: dict) -> dict:
    """Which installation an event is about: its team, or its org for an org-wide install."""
    authorizations = envelope.get("authorizations")
    first = authorizations[0] if isinstance(authorizations, list) and authorizations else {}
    first = first if isinstance(first, dict) else {}
    enterprise = _text(envelope.get("enterprise_id")) or _text(first.get("enterprise_id"))
    team = None if first.get("is_enterprise_install") is True else (
        _text(envelope.get("team_id")) or _text(first.get("team_id")))
    return {"enterprise_id": enterprise, "team_id": team}


def app_uninstalled(rt, envelope: dict, event: dict) -> None:
    notify.end_slack_installation(rt, status="uninstalled", **_workspace(envelope))


def tokens_revoked(rt, envelope: dict, event: dict) -> None:
    tokens = event.get("tokens")
    bots = tokens.get("bot") if isinstance(tokens, dict) else None
    bots = [b for b in bots if isinstance(b, str)] if isinstance(bots, list) else []
    if bots:  # only users' tokens died: holdspace keeps none
        notify.end_slack_installation(rt, status="revoked", bot_user_ids=bots, **_workspace(envelope))


HANDLERS = {"app_uninstalled": app_uninstalled, "tokens_revoked": tokens_revoked}


def _claim(rt, event_id: str) -> bool:
    try:
        return bool(rt.redis.set(f"holdspace:slack-event:{event_id}", b"1", nx=True, ex=EVENT_SEEN_SECONDS))
    except Exception as exc:  # noqa: BLE001 - Redis down: handle it; ending twice changes nothing
        log.warning("Slack event dedupe skipped: %s", type(exc).__name__)
        return True


def _release(rt, event_id: str) -> None:
    try:
        rt.redis.delete(f"holdspace:slack-event:{event_id}")
    except Exception:  # noqa: BLE001 - then Slack's retry is taken for a duplicate; the token stays
        pass


@bp.post("/slack/events")
def receive():
    rt = current_app.extensions["holdspace"]
    body, refusal = signed_request(rt)
    if refusal:
        return refusal
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):
        return jsonify({"error": "not JSON"}), 400
    if not isinstance(envelope, dict):
        return jsonify({"error": "not an event"}), 400
    kind = envelope.get("type")
    if kind == "url_verification":
        challenge = envelope.get("challenge")
        if not isinstance(challenge, str):
            return jsonify({"error": "no challenge"}), 400
        return jsonify({"challenge": challenge})
    if kind != "event_callback":
        return jsonify({"ok": True})
    event, event_id = envelope.get("event"), _text(envelope.get("event_id"))
    if not isinstance(event, dict) or event_id is None:
        return jsonify({"error": "not an event"}), 400
    handler = HANDLERS.get(event.get("type"))
    if handler is None:
        log.info("Slack event %s ignored", str(event.get("type"))[:64])
        return jsonify({"ok": True})
    if not _claim(rt, event_id):
        return jsonify({"ok": True, "duplicate": True})
    try:
        handler(rt, envelope, event)
    except Exception as exc:  # noqa: BLE001 - not handled: let Slack's retry try again
        _release(rt, event_id)
        log.warning("Slack event %s not handled: %s", event.get("type"), type(exc).__name__)
        return jsonify({"error": "try again"}), 503
    return jsonify({"ok": True})
