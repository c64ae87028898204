"""Clients and their consent, from the dashboard: add a client, email the consent request,
record a verbal consent (the coach attests it), delete a client after a confirmation, revoke
their links; and the next step for a session that waits: assign an unmatched recording,
fetch a refused one once consent exists. Every operation is workers/coaching.py's, the same
the Slack command uses."""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for

from models import CONSENT_SCOPES
from models import queries as q
from models.db import session_scope
from portal.coach import bp, require_own_session, session_action
from workers import coaching, links
from workers.coaching import CoachError


def _rt():
    return current_app.extensions["holdspace"]


def _actor() -> str:
    return f"coach:{g.coach.id}"


def _client_email(client_id: str) -> tuple[str, str]:
    """(email, name) of one of this coach's clients; 404 for anyone else's."""
    with session_scope(_rt().engine) as db:
        client = q.client_of(db, g.coach.id, client_id)
        if client is None or client.email is None:
            abort(404)
        return client.email, client.name


def _to_client(client_id: str, anchor: str | None = None):
    return redirect(url_for("coach.client_view", client_id=client_id, _anchor=anchor), 303)


def _run(operation, *args, **kwargs) -> bool:
    try:
        flash(operation(_rt(), g.coach.id, *args, actor=_actor(), **kwargs), "ok")
        return True
    except CoachError as exc:
        flash(str(exc), "error")
        return False


@bp.post("/clients")
def add_client():
    email, name = request.form.get("email", "")[:320], request.form.get("name", "")[:200]
    ask = request.form.get("ask_consent") == "on"
    if not _run(coaching.ask_for_consent if ask else coaching.add_client, email, name or None):
        return redirect(url_for("coach.dashboard", _anchor="add-client"), 303)
    with session_scope(_rt().engine) as db:
        client = q.client_by_email(db, g.coach.id, email.strip().lower())
        client_id = client.id if client else None
    return _to_client(client_id) if client_id else redirect(url_for("coach.dashboard"), 303)


@bp.post("/clients/<client_id>/consent-request")
def ask_consent(client_id):
    email, _ = _client_email(client_id)
    _run(coaching.ask_for_consent, email)
    return _to_client(client_id, "consent-actions")


@bp.post("/clients/<client_id>/verbal-consent")
def verbal_consent(client_id):
    email, name = _client_email(client_id)
    if request.form.get("attest") != "yes":
        flash(f"Nothing was recorded: tick the box to attest that {name} agreed aloud.", "error")
        return _to_client(client_id, "consent-actions")
    chosen = [s for s in request.form.getlist("scope") if s in CONSENT_SCOPES]
    _run(coaching.record_verbal_consent, email, scopes=",".join(chosen) or "none")
    return _to_client(client_id, "consent-actions")


@bp.post("/clients/<client_id>/revoke-links")
def revoke_client_links(client_id):
    _, name = _client_email(client_id)
    with session_scope(_rt().engine) as db:
        n = links.revoke_for_client(db, g.coach.id, client_id, actor=_actor())
    flash(f"Revoked {n} link{'s' if n != 1 else ''} of {name}'s. A fresh link is sent when you resend a session.", "ok")
    return _to_client(client_id)


@bp.get("/clients/<client_id>/delete")
def delete_client_confirm(client_id):
    with session_scope(_rt().engine) as db:
        client = q.client_of(db, g.coach.id, client_id)
        if client is None or client.email is None:
            abort(404)
        sessions = len(q.sessions_of(db, g.coach.id, client.id))
    return render_template("coach/delete_client.html", client=client, sessions=sessions)


@bp.post("/clients/<client_id>/delete")
def delete_client(client_id):
    email, _ = _client_email(client_id)
    if request.form.get("confirm") != "yes":
        flash("Nothing was deleted: tick the box to confirm.", "error")
        return redirect(url_for("coach.delete_client_confirm", client_id=client_id), 303)
    if _run(coaching.delete_client, email):
        return redirect(url_for("coach.dashboard"), 303)
    return _to_client(client_id)


@bp.post("/sessions/<session_id>/assign")
def assign(session_id):
    require_own_session(session_id)
    with session_scope(_rt().engine) as db:
        client = q.client_of(db, g.coach.id, request.form.get("client_id", ""))
        email = client.email if client else None
    if email is None:
        flash("Choose one of your clients.", "error")
    else:
        _run(coaching.assign, session_id, email)
    if request.form.get("back") == "dashboard":
        return redirect(url_for("coach.dashboard"), 303)
    return redirect(url_for("coach.session_view", session_id=session_id), 303)


@bp.post("/sessions/<session_id>/fetch")
@session_action
def fetch_now(session_id):
    return coaching.fetch_now(_rt(), g.coach.id, session_id, actor=_actor())
