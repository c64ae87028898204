"""The coach dashboard (`/coach`): magic-link sign-in, clients with their consent, sessions with
both tiers side by side, private notes, search, the briefing and the audit trail.

Every view takes the coach from the signed-in session and from nowhere else, and looks things up
through the coach-scoped queries, so another coach's id answers exactly like a missing one (404)."""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import timedelta
from functools import wraps

from flask import (Blueprint, abort, current_app, flash, g, redirect, render_template, request,
                   session, url_for)
from markupsafe import Markup, escape
from sqlmodel import func, select

from models import (CONSENT_SCOPES, AuditEvent, ClientMemory, CoachInsight, CoachingSession, Link,
                    Summary, audit, utcnow)
from models import queries as q
from models.db import session_scope
from portal.client import PLAYABLE
from portal.security import harden
from workers import briefing as briefings
from workers import coaching, notify
from workers.coach_sign_in import (LOGIN_TTL_SECONDS, SESSION_LIFETIME, LinkExpired, NotALink, claim,
                                   close_web_session, login_link, open_web_session, read_link, safe_next,
                                   web_session_is)
from workers.coaching import CoachError
from workers.consent import scope_words
from workers.delivery import render as render_email
from workers.sessions import HAVE_RECORDING, may

# The scopes as the coach attests them for a client's verbal consent.
COACH_SCOPE_LABELS = {
    "record": "Record the sessions and keep the recording",
    "transcribe": "Make a transcript",
    "summarise": "Make a summary and track commitments",
    "share_with_client": "Let them download their recordings and transcripts",
}

bp = Blueprint("coach", __name__, url_prefix="/coach", template_folder="templates",
               static_folder="static", static_url_path="/static")

AUDIT_PAGE_SIZE = 50
# Pages anyone may open; every other endpoint needs a signed-in coach.
PUBLIC = frozenset({"coach.login", "coach.login_post", "coach.auth", "coach.static"})


def _rt():
    return current_app.extensions["holdspace"]


@bp.record_once
def _configure(state):
    """The session cookie carries a coach's sign-in: script-proof, same-site, short-lived."""
    rt = state.app.extensions.get("holdspace")
    state.app.config.update(
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(rt and rt.settings.public_base_url.startswith("https://")),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME)


# --- sign-in ---------------------------------------------------------------------------------

def signed_in_coach():
    """The coach of this browser session, or None: the cookie names a server-side web session
    (workers/coach_sign_in.py), which must still be open and theirs."""
    coach_id, sid = session.get("coach_id"), session.get("sid")
    if not (isinstance(coach_id, str) and isinstance(sid, str)) or not web_session_is(_rt(), sid, coach_id):
        return None
    with session_scope(_rt().engine) as db:
        return q.coach_by_id(db, coach_id)


def _csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


@bp.app_template_global("coach_csrf_field")
def coach_csrf_field():
    return Markup(f'<input type="hidden" name="csrf_token" value="{escape(_csrf_token())}">')


@bp.before_request
def _guard():
    if request.endpoint == "coach.static":
        g.coach = None
        return None
    g.coach = signed_in_coach()
    if request.endpoint not in PUBLIC and g.coach is None:
        wanted = safe_next(request.path) if request.method == "GET" and request.path != bp.url_prefix else None
        return redirect(url_for("coach.login", next=wanted), 303)
    if request.method == "POST":
        sent, expected = request.form.get("csrf_token", ""), session.get("csrf")
        if not (isinstance(expected, str) and hmac.compare_digest(sent.encode(), expected.encode())):
            abort(403, "This form has expired. Go back, reload the page and try again.")
    return None


@bp.after_request
def _headers(response):
    return harden(response)


@bp.errorhandler(400)
@bp.errorhandler(403)
@bp.errorhandler(404)
@bp.errorhandler(405)
@bp.errorhandler(410)
def _error(exc):
    title, message = {403: ("Not allowed", exc.description), 404: ("Not found", "There is nothing here."),
                      410: ("Link expired", exc.description)}.get(
        exc.code, ("Bad request", "That request could not be understood."))
    return render_template("coach/message.html", title=title, message=message), exc.code


def _ip():
    return request.remote_addr


def _actor() -> str:
    return f"coach:{g.coach.id}"


def _viewed(db, subject: str) -> None:
    audit.record(db, f"coach:{g.coach.id}", "dashboard.viewed", subject, coach_id=g.coach.id, ip=_ip())


@bp.get("/login")
def login():
    if g.coach is not None:
        return redirect(url_for("coach.dashboard"))
    return render_template("coach/login.html", sent=False, next=_next_arg(request.args))


def _next_arg(values) -> str | None:
    return safe_next(values.get("next"))


