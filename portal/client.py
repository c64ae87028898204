"""The client's pages: a session (player, transcript, summary, downloads), the media stream
(decrypted as it is sent; Range and If-Range answered by werkzeug), the journey across
sessions, and the 'email me a fresh link' form."""

from __future__ import annotations

import hashlib
import logging

from flask import Blueprint, Response, abort, current_app, make_response, render_template, request
from sqlmodel import select
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.datastructures import Range
from werkzeug.http import parse_range_header
from werkzeug.wsgi import wrap_file

from models import Asset, ClientMemory, Summary, Transcript, as_utc, audit
from models import queries as q
from models.db import session_scope
from portal.security import harden, token_page
from vault import IntegrityError, ObjectErased, ObjectNotFound, VaultError
from workers import links
from workers.sessions import may

logger = logging.getLogger(__name__)

bp = Blueprint("client_pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/portal")


@bp.app_template_filter("to_you")
def to_you_filter(text: str) -> str:
    """The client's own first-person words on their page, addressed to them ("my" → "your")."""
    from workers.summaries.text import to_you
    return to_you(text or "")


@bp.app_template_filter("utc_moment")
def utc_moment(moment) -> str:
    """A stored (naive, UTC) moment as ISO 8601 with its zone, for the browser to place in
    the reader's own zone (static/local_time.js)."""
    return as_utc(moment).isoformat()


PLAYABLE = ("video", "audio")
ERRORS = {
    400: ("Something was missing", "That request could not be understood. Please go back and try again."),
    403: ("Not available", "This is not something this link allows."),
    404: ("Link not found", "This link is not complete or not valid. Please open it again from "
                            "your email, and check that the whole address was copied."),
    405: ("Not available", "That cannot be done from here."),
    410: ("Link expired", "This link has expired or was withdrawn."),
    413: ("Too much", "That was more than this page takes."),
    429: ("Please wait", "Too many requests in a short time. Please try again in a minute."),
}


def _rt():
    return current_app.extensions["holdspace"]


def error_page(exc):
    """Any error a person's browser may see outside the dashboard, as a page of ours."""
    title, message = ERRORS.get(exc.code, ("Something went wrong", "Please try again later."))
    if exc.code == 403 and exc.description and not exc.description.startswith("You don't have"):
        message = exc.description  # our own explanation, given where the 403 was raised
    response = make_response(render_template("message.html", title=title, message=message),
                             exc.code or 500)
    return harden(response)


@bp.app_context_processor
def _consent_footer():
    """Every client page can link to the client's consent page (the consent text promises
    it); `consent_url` is set by the views that know whose page it is."""
    return {"consent_url": None}


def consent_url(db, link) -> str | None:
    """The client's own consent page, from any of their pages."""
    from flask import url_for
    token = links.consent_token(db, _rt().settings.secret_key, link.coach_id, link.client_id,
                                ttl_seconds=max(_rt().settings.link_ttl_seconds, 30 * 86400))
    return url_for("consent_pages.consent_page", token=token) if token else None


def _downloads_off(db, link, why: str = "Downloads are not part of what you agreed to share."):
    """A download the client's consent does not allow: a 403 page that says so and links to
    where they can change it (their consent page)."""
    response = make_response(render_template(
        "message.html", title="Not available", message=why + " You can change that on your consent page.",
        action_url=consent_url(db, link), action_text="Open your consent page"), 403)
    return harden(response)


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


def _transcript_or_404(db, coach_id: str, session_id: str) -> Transcript:
    transcript = q.transcript_of(db, coach_id, session_id)
    if transcript is None:
        abort(404)
    return transcript


def _may_download(consent) -> bool:
    return bool(consent) and may(consent.scope_set, "download")


@bp.get("/s/<token>")
@token_page
def session_page(token):
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "session")
        session, client, coach, media, consent = _session_view(db, link)
        transcript = q.transcript_of(db, link.coach_id, session.id)
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
            may_download=_may_download(consent), journey_token=journey_token, energy=energy,
            show_mood=coach.show_mood_to_client, language=transcript.language if transcript else None,
            consent_url=consent_url(db, link))


