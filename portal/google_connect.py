"""Connecting a coach's Google account for Meet (on the dashboard, so sign-in and CSRF apply):
Google's OAuth consent, the sealed refresh token, the event subscription; and disconnecting."""

from __future__ import annotations

import contextlib
import secrets

from flask import abort, current_app, g, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlmodel import select

from integrations import google
from models import GoogleConnection, audit, utcnow
from models.db import session_scope
from portal.coach import bp

STATE_SALT = "holdspace.google-connect"


def _rt():
    return current_app.extensions["holdspace"]


def _redirect_uri() -> str:
    return f"{_rt().settings.public_base_url}/coach/google/callback"


def _connection(db, coach_id: str) -> GoogleConnection | None:
    return db.exec(select(GoogleConnection).where(GoogleConnection.coach_id == coach_id)).first()


@bp.get("/google")
def google_status():
    with session_scope(_rt().engine) as db:
        conn = _connection(db, g.coach.id)
        return render_template("coach/google.html", conn=conn, notice=request.args.get("notice"),
                               configured=_rt().settings.google_oauth_configured)


@bp.post("/google/connect")
def google_connect():
    s = _rt().settings
    if not s.google_oauth_configured:
        abort(404)
    state = URLSafeTimedSerializer(s.secret_key, salt=STATE_SALT).dumps(
        {"c": g.coach.id, "n": secrets.token_urlsafe(12)})
    return redirect(google.authorization_url(s.google_client_id, s.google_client_secret, _redirect_uri(), state,
                                             auth_uri=s.google_oauth_auth_url, token_uri=s.google_oauth_token_url,
                                             login_hint=g.coach.email), 303)


@bp.get("/google/callback")
def google_callback():
    from workers.platforms.meet import TOKEN_PURPOSE, keep_subscription
    s, rt = _rt().settings, _rt()
    state = request.args.get("state", "")
    # A state that is forged, stale or another coach's is an authorisation failure, not ours to use.
    try:
        data = URLSafeTimedSerializer(s.secret_key, salt=STATE_SALT).loads(state, max_age=900)
    except BadSignature:
        abort(403, "This Google connection attempt has expired or is not yours. Please start again.")
    if not isinstance(data, dict) or data.get("c") != g.coach.id:
        abort(403, "This Google connection attempt has expired or is not yours. Please start again.")
    if request.args.get("error") or not request.args.get("code"):
        return redirect(url_for("coach.google_status", notice="Google was not connected."), 303)
    try:
        grant = google.exchange_code(request.args["code"], client_id=s.google_client_id,
                                     client_secret=s.google_client_secret, redirect_uri=_redirect_uri(),
                                     state=state, token_uri=s.google_oauth_token_url)
    except google.GoogleError as exc:
        current_app.logger.warning("Google connect failed for coach %s: %s", g.coach.id, type(exc).__name__)
        return redirect(url_for("coach.google_status", notice="Google did not accept the connection."), 303)
    if grant.get("missing_scopes") or not grant.get("refresh_token"):
        return redirect(url_for("coach.google_status",
                                notice="holdspace needs every permission it asked for (Meet recordings, the "
                                       "Drive files Meet creates, attendee emails). Please connect again."), 303)
    sealed = rt.vault.seal(grant["refresh_token"].encode(), TOKEN_PURPOSE.format(coach_id=g.coach.id))
    user_id = str(grant.get("google_user_id") or "")
    with session_scope(rt.engine) as db:
        conn = _connection(db, g.coach.id) or GoogleConnection(coach_id=g.coach.id, mode="oauth")
        conn.mode, conn.refresh_token_sealed, conn.google_user_id = "oauth", sealed, user_id
        conn.status, conn.status_reason, conn.updated_at = "active", None, utcnow()
        db.add(conn)
        audit.record(db, f"coach:{g.coach.id}", "google.connected", f"coach:{g.coach.id}", coach_id=g.coach.id,
                     ip=request.remote_addr)
    notice = "Google is connected."
    if s.google_pubsub_topic:
        try:
            keep_subscription(rt, g.coach.id)
            notice = "Google is connected; holdspace will hear about your Meet recordings."
        except google.GoogleError:
            notice = "Google is connected, but the event subscription failed; holdspace will retry within the hour."
    return redirect(url_for("coach.google_status", notice=notice), 303)


@bp.post("/google/disconnect")
def google_disconnect():
    from workers.platforms.meet import client_for
    rt = _rt()
    with session_scope(rt.engine) as db:
        conn = _connection(db, g.coach.id)
        name = conn.subscription_name if conn else None
    if conn is None:
        return redirect(url_for("coach.google_status"), 303)
    if name:
        with contextlib.suppress(google.GoogleError):
            with contextlib.closing(client_for(rt, g.coach.id)) as client:
                client.delete_subscription(name)
    with session_scope(rt.engine) as db:
        db.delete(_connection(db, g.coach.id))
        audit.record(db, f"coach:{g.coach.id}", "google.disconnected", f"coach:{g.coach.id}",
                     coach_id=g.coach.id, ip=request.remote_addr)
    return redirect(url_for("coach.google_status", notice="Google is disconnected; its token is deleted."), 303)
