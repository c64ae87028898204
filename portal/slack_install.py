""""Add to Slack" (OAuth v2). `GET /slack/install` sends the browser to Slack's authorize page
with a signed, one-time state, also kept in a cookie; `GET /slack/oauth_redirect` checks the
state, then the code is exchanged and the workspace's installation stored
(workers/slack_installs.py). The installer is linked to the coach who began signed in only when
the redirect comes back to the browser that began (the cookie), so an authorize link handed to
someone else cannot tie their Slack account to the coach who made it."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, make_response, redirect, request
from slack_sdk.oauth import OAuthStateUtils, RedirectUriPageRenderer

from integrations.slack import SlackError, SlackUnreachable
from portal.coach import signed_in_coach
from portal.security import harden
from workers import slack_installs

log = logging.getLogger(__name__)
bp = Blueprint("slack_install", __name__)

_cookies = OAuthStateUtils(expiration_seconds=slack_installs.STATE_TTL_SECONDS)
_pages = RedirectUriPageRenderer(install_path=slack_installs.INSTALL_PATH,
                                 redirect_uri_path=slack_installs.REDIRECT_PATH)


def _rt():
    return current_app.extensions["holdspace"]


def _configured():
    rt = _rt()
    if not rt.settings.slack_oauth_configured:
        abort(404)
    return rt


def _page(html: str, status: int = 200):
    return harden(make_response(html, status, {"Content-Type": "text/html; charset=utf-8"}))


def _failed(reason: str, status: int):
    response = _page(_pages.render_failure_page(reason), status)
    response.delete_cookie(_cookies.cookie_name, path=slack_installs.REDIRECT_PATH)
    return response


@bp.get(slack_installs.INSTALL_PATH)
def install():
    rt = _configured()
    # A coach signed in to the dashboard who begins the install is linked to the installer.
    coach = signed_in_coach()
    state = slack_installs.state_store(rt).issue(coach_id=coach.id if coach else None)
    response = redirect(slack_installs.install_url(rt, state), 302)
    response.set_cookie(_cookies.cookie_name, state, max_age=_cookies.expiration_seconds,
                        path=slack_installs.REDIRECT_PATH, httponly=True, samesite="Lax",
                        secure=rt.settings.public_base_url.startswith("https://"))
    return harden(response)


@bp.get(slack_installs.REDIRECT_PATH)
def oauth_redirect():
    rt = _configured()
    state = request.args.get("state", "")
    if not state:
        return _failed("this installation has no state; please start again", 403)
    same_browser = _cookies.is_valid_browser(state, {"cookie": request.headers.get("Cookie")})
    try:
        began = slack_installs.state_store(rt).redeem(state)
    except Exception as exc:  # noqa: BLE001 - Redis down: whether the state was spent is unknown
        log.warning("Slack install state not checked: %s", type(exc).__name__)
        return _failed("installing is unavailable for a moment; please start again shortly", 503)
    if began is None:
        return _failed("this installation has expired or was already completed", 403)
    if request.args.get("error"):
        return _failed("holdspace was not added to Slack", 200)
    code = request.args.get("code", "")
    if not code:
        return _failed("Slack sent no authorization code", 400)
    try:
        done = slack_installs.finish_install(rt, code, began.get("c") if same_browser else None,
                                             request.remote_addr)
    except SlackError as exc:
        log.warning("Slack installation not completed: %s", exc.code or exc)
        if isinstance(exc, SlackUnreachable):
            return _failed("Slack could not be reached; please start again shortly", 503)
        return _failed("Slack did not accept the installation", 400)
    response = _page(_pages.render_success_page(app_id=done.app_id, team_id=done.team_id,
                                                is_enterprise_install=done.is_enterprise_install,
                                                enterprise_url=done.enterprise_url))
    response.delete_cookie(_cookies.cookie_name, path=slack_installs.REDIRECT_PATH)
    return response