# One block per body iteration: a default-size vault segment.
MEDIA_BLOCK = 64 * 1024
MEDIA_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
                 "X-Content-Type-Options": "nosniff"}


def _media_etag(asset: Asset) -> str:
    """A strong validator that changes with the stored bytes, so If-Range works; hashed again
    so that no header carries the recording's own digest, a fingerprint of it."""
    return hashlib.sha256(f"holdspace/media\0{asset.object_key}\0{asset.sha256}".encode()
                          ).hexdigest()[:32]


def _unreadable(asset: Asset, exc: VaultError):
    """The answer when the stored recording cannot be opened. Logged by asset id: the link's
    token is in the request path and must stay out of the logs."""
    if isinstance(exc, (ObjectNotFound, ObjectErased)):
        logger.warning("media of asset %s is no longer stored: %s", asset.id, exc)
        status, title, message = 410, "Recording removed", "This recording is no longer stored."
    elif isinstance(exc, IntegrityError):
        logger.error("media of asset %s failed its integrity check: %s", asset.id, exc)
        status, title, message = 502, "Recording unreadable", (
            "The stored copy of this recording failed its integrity check, so it is not "
            "served. Please let your coach know.")
    else:
        logger.error("media of asset %s could not be read: %s", asset.id, exc)
        status, title, message = 503, "Recording unavailable", (
            "The recording cannot be fetched just now. Please try again in a few minutes.")
    response = make_response(render_template("message.html", title=title, message=message),
                             status)
    response.headers.update(MEDIA_HEADERS)
    return response


class _MediaBody:
    """The response body. Once the status is sent a segment failing authentication cannot
    change it, so the failure is logged here (by asset) and raised on, for the server to drop
    the connection: a cut-off download must not pass for a whole one."""

    def __init__(self, body, asset_id: str):
        self._body = body
        self._chunks = iter(body)
        self._asset_id = asset_id

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except VaultError as exc:
            logger.error("media of asset %s cut off mid-stream: %s", self._asset_id, exc)
            raise

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


def _several_ranges(header: str | None) -> bool:
    ranges = parse_range_header(header)
    return ranges is not None and len(ranges.ranges) > 1


def stream_media(asset: Asset, as_download: str | None = None, window: int | None = None):
    """The recording, decrypted as it is sent; werkzeug answers Range, If-Range and the
    other conditional headers from the file object. With a `window`, a range is answered
    with at most that many bytes (a player asks on for the rest, a downloader gets a piece)."""
    try:
        media = _rt().vault.open_file(asset.object_key)
    except VaultError as exc:
        return _unreadable(asset, exc)
    try:
        return _media_response(media, asset, as_download, window)
    except BaseException:
        media.close()
        raise


def _windowed(environ: dict, size: int, window: int) -> dict:
    """The request as if it had asked for at most `window` bytes of its first range; HTTP
    lets a server answer less of an open or long range than was asked (RFC 9110 14.1.2).
    If-Range is dropped: a stale validator would otherwise be answered with the whole file."""
    environ = {k: v for k, v in environ.items() if k != "HTTP_IF_RANGE"}
    ranges = parse_range_header(environ.get("HTTP_RANGE"))
    if ranges is None:
        return environ
    bounds = Range(ranges.units, ranges.ranges[:1]).range_for_length(size)
    if bounds is None:  # unsatisfiable, or not in bytes: answered 416, never whole
        return {**environ, "HTTP_RANGE": f"bytes={size}-"}
    start, stop = bounds
    return {**environ, "HTTP_RANGE": f"bytes={start}-{min(stop, start + window) - 1}"}


