"""Connecting a coach's own Zoom (on the dashboard, so sign-in and CSRF apply): Zoom's OAuth
consent with a signed state bound to the coach, the code exchange, who the coach is at Zoom,
and disconnecting. The tokens themselves are the workers' (workers/platforms/zoom_tokens.py)."""

from __future__ import annotations

import secrets

from flask import abort, current_app, g, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from integrations.zoom import ZoomClient, ZoomError
from models import queries as q
from models.db import session_scope
from portal.coach import bp
from workers.platforms import zoom_tokens

STATE_SALT = "holdspace.zoom-connect"
STATE_MAX_AGE_S = 900
_NOT_YOURS = "This Zoom connection attempt has expired or is not yours. Please start again."


def _rt():
    return current_app.extensions["holdspace"]


def _redirect_uri() -> str:
    return f"{_rt().settings.public_base_url}/coach/zoom/callback"


def _states() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_rt().settings.secret_key, salt=STATE_SALT)


def _status(notice: str):
    return redirect(url_for("coach.zoom_status", notice=notice), 303)


@bp.get("/zoom")
def zoom_status():
    with session_scope(_rt().engine) as db:
        conn = q.zoom_connection_of(db, g.coach.id)
        return render_template("coach/zoom.html", conn=conn, notice=request.args.get("notice"),
                               configured=_rt().settings.zoom_connect_configured,
                               practice=_rt().zoom.configured)


@bp.post("/zoom/connect")
def zoom_connect():
    app = zoom_tokens.oauth_app(_rt())
    if app is None:
        abort(404)
    state = _states().dumps({"c": g.coach.id, "n": secrets.token_urlsafe(12)})
    return redirect(app.authorization_url(_redirect_uri(), state), 303)


@bp.get("/zoom/callback")
def zoom_callback():
    rt = _rt()
    app = zoom_tokens.oauth_app(rt)
    if app is None:
        abort(404)
    # A forged, stale or other coach's state is refused before anything is asked of Zoom.
    try:
        data = _states().loads(request.args.get("state", ""), max_age=STATE_MAX_AGE_S)
    except BadSignature:
        abort(403, _NOT_YOURS)
    if not isinstance(data, dict) or data.get("c") != g.coach.id:
        abort(403, _NOT_YOURS)
    code = request.args.get("code", "")
    if request.args.get("error") or not code:
        return _status("Zoom was not connected.")
    try:
        grant = app.exchange_code(code, _redirect_uri())
        me = ZoomClient(None, None, None, token_source=lambda _stale: grant.access_token,
                        api_base_url=rt.settings.zoom_api_base_url).get_me()
        zoom_tokens.connect(rt, g.coach.id, grant, me, ip=request.remote_addr)
    except zoom_tokens.ZoomUserTaken:
        return _status("That Zoom account is already connected to another holdspace coach.")
    except ZoomError as exc:
        current_app.logger.warning("Zoom connect failed for coach %s: %s", g.coach.id, type(exc).__name__)
        return _status("Zoom did not accept the connection. Please try again.")
    return _status("Zoom is connected; holdspace will fetch your cloud recordings as they are ready.")


@bp.post("/zoom/disconnect")
def zoom_disconnect():
    if not zoom_tokens.disconnect(_rt(), g.coach.id, ip=request.remote_addr):
        return redirect(url_for("coach.zoom_status"), 303)
    return _status("Zoom is disconnected; its tokens are deleted and revoked at Zoom.")