@bp.post("/login")
def login_post():
    """Answers the same page whatever the address, so it reveals nothing about who is a coach."""
    rt = _rt()
    email = (request.form.get("email") or "").strip().lower()[:320]
    if "@" in email:
        with session_scope(rt.engine) as db:
            coach = q.coach_by_email(db, email)
            if coach is not None:
                minute = int(utcnow().timestamp() // 60)
                context = dict(coach=coach, link=login_link(rt, coach.id, _next_arg(request.form)),
                               minutes=LOGIN_TTL_SECONDS // 60)
                msg = notify.queue_message(
                    db, rt, key=f"coach-login:{coach.id}:{minute}", channel="email", recipient=coach.email,
                    coach_id=coach.id, subject="Your holdspace sign-in link", forget_after_send=True,
                    body=render_email("coach_sign_in.txt", **context),
                    html=render_email("coach_sign_in.html", **context))
                if msg is not None:
                    audit.record(db, "anonymous", "coach.sign_in_requested", f"coach:{coach.id}",
                                 coach_id=coach.id, ip=_ip())
    return render_template("coach/login.html", sent=True, next=_next_arg(request.form))


def _not_a_link():
    return render_template("coach/message.html", title="Not a sign-in link",
                           message="That link is not a valid sign-in link."), 401


@bp.get("/auth/<token>")
def auth(token):
    rt = _rt()
    try:
        data = read_link(rt.settings.secret_key, token)
    except LinkExpired:
        abort(410, "That sign-in link has expired. Ask for a new one.")
    except NotALink:
        return _not_a_link()
    with session_scope(rt.engine) as db:
        coach = q.coach_by_id(db, data["c"])
        if coach is None:
            return _not_a_link()
        try:
            first = claim(rt, data["n"])
        except Exception:  # noqa: BLE001 - without Redis a link cannot be kept to one use
            return render_template("coach/message.html", title="Try again in a moment",
                                   message="Signing in is unavailable for a moment. The link still works: "
                                           "open it again shortly."), 503
        if not first:
            abort(410, "That sign-in link was already used. Ask for a new one.")
        audit.record(db, f"coach:{coach.id}", "coach.signed_in", f"coach:{coach.id}",
                     coach_id=coach.id, ip=_ip())
        coach_id = coach.id
    try:
        sid = open_web_session(rt, coach_id)
    except Exception:  # noqa: BLE001
        return render_template("coach/message.html", title="Try again in a moment",
                               message="Signing in is unavailable for a moment. Ask for a new link shortly."), 503
    session.clear()
    session.permanent = True
    session.update(coach_id=coach_id, sid=sid, csrf=secrets.token_urlsafe(32))
    return redirect(safe_next(data.get("next")) or url_for("coach.dashboard"), 303)


@bp.post("/logout")
def logout():
    sid = session.get("sid")
    if isinstance(sid, str):
        try:
            close_web_session(_rt(), sid)
        except Exception:  # noqa: BLE001 - the cookie is cleared below either way
            pass
    session.clear()
    return redirect(url_for("coach.login"), 303)


# --- pages -----------------------------------------------------------------------------------

@bp.get("")
def dashboard():
    rt, coach_id = _rt(), g.coach.id
    clients = coaching.clients(rt, coach_id)
    recent = coaching.sessions(rt, coach_id, limit=25)
    overview = coaching.status(rt, coach_id)
    attention = coaching.needs_attention(rt, coach_id)
    working = coaching.under_way(rt, coach_id)
    with session_scope(rt.engine) as db:
        _viewed(db, "dashboard")
    names = {c.id: c.name for c in clients}
    return render_template("coach/dashboard.html", clients=clients, recent=recent, attention=attention,
                           working=working, counts=overview["counts"], queue_depth=overview["queue_depth"],
                           names=names, assignable=[c for c in clients if c.consent != "withdrawn" and c.email])


def _client_or_404(db, client_id: str):
    client = q.client_of(db, g.coach.id, client_id)
    if client is None:
        abort(404)
    return client


def _session_or_404(db, session_id: str) -> CoachingSession:
    found = q.session_of(db, g.coach.id, session_id)
    if found is None:
        abort(404)
    return found


@bp.get("/clients/<client_id>")
def client_view(client_id):
    rt, coach_id = _rt(), g.coach.id
    with session_scope(rt.engine) as db:
        client = _client_or_404(db, client_id)
        consent = coaching.consent_label(db, coach_id, client)
        history = q.consents_of(db, coach_id, client.id)
        sessions = q.sessions_of(db, coach_id, client.id)
        memory = db.exec(select(ClientMemory).where(ClientMemory.coach_id == coach_id,
                                                    ClientMemory.client_id == client.id)).first()
        brief = briefings.build(db, coach_id, client.id)
        _viewed(db, f"client:{client.id}")
    notes = coaching.notes(rt, coach_id, client_id=client.id)
    data = memory.data if memory else {}
    commitments = data.get("commitments") or []
    return render_template(
        "coach/client.html", client=client, consent=consent, history=history, sessions=sessions,
        open_commitments=[c for c in commitments if c.get("status") == "open"],
        closed_commitments=[c for c in commitments if c.get("status") != "open"],
        themes=data.get("themes") or [], threads=data.get("last_open_threads") or [],
        goals=data.get("goals") or [], brief=brief, notes=notes,
        scopes=[(s, COACH_SCOPE_LABELS[s]) for s in CONSENT_SCOPES])


@bp.get("/sessions/<session_id>")
def session_view(session_id):
    rt, coach_id = _rt(), g.coach.id
    with session_scope(rt.engine) as db:
        found = _session_or_404(db, session_id)
        client = q.client_of(db, coach_id, found.client_id) if found.client_id else None
        summary = db.exec(select(Summary).where(Summary.coach_id == coach_id,
                                                Summary.session_id == found.id)).first()
        insight = db.exec(select(CoachInsight).where(CoachInsight.coach_id == coach_id,
                                                     CoachInsight.session_id == found.id)).first()
        transcript = q.transcript_of(db, coach_id, found.id)
        assets = q.assets_of_session(db, coach_id, found.id)
        consent = q.active_consent(db, coach_id, client.id) if client else None
        live_links = list(db.exec(select(Link).where(
            Link.coach_id == coach_id, Link.session_id == found.id, Link.revoked_at.is_(None),
            Link.expires_at > utcnow()).order_by(Link.expires_at.desc())))
        _viewed(db, f"session:{found.id}")
    notes = coaching.notes(rt, coach_id, session_id=found.id)
    media = next((a for kind in PLAYABLE for a in assets if a.kind == kind), None)
    try:
        at = float(request.args.get("at", ""))
    except ValueError:
        at = None
    return render_template(
        "coach/session.html", s=found, client=client, stalled=coaching.is_stalled(rt, found), summary=summary, insight=insight,
        segments=transcript.segments if transcript else [], transcript=transcript, media=media,
        playable=media is not None and found.state in HAVE_RECORDING,
        may_download=bool(consent) and may(consent.scope_set, "download"), consent=consent,
        live_links=live_links, notes=notes, at=at,
        assignable=[c for c in coaching.clients(rt, coach_id) if c.consent != "withdrawn" and c.email]
        if found.state == "unmatched" else [])


@bp.post("/sessions/<session_id>/notes")
def add_note(session_id):
    with session_scope(_rt().engine) as db:
        _session_or_404(db, session_id)
    try:
        coaching.add_note(_rt(), g.coach.id, session_id, request.form.get("body", ""), actor=_actor())
        flash("Note saved.", "ok")
    except CoachError as exc:
        flash(str(exc), "error")
    return redirect(url_for("coach.session_view", session_id=session_id, _anchor="notes"), 303)


def require_own_session(session_id: str) -> None:
    """404 unless the session is the signed-in coach's (before a POST acts on it)."""
    with session_scope(_rt().engine) as db:
        _session_or_404(db, session_id)


def session_action(operation):
    """A POST on one of this coach's sessions: 404 for any other, the coach's message after."""
    @wraps(operation)
    def view(session_id):
        require_own_session(session_id)
        try:
            flash(operation(session_id), "ok")
        except CoachError as exc:
            flash(str(exc), "error")
        if request.form.get("back") == "dashboard":
            return redirect(url_for("coach.dashboard"), 303)
        return redirect(url_for("coach.session_view", session_id=session_id), 303)
    return view


@bp.post("/sessions/<session_id>/retry")
@session_action
def retry(session_id):
    return coaching.retry(_rt(), g.coach.id, session_id, actor=_actor())


@bp.post("/sessions/<session_id>/resend")
@session_action
def resend(session_id):
    return coaching.resend(_rt(), g.coach.id, session_id, actor=_actor())


@bp.post("/sessions/<session_id>/revoke")
@session_action
def revoke(session_id):
    return coaching.revoke(_rt(), g.coach.id, session_id, actor=_actor())


@bp.get("/sessions/<session_id>/delete")
def delete_confirm(session_id):
    with session_scope(_rt().engine) as db:
        found = _session_or_404(db, session_id)
        client = q.client_of(db, g.coach.id, found.client_id) if found.client_id else None
        _viewed(db, f"session:{found.id}")
    return render_template("coach/delete.html", s=found, client=client)


@bp.post("/sessions/<session_id>/delete")
def delete(session_id):
    with session_scope(_rt().engine) as db:
        _session_or_404(db, session_id)
    if request.form.get("confirm") != "yes":
        flash("Nothing was deleted: tick the box to confirm.", "error")
        return redirect(url_for("coach.delete_confirm", session_id=session_id), 303)
    try:
        flash(coaching.delete_session(_rt(), g.coach.id, session_id, actor=_actor()), "ok")
    except CoachError as exc:
        flash(str(exc), "error")
        return redirect(url_for("coach.session_view", session_id=session_id), 303)
    return redirect(url_for("coach.dashboard"), 303)


@bp.get("/search")
def search():
    words = (request.args.get("q") or "").strip()[:200]
    hits, error = [], None
    if words:
        try:
            hits = coaching.search(_rt(), g.coach.id, words, limit=30)
        except CoachError as exc:
            error = str(exc)
    return render_template("coach/search.html", words=words, hits=hits, error=error)


# The audit trail's filters: what kind of event, as the coach thinks of it.
AUDIT_KINDS = {
    "views": ("Pages you opened", ("dashboard.",)),
    "client": ("Clients and consent", ("client.", "consent.")),
    "session": ("Sessions", ("session.", "summary.", "recording.", "transcript.", "note.")),
    "links": ("Client links", ("link.",)),
    "deletion": ("Deletions", ("erasure.", "receipt.")),
    "account": ("Sign-in, settings and connections", ("coach.", "zoom.", "google.", "slack.")),
}


def _audit_query(coach_id: str, args):
    """The coach's events under the filters in `args` (kind, client, from, to), newest first,
    and the filters as understood (a bad value is ignored, not an error)."""
    from datetime import datetime, timezone
    query = select(AuditEvent).where(AuditEvent.coach_id == coach_id)
    chosen = {}
    kind = args.get("kind", "")
    if kind in AUDIT_KINDS:
        from sqlalchemy import or_
        query = query.where(or_(*[AuditEvent.action.startswith(p) for p in AUDIT_KINDS[kind][1]]))
        chosen["kind"] = kind
    client = args.get("client", "")
    if re.fullmatch(r"[0-9a-f]{32}", client):
        query = query.where(AuditEvent.subject.in_([f"client:{client}"]) |
                            AuditEvent.detail["client"].as_string().in_([client]))
        chosen["client"] = client
    for name, op in (("from", "__ge__"), ("to", "__lt__")):
        raw = args.get(name, "")
        try:
            day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            continue
        if name == "to":
            day += timedelta(days=1)  # through the end of that day
        query = query.where(getattr(AuditEvent.at, op)(day))
        chosen[name] = raw
    return query.order_by(AuditEvent.id.desc()), chosen


@bp.get("/audit")
def audit_trail():
    coach_id = g.coach.id
    try:
        page = max(1, min(int(request.args.get("page", "1")), 100000))
    except ValueError:
        page = 1
    query, chosen = _audit_query(coach_id, request.args)
    with session_scope(_rt().engine) as db:
        total = db.exec(select(func.count()).select_from(query.order_by(None).subquery())).one()
        events = list(db.exec(query.offset((page - 1) * AUDIT_PAGE_SIZE).limit(AUDIT_PAGE_SIZE)))
        clients = [(c.id, c.name or "(erased client)") for c in q.clients_of(db, coach_id)]
        _viewed(db, "audit")
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    return render_template("coach/audit.html", events=events, page=page, pages=pages, total=total,
                           kinds=[(k, v[0]) for k, v in AUDIT_KINDS.items()], clients=clients,
                           chosen=chosen)


@bp.get("/audit.csv")
def audit_export():
    """The filtered trail as CSV, for the coach's own records (all pages, newest first)."""
    import csv
    import io
    import json
    coach_id = g.coach.id
    query, chosen = _audit_query(coach_id, request.args)
    with session_scope(_rt().engine) as db:
        events = list(db.exec(query.limit(100_000)))
        audit.record(db, f"coach:{coach_id}", "dashboard.audit_exported", "audit", coach_id=coach_id,
                     ip=_ip(), rows=len(events), **chosen)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["at_utc", "actor", "action", "subject", "ip", "detail"])
    for e in events:
        writer.writerow([e.at.isoformat(), e.actor, e.action, e.subject, e.ip or "",
                         json.dumps(e.detail, sort_keys=True)])
    from flask import Response
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="holdspace-audit.csv"',
                             "Cache-Control": "no-store"})


@bp.app_template_filter("coach_snippet")
def coach_snippet(text: str) -> Markup:
    """A search snippet with its [matches] marked; the text itself is escaped first."""
    return Markup(str(escape(text or "")).replace("[", "<mark>").replace("]", "</mark>"))


@bp.app_template_filter("coach_local")
def coach_local(dt) -> str:
    """A moment as the signed-in coach reads it: in their own time zone, the zone named."""
    return "—" if dt is None else notify.local_time(dt, getattr(g.get("coach"), "time_zone", None))


bp.add_app_template_filter(scope_words, "scope_words")


@bp.app_template_filter("coach_clock")
def coach_clock(seconds) -> str:
    seconds = int(seconds or 0)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"
