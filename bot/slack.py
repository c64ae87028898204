"""`POST /slack/commands`: verify Slack's signature (slack_sdk's verifier), find the coach
behind the Slack user (and, with many workspaces, check it is theirs), and answer within
Slack's 3 seconds — slow commands are acknowledged and their answer is posted to
`response_url` by a worker. The Events API (bot/events.py) joins this blueprint; the
"Add to Slack" install is a browser's, in portal/slack_install.py."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from flask import Blueprint, current_app, jsonify, request

from bot import commands, events
from bot.signature import signed_request
from workers import slack_installs

log = logging.getLogger(__name__)
bp = Blueprint("slack_bot", __name__)
bp.register_blueprint(events.bp)


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


@bp.post("/slack/commands")
def slash_command():
    rt = current_app.extensions["holdspace"]
    _, refusal = signed_request(rt)  # the form is read from request.form below
    if refusal:
        return refusal
    if not _first_delivery(rt, request.headers.get("X-Slack-Signature", "")):
        return jsonify({"error": "this request was already received"}), 401
    form = request.form
    if form.get("command", "/holdspace") != "/holdspace" and not form.get("command", "").endswith("holdspace"):
        return jsonify({"error": "unknown command"}), 400
    user_id, text = form.get("user_id", ""), form.get("text", "")
    if not user_id:
        return jsonify({"error": "user_id missing"}), 400
    who = slack_installs.caller(rt, team_id=form.get("team_id"), enterprise_id=form.get("enterprise_id"),
                                user_id=user_id)
    if who.coach_id is None:
        return _reply(_refusal(rt, who, user_id))
    coach_id = who.coach_id
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


def _refusal(rt, who: slack_installs.Caller, user_id: str) -> str:
    """What a Slack user who is no coach's here is told; never anything of any coach's."""
    if who.refusal == "unlinked":
        return ("Hello! Your Slack account isn't connected to holdspace yet. To connect it, open this "
                "link and sign in to your holdspace dashboard (it works once, within an hour): " + who.link)
    if who.refusal == "not_installed":
        return ("holdspace isn't installed in this Slack workspace. Someone in it can add it here: "
                f"{rt.settings.public_base_url}{slack_installs.INSTALL_PATH}")
    if who.refusal == "other_workspace":
        return ("Your Slack account is connected to holdspace in another Slack workspace; "
                "use `/holdspace` there.")
    return ("Hello! Your Slack account isn't connected to holdspace yet. "
            "Ask your holdspace administrator to add you "
            "(`flask --app app coach add --slack-user-id " + user_id + " …`).")


def response_url_ok(url: str, api_base_url: str) -> bool:
    """Answers go to Slack's hooks host (or wherever SLACK_API_BASE_URL points, for a stand-in)."""
    parsed, api = urlparse(url or ""), urlparse(api_base_url)
    if parsed.scheme == "https" and parsed.hostname == "hooks.slack.com":
        return True
    return bool(parsed.hostname) and (parsed.scheme, parsed.netloc) == (api.scheme, api.netloc)
