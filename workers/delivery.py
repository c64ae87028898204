"""Emails to clients: a delivered session, a consent request or confirmation, a fresh link.

Each message is queued under an idempotency key (workers/notify.py), so a job that runs twice
sends once; the coach's own copy says what went out."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlmodel import Session, select

from models import CoachingSession, SessionState, Summary, audit, utcnow
from models import queries as q
from models.db import session_scope
from workers import fence, links, notify, sessions
from workers.runtime import current

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "emails"),
                   autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True)


def render(name: str, **context) -> str:
    return _env.get_template(name).render(**context)


def summary_lines(client_tier: dict, limit: int = 3) -> list[str]:
    """Two or three lines of the client tier for an email: overview first, then commitments."""
    lines = []
    if client_tier.get("overview"):
        lines.append(str(client_tier["overview"]).strip()[:300])
    for item in client_tier.get("commitments") or []:
        if item.get("what"):
            lines.append(f"You agreed: {item['what']}"[:200])
    return lines[:limit]


def when_of(session: CoachingSession, coach) -> str:
    """The session's day for the client's email. An email has no browser to ask for the
    client's zone; the coach's is the nearest known, and the day as the two of them lived it."""
    if not session.started_at:
        return "your last session"
    return notify.local_time(session.started_at, coach.time_zone, "%A %-d %B %Y", named=False)


@sessions.step("delivery")
def deliver_session(session_id: str) -> str:
    """Email the client a link to their session page; the session becomes `delivered`."""
    rt = current()
    s = rt.settings
    with session_scope(rt.engine) as db:
        session = db.get(CoachingSession, session_id)
        if session is None or session.state not in sessions.DELIVERABLE:
            return session.state if session else "missing"
        client = fence.hold(db, session.coach_id, session.client_id, need="deliver", session_id=session.id)
        coach = q.coach_by_id(db, session.coach_id)
        if notify.message_exists(db, f"session-email:{session.id}"):
            _delivered(db, session)  # an earlier run sent it and stopped before this step
            return "already delivered"
        if coach.delivery_mode == "review" and session.approved_at is None:
            return _await_review(db, rt, coach, client, session)
        summary = db.exec(select(Summary).where(Summary.coach_id == coach.id,
                                                Summary.session_id == session.id)).first()
        lines = summary_lines(summary.client_tier if summary else {})
        link, _token = links.issue(db, s.secret_key, coach_id=coach.id, client_id=client.id,
                                  purpose="session", session_id=session.id, ttl_seconds=s.link_ttl_seconds)
        if links.current_journey_link(db, coach.id, client.id) is None:
            links.issue(db, s.secret_key, coach_id=coach.id, client_id=client.id, purpose="journey",
                        ttl_seconds=s.link_ttl_seconds)
        url = links.url_of(link, "s")
        context = dict(client_name=client.name, coach_name=coach.name, when=when_of(session, coach),
                       lines=lines, link=url, ttl_days=max(1, s.link_ttl_seconds // 86400),
                       consent_link=consent_placeholder(db, rt, coach.id, client.id))
        subject = f"Your session with {coach.name} on {when_of(session, coach)}"
        notify.queue_message(
            db, rt, key=f"session-email:{session.id}", channel="email", recipient=client.email,
            subject=subject, body=render("session_delivered.txt", **context),
            html=render("session_delivered.html", **context), coach_id=coach.id, client_id=client.id)
        notify.tell_coach(
            db, rt, coach, key=f"session-email-coach:{session.id}",
            subject=f"Sent to {client.name}: {subject}", client_id=client.id,
            body=(f"holdspace emailed {client.name} <{client.email}> their session page link "
                  f"(valid {context['ttl_days']} days).\n\nWhat the email said:\n\n"
                  + render("session_delivered.txt", **{**context, "link": "(the client's private link)",
                                                         "consent_link": None})))
        _delivered(db, session)
    return "delivered"


def consent_placeholder(db: Session, rt, coach_id: str, client_id: str) -> str:
    """The footer link to the client's consent page, held as a placeholder until sent."""
    s = rt.settings
    link = links.consent_link(db, s.secret_key, coach_id, client_id,
                              ttl_seconds=max(s.link_ttl_seconds, 30 * 86400))
    return links.url_of(link, "c")


