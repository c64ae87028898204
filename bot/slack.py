"""`POST /slack/commands`: verify Slack's signature (slack_sdk's verifier), find the coach
behind the Slack user, and answer within Slack's 3 seconds — slow commands are acknowledged
and their answer is posted to `response_url` by a worker."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from flask import Blueprint, current_app, jsonify, request
from slack_sdk.signature import SignatureVerifier

from bot import commands
from integrations.payloads import is_timestamp
from models import queries as q
from models.db import session_scope

log = logging.getLogger(__name__)
bp = Blueprint("slack_bot", __name__)


def _reply(text: str):
    # No unfurling: a one-time sign-in link must not be opened by a link preview.
    return jsonify({"response_type": "ephemeral", "text": text, "unfurl_links": False})


# slack_sdk's verifier accepts a signed request for five minutes; each signature is
# remembered that long, so a captured request cannot be played again inside the window.
REPLAY_WINDOW_SECONDS = 5 * 60


def _first_delivery(rt, signature: str) -> bool:
    try:
        return bool(rt.redis.set(f"slack:seen:{signature}", b"1", nx=True, ex=REPLAY_WINDOW_SECONDS))
    except Exception as exc:  # noqa: BLE001 - Redis down: the command still answers
        log.warning("Slack replay check skipped: %s", type(exc).__name__)
        return True


def _signed_by_slack(verifier: SignatureVerifier, body: bytes, headers) -> bool:
    """slack_sdk's check (it rejects timestamps more than 5 minutes off), less the inputs on
    which it raises instead of answering, so that they get a 401 and not a 500: it calls int()
    on the timestamp ('²' or 5,000 digits raise), decodes the body as UTF-8 before checking
    anything else, and compares signatures with hmac.compare_digest on str, which raises on
    non-ASCII text. Slack itself sends ASCII signatures and UTF-8 bodies."""
    if not is_timestamp(headers.get("X-Slack-Request-Timestamp")):
        return False
    if not headers.get("X-Slack-Signature", "").isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return verifier.is_valid_request(body, dict(headers))


@bp.post("/slack/commands")
def slash_command():
    rt = current_app.extensions["holdspace"]
    secret = rt.settings.slack_signing_secret
    if not secret:
        return jsonify({"error": "Slack is not configured"}), 503
    body = request.get_data(cache=True)
    if not _signed_by_slack(SignatureVerifier(secret), body, request.headers):
        return jsonify({"error": "signature check failed"}), 401
    if not _first_delivery(rt, request.headers.get("X-Slack-Signature", "")):
        return jsonify({"error": "this request was already received"}), 401
    form = request.form
    if form.get("command", "/holdspace") != "/holdspace" and not form.get("command", "").endswith("holdspace"):
        return jsonify({"error": "unknown command"}), 400
    user_id, text = form.get("user_id", ""), form.get("text", "")
    if not user_id:
        return jsonify({"error": "user_id missing"}), 400
    with session_scope(rt.engine) as db:
        coach = q.coach_by_slack_user(db, user_id)
        coach_id = coach.id if coach else None
    if coach_id is None:
        return _reply("Hello! Your Slack account isn't connected to holdspace yet. "
                      "Ask your holdspace administrator to add you "
                      "(`flask --app app coach add --slack-user-id " + user_id + " …`).")
    name = (text.split() or ["help"])[0].lower()
    command = commands.COMMANDS.get(name)
    actor = f"coach:{coach_id}"
    if command and command.slow and "help" not in text.split()[1:2]:
        response_url = form.get("response_url", "")
        if not response_url_ok(response_url, rt.settings.slack_api_base_url):
            return jsonify({"error": "response_url is not Slack's"}), 400
        try:
            rt.queue("default").enqueue(commands.answer_later, coach_id, text, response_url, actor)
        except Exception:  # noqa: BLE001 - the queue is down: say so rather than time out
            return _reply("holdspace is busy right now; please try again in a minute.")
        return _reply(f"Working on `{name}`…")
    return _reply(commands.run(rt, coach_id, text, actor))


def response_url_ok(url: str, api_base_url: str) -> bool:
    """Answers go to Slack's hooks host (or wherever SLACK_API_BASE_URL points, for a stand-in)."""
    parsed, api = urlparse(url or ""), urlparse(api_base_url)
    if parsed.scheme == "https" and parsed.hostname == "hooks.slack.com":
        return True
    return bool(parsed.hostname) and (parsed.scheme, parsed.netloc) == (api.scheme, api.netloc)