def _media_response(media, asset: Asset, as_download: str | None, window: int | None = None):
    response = Response(wrap_file(request.environ, media, MEDIA_BLOCK),
                        content_type=asset.content_type, direct_passthrough=True)
    response.headers.update(MEDIA_HEADERS)
    response.content_length = media.size
    response.set_etag(_media_etag(asset))
    response.last_modified = asset.created_at
    if as_download:
        response.headers.set("Content-Disposition", "attachment", filename=as_download)
    environ = request.environ
    if window is not None:
        environ = _windowed(environ, media.size, window)
    elif _several_ranges(environ.get("HTTP_RANGE")):
        # Answered whole, as RFC 9110 allows: players ask for one range, and a multipart
        # body would be of use to no one we serve.
        environ = {k: v for k, v in environ.items() if k != "HTTP_RANGE"}
    try:
        response.make_conditional(environ, accept_ranges=True, complete_length=media.size)
    except RequestedRangeNotSatisfiable:
        media.close()
        return Response(status=416, headers={**MEDIA_HEADERS, "Accept-Ranges": "bytes",
                                             "Content-Range": f"bytes */{media.size}"})
    if response.status_code in (200, 206) and media.size and request.method != "HEAD":
        # Decrypt the first segment to be sent now, while a failure can still be answered
        # with a status instead of a cut-off body. It stays cached for the first read.
        start = response.content_range.start if response.status_code == 206 else 0
        try:
            media.seek(start)
            media.read(1)
            media.seek(start)
        except VaultError as exc:
            media.close()
            return _unreadable(asset, exc)
    response.response = _MediaBody(response.response, asset.id)
    return response


@bp.get("/s/<token>/media")
def media(token):
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "session", page=False)
        session, _, _, asset, consent = _session_view(db, link)
        if asset is None:
            abort(404)
        whole_allowed = _may_download(consent)
        if not whole_allowed and parse_range_header(request.headers.get("Range")) is None:
            # What a player never sends and a "save as" does: the file in one answer.
            return _downloads_off(db, link, "The recording plays on your session page. Downloading "
                                            "it is not part of what you agreed to share.")
    return stream_media(asset, window=None if whole_allowed else _rt().settings.media_window_bytes)


@bp.get("/s/<token>/captions.vtt")
def captions(token):
    """The transcript as captions for the video player: part of watching, so no download
    scope is needed and nothing is offered as a file."""
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "session", page=False)
        session, _, coach, _, _ = _session_view(db, link)
        transcript = _transcript_or_404(db, coach.id, session.id)
        segments = transcript.segments
    return captions_of(segments)


def captions_of(segments) -> Response:
    """A transcript as the player's WebVTT captions (the client's page and the coach's)."""
    from workers.transcripts import segments_as_vtt
    return Response(segments_as_vtt(segments), mimetype="text/vtt",
                    headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                             "X-Content-Type-Options": "nosniff"})


@bp.get("/s/<token>/download/recording")
def download_recording(token):
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "session", page=False)
        session, client, coach, media, consent = _session_view(db, link)
        if media is None:
            abort(404)
        if not _may_download(consent):
            return _downloads_off(db, link)
        audit.record(db, "client", "recording.downloaded", f"session:{session.id}",
                     coach_id=coach.id, ip=request.remote_addr)
        ext = media.object_key.rsplit(".", 1)[-1]
    return stream_media(media, as_download=f"session-{session.started_at:%Y-%m-%d}.{ext}"
                   if session.started_at else f"session.{ext}")


@bp.get("/s/<token>/transcript.<fmt>")
def download_transcript(token, fmt):
    if fmt not in ("vtt", "txt"):
        abort(404)
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "session", page=False)
        session, client, coach, media, consent = _session_view(db, link)
        transcript = _transcript_or_404(db, coach.id, session.id)
        if not _may_download(consent):
            return _downloads_off(db, link)
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
        sessions = [s for s in q.sessions_of(db, coach.id, client.id)
                    if s.state == "delivered" and s.withheld_at is None]
        summaries = {s.session_id: s.client_tier for s in db.exec(
            select(Summary).where(Summary.coach_id == coach.id,
                                  Summary.session_id.in_([s.id for s in sessions])))}
        memory = db.exec(select(ClientMemory).where(ClientMemory.coach_id == coach.id,
                                                    ClientMemory.client_id == client.id)).first()
        from workers.journey import journey_view
        view = journey_view(sessions, summaries, memory.data if memory else {})
        secret, ttl = _rt().settings.secret_key, _rt().settings.link_ttl_seconds
        for row in view["sessions"]:
            row["token"] = links.session_token(db, secret, coach.id, client.id, row["id"], ttl_seconds=ttl)
        return render_template("journey.html", client=client, coach=coach, view=view, token=token,
                               marked=request.args.get("marked") == "1", consent_url=consent_url(db, link))


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