def _await_review(db: Session, rt, coach, client, session: CoachingSession) -> str:
    """Review mode: nothing reaches the client until the coach has read the summary and sent
    it; the coach is told once, with the page where that is done."""
    if sessions.move(db, session, SessionState.ready_for_review):
        audit.record(db, "system", "session.ready_for_review", f"session:{session.id}",
                     coach_id=coach.id)
    notify.tell_coach(
        db, rt, coach, key=f"session-review:{session.id}", client_id=client.id,
        subject=f"Ready for your review: {client.name}, {notify.when(session, coach)}",
        body=(f"The summary of \"{session.topic}\" with {client.name} is ready. Nothing has been "
              f"sent to {client.name} yet: read it, edit it if you like, and send it from "
              f"{notify.session_page(rt, session.id)}"))
    return "ready for review"


def _delivered(db: Session, session: CoachingSession) -> None:
    if sessions.move(db, session, SessionState.delivered):
        audit.record(db, "system", "session.delivered", f"session:{session.id}", coach_id=session.coach_id)


def request_consent(db: Session, rt, client, coach, *, verbal: bool = False, actor: str = "system") -> str:
    """Queue the consent email (a request, or the confirmation of a verbal consent)."""
    s = rt.settings
    link, _token = links.issue(db, s.secret_key, coach_id=coach.id, client_id=client.id,
                              purpose="consent", ttl_seconds=max(s.link_ttl_seconds, 30 * 86400),
                              actor=actor)
    context = dict(client_name=client.name, coach_name=coach.name, verbal=verbal,
                   link=links.url_of(link, "c"), consent_link=None)
    body, html = render("consent_request.txt", **context), render("consent_request.html", **context)
    subject = (f"What you agreed with {coach.name}" if verbal
               else f"{coach.name} asks for your consent to record your sessions")
    notify.queue_message(db, rt, key=f"consent-email:{link.id}", channel="email",
                         recipient=client.email, subject=subject, body=body, html=html,
                         coach_id=coach.id, client_id=client.id)


def fresh_link(link_id: str, email_given: str) -> str:
    """Send a new link for the same page, to the address on file, if the email matches."""
    rt = current()
    s = rt.settings
    with session_scope(rt.engine) as db:
        from models import Link
        old = db.get(Link, link_id)
        if old is None:
            return "unknown"
        client = q.client_of(db, old.coach_id, old.client_id)
        coach = q.coach_by_id(db, old.coach_id)
        if client is None or client.email != email_given.strip().lower() or client.withdrawn_at:
            return "not sent"
        if old.session_id:
            session = q.session_of(db, coach.id, old.session_id)
            if session is None or session.withheld_at is not None:
                return "not sent"  # deleted, or withheld by the coach until they share it again
        # One fresh link per old link per hour, however often the button is pressed.
        key = f"fresh-link:{old.id}:{utcnow():%Y%m%d%H}"
        if notify.message_exists(db, key):
            return "already sent"
        link, _token = links.issue(db, s.secret_key, coach_id=coach.id, client_id=client.id,
                                  purpose=old.purpose, session_id=old.session_id,
                                  ttl_seconds=s.link_ttl_seconds, actor="client")
        path = {"session": "s", "consent": "c", "journey": "j"}[old.purpose]
        context = dict(client_name=client.name, coach_name=coach.name, link=links.url_of(link, path),
                       ttl_days=max(1, s.link_ttl_seconds // 86400),
                       consent_link=None if path == "c" else consent_placeholder(db, rt, coach.id, client.id))
        notify.queue_message(
            db, rt, key=key, channel="email", recipient=client.email,
            subject="Your fresh holdspace link", coach_id=coach.id, client_id=client.id,
            body=render("fresh_link.txt", **context), html=render("fresh_link.html", **context))
    return "sent"
