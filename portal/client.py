"""The client's pages: a session (player, transcript, summary, downloads), the media stream
with Range support, the journey across sessions, and the 'email me a fresh link' form."""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, current_app, make_response, render_template, request
from sqlmodel import select

from models import Asset, ClientMemory, Summary, Transcript, audit
from models import queries as q
from models.db import session_scope
from portal.security import harden, token_page
from workers import links

bp = Blueprint("client_pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/portal")

PLAYABLE = ("video", "audio")


def _rt():
    return current_app.extensions["holdspace"]


def _gone(db, exc: links.LinkGone, token: str):
    client = q.client_of(db, exc.link.coach_id, exc.link.client_id)
    can_refresh = client is not None and client.withdrawn_at is None
    return render_template("gone.html", reason=exc.reason, token=token, can_refresh=can_refresh), 410


def open_link(db, token: str, purpose: str, *, page: bool = True):
    """The live link behind a token; otherwise the answer is raised: 404 for anything forged
    or unknown, 410 for an expired or revoked one (with the fresh-link page when a page was
    asked for, a bare 410 for media and downloads)."""
    try:
        # A page view is a use (counted, audited); the player's many Range requests are not.
        return links.check(db, _rt().settings.secret_key, token, purpose, ip=request.remote_addr,
                           count_use=page)
    except links.LinkNotFound:
        abort(404)
    except links.LinkGone as exc:
        if not page:
            abort(410)
        body, status = _gone(db, exc, token)
        abort(harden(make_response(body, status)))


def _session_view(db, link):
    session = q.session_of(db, link.coach_id, link.session_id) if link.session_id else None
    if session is None:
        abort(404)
    client = q.client_of(db, link.coach_id, link.client_id)
    coach = q.coach_by_id(db, link.coach_id)
    assets = q.assets_of_session(db, link.coach_id, session.id)
    media = next((a for kind in PLAYABLE for a in assets if a.kind == kind), None)
    consent = q.active_consent(db, link.coach_id, client.id)
    return session, client, coach, media, consent


def _media_asset(db, link) -> Asset:
    session, _, _, media, _ = _session_view(db, link)
    if media is None:
        abort(404)
    return media


def _may_download(consent) -> bool:
    return bool(consent and "share_with_client" in consent.scope_set)


