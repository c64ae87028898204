"""The client marks one of their commitments done, from their journey page (POST, then back to
the page). The journey link is the client's credential, as for the page itself; the change
is workers/commitments.py's."""

from __future__ import annotations

from flask import abort, current_app, redirect, request, url_for

from models.db import session_scope
from portal.client import bp, open_link
from portal.security import token_page
from workers import commitments
from workers.sessions import Fenced


@bp.post("/j/<token>/done")
@token_page
def mark_commitment_done(token):
    key = request.form.get("commitment", "")[:64]
    with session_scope(current_app.extensions["holdspace"].engine) as db:
        link = open_link(db, token, "journey")
        try:
            commitments.mark_done(db, link.coach_id, link.client_id, key, ip=request.remote_addr)
        except commitments.NoSuchCommitment:
            abort(404)
        except Fenced:
            abort(403, "This can no longer be changed.")
    return redirect(url_for("client_pages.journey", token=token, marked=1, _anchor="commitments"), 303)
