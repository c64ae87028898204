"""The coach's session page, beyond reading: the recording through a coach-scoped media route,
and review before send (edit the client's summary, then send it). The work is the workers'
(workers/review.py); these views only check whose session it is and call them."""

from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, request, url_for

from models import queries as q
from models.db import session_scope
from portal.client import PLAYABLE, captions_of, stream_media
from portal.coach import bp, require_own_session, session_action
from workers import review
from workers.coaching import CoachError


def _rt():
    return current_app.extensions["holdspace"]


@bp.get("/sessions/<session_id>/media")
def session_media(session_id):
    """The recording for the coach's own player; Range requests as for the client's."""
    with session_scope(_rt().engine) as db:
        assets = q.assets_of_session(db, g.coach.id, session_id)  # none of another coach's
    media = next((a for kind in PLAYABLE for a in assets if a.kind == kind), None)
    if media is None:
        abort(404)
    return stream_media(media)


@bp.get("/sessions/<session_id>/captions.vtt")
def session_captions(session_id):
    """The transcript as captions for the coach's player on a video."""
    with session_scope(_rt().engine) as db:
        transcript = q.transcript_of(db, g.coach.id, session_id)
        if transcript is None:
            abort(404)
        segments = transcript.segments
    return captions_of(segments)


@bp.post("/sessions/<session_id>/summary")
def edit_summary(session_id):
    require_own_session(session_id)
    form = request.form
    try:
        flash(review.edit_summary(_rt(), g.coach.id, session_id, overview=form.get("overview", ""),
                                  commitments=form.get("commitments", ""),
                                  homework=form.get("homework", ""), actor=f"coach:{g.coach.id}"), "ok")
    except CoachError as exc:
        flash(str(exc), "error")
    return redirect(url_for("coach.session_view", session_id=session_id, _anchor="review"), 303)


@bp.post("/sessions/<session_id>/send")
@session_action
def send_reviewed(session_id):
    return review.send_reviewed(_rt(), g.coach.id, session_id, actor=f"coach:{g.coach.id}")
