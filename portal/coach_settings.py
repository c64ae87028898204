"""The coach's settings page (`/coach/settings`): what is kept and for how long, review before
send, time zone, where notes go, the mood line, and the state of each connection with its page.
The checking and saving is workers/coach_settings.py's."""

from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, request, url_for
from sqlmodel import select

from models import GoogleConnection
from models import queries as q
from models.db import session_scope
from portal.coach import bp
from workers import coach_settings
from workers.coaching import CoachError


def _rt():
    return current_app.extensions["holdspace"]


def _connections(db, coach) -> list[tuple[str, str, str]]:
    """(service, its state in words, its page) for each place the coach connects."""
    zoom = q.zoom_connection_of(db, coach.id)
    google = db.exec(select(GoogleConnection).where(GoogleConnection.coach_id == coach.id)).first()
    return [
        ("Zoom", (zoom.status if zoom else "not connected").replace("_", " "), url_for("coach.zoom_status")),
        ("Google Meet", (google.status if google else "not connected"), url_for("coach.google_status")),
        ("Slack", "linked" if coach.slack_user_id else "not linked", url_for("coach.slack_status")),
    ]


@bp.get("/settings")
def settings_page():
    with session_scope(_rt().engine) as db:
        coach = q.coach_by_id(db, g.coach.id)
        connections = _connections(db, coach)
    return render_template("coach/settings.html", coach=coach, connections=connections,
                           zones=coach_settings.time_zones(), media_policies=coach_settings.MEDIA_POLICY_LABELS,
                           delivery_modes=coach_settings.DELIVERY_LABELS,
                           notify_channels=coach_settings.NOTIFY_LABELS)


@bp.post("/settings")
def settings_save():
    try:
        changed = coach_settings.update(_rt(), g.coach.id, request.form, actor=f"coach:{g.coach.id}")
        flash("Saved." if changed else "Nothing changed.", "ok")
    except CoachError as exc:
        flash(str(exc), "error")
    return redirect(url_for("coach.settings_page"), 303)