@bp.get("/s/<token>")
@token_page
def session_page(token):
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "session")
        session, client, coach, media, consent = _session_view(db, link)
        transcript = db.exec(select(Transcript).where(Transcript.coach_id == link.coach_id,
                                                      Transcript.session_id == session.id)).first()
        summary = db.exec(select(Summary).where(Summary.coach_id == link.coach_id,
                                                Summary.session_id == session.id)).first()
        journey = links.current_journey_link(db, link.coach_id, client.id)
        journey_token = links.token_for(_rt().settings.secret_key, journey) if journey else None
        from workers.journey import energy_chart
        energy = energy_chart((summary.client_tier.get("energy") if summary else None),
                              (transcript.segments[-1]["end"] if transcript and transcript.segments else None))
        return render_template(
            "session.html", token=token, session=session, client=client, coach=coach, media=media,
            segments=(transcript.segments if transcript else []), summary=summary,
            may_download=_may_download(consent), journey_token=journey_token, energy=energy)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int):
    """(start, end_exclusive) for a single byte range, None for no Range, 'bad' if unsatisfiable."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return "bad"
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)) + 1, size) if m.group(2) else size
        if m.group(2) and int(m.group(2)) < start:
            return "bad"
    else:  # a suffix: the last N bytes
        start, end = max(size - int(m.group(2)), 0), size
        if int(m.group(2)) == 0:
            return "bad"
    if start >= size or start >= end:
        return "bad"
    return start, end


def _stream(asset: Asset, as_download: str | None = None):
    vault = _rt().vault
    size = asset.size
    rng = parse_range(request.headers.get("Range"), size)
    headers = {"Accept-Ranges": "bytes", "Content-Type": asset.content_type,
               "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff"}
    if as_download:
        headers["Content-Disposition"] = f'attachment; filename="{as_download}"'
    if rng == "bad":
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status=416, headers=headers)
    start, end = rng if rng else (0, size)
    headers["Content-Length"] = str(end - start)
    if rng:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    body = vault.open_range(asset.object_key, start, end) if end > start else iter(())
    return Response(body, status=206 if rng else 200, headers=headers, direct_passthrough=True)


@bp.get("/s/<token>/media")
def media(token):
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "session", page=False)
        asset = _media_asset(db, link)
    return _stream(asset)


@bp.get("/s/<token>/download/recording")
def download_recording(token):
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "session", page=False)
        session, client, coach, media, consent = _session_view(db, link)
        if media is None or not _may_download(consent):
            abort(403, "Downloads are not part of what you agreed to share.")
        audit.record(db, "client", "recording.downloaded", f"session:{session.id}",
                     coach_id=coach.id, ip=request.remote_addr)
        ext = media.object_key.rsplit(".", 1)[-1]
    return _stream(media, as_download=f"session-{session.started_at:%Y-%m-%d}.{ext}"
                   if session.started_at else f"session.{ext}")


@bp.get("/s/<token>/transcript.<fmt>")
def download_transcript(token, fmt):
    if fmt not in ("vtt", "txt"):
        abort(404)
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "session", page=False)
        session, client, coach, media, consent = _session_view(db, link)
        transcript = db.exec(select(Transcript).where(Transcript.coach_id == coach.id,
                                                      Transcript.session_id == session.id)).first()
        if transcript is None:
            abort(404)
        if not _may_download(consent):
            abort(403, "Downloads are not part of what you agreed to share.")
        audit.record(db, "client", "transcript.downloaded", f"session:{session.id}",
                     coach_id=coach.id, ip=request.remote_addr, format=fmt)
        segments = transcript.segments
    from workers.transcripts import segments_as_text, segments_as_vtt
    body = segments_as_vtt(segments) if fmt == "vtt" else segments_as_text(segments)
    return Response(body, mimetype="text/vtt" if fmt == "vtt" else "text/plain",
                    headers={"Content-Disposition": f'attachment; filename="transcript.{fmt}"',
                             "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@bp.get("/j/<token>")
@token_page
def journey(token):
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "journey")
        client = q.client_of(db, link.coach_id, link.client_id)
        coach = q.coach_by_id(db, link.coach_id)
        sessions = [s for s in q.sessions_of(db, coach.id, client.id) if s.state == "delivered"]
        summaries = {s.session_id: s.client_tier for s in db.exec(
            select(Summary).where(Summary.coach_id == coach.id,
                                  Summary.session_id.in_([s.id for s in sessions])))}
        memory = db.exec(select(ClientMemory).where(ClientMemory.coach_id == coach.id,
                                                    ClientMemory.client_id == client.id)).first()
        from workers.journey import journey_view
        view = journey_view(sessions, summaries, memory.data if memory else {})
        return render_template("journey.html", client=client, coach=coach, view=view)


@bp.post("/links/fresh")
@token_page
def fresh_link():
    """Answers the same whatever happens, so it reveals nothing about any address."""
    token, email = request.form.get("token", ""), request.form.get("email", "")
    if len(token) < 2000 and len(email) < 320:
        with session_scope(_rt().engine) as db:
            try:
                links.check(db, _rt().settings.secret_key, token, "session", count_use=False)
                link_id = None  # still valid: nothing to refresh
            except links.LinkGone as exc:
                link_id = exc.link.id
            except links.LinkNotFound:
                link_id = _gone_link_id(db, token)
        if link_id:
            from workers.delivery import fresh_link as send
            try:
                _rt().queue("default").enqueue(send, link_id, email)
            except Exception:  # noqa: BLE001 - the client may simply ask again
                current_app.logger.warning("fresh-link request not queued")
    return render_template("message.html", title="Thank you",
                           message="If that address is the one on file, a fresh link is on its way.")


def _gone_link_id(db, token: str) -> str | None:
    """A journey or consent link that expired is refreshed the same way."""
    for purpose in ("journey", "consent"):
        try:
            links.check(db, _rt().settings.secret_key, token, purpose, count_use=False)
        except links.LinkGone as exc:
            return exc.link.id
        except links.LinkNotFound:
            continue
    return None
