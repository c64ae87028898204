"""What a coach can do, in one place for every front end (the Slack command, the dashboard).

Each operation takes the coach's id first and touches only that coach's clients and sessions;
a session id or email of another coach is answered exactly like one that does not exist."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import func, select

from models import (CONSENT_SCOPES, Client, CoachingSession, InboxEvent, MeetingMapping, PrivateNote,
                    SessionState, audit, utcnow)
from models import queries as q
from models.db import session_scope
from models.search import search_passages
from workers import consent as consents
from workers import fence, links, notify
from workers.sessions import INGESTING, PROCESSING, may, move, usable_assets
from workers.delivery import request_consent


class CoachError(ValueError):
    """A request the coach can fix: the message says how."""


@dataclass(frozen=True)
class ClientRow:
    id: str
    name: str
    email: str
    consent: str  # "record, transcribe … (written)" | "none" | "withdrawn"
    last_session_at: object


def _client(db, coach_id: str, email: str) -> Client:
    client = q.client_by_email(db, coach_id, email or "")
    if client is None:
        raise CoachError(f"No client with email {email}.")
    return client


def _session(db, coach_id: str, session_id: str) -> CoachingSession:
    session = q.session_of(db, coach_id, (session_id or "").strip())
    if session is None:
        raise CoachError(f"No session {session_id}.")
    return session


def _email(value: str) -> str:
    value = (value or "").strip().strip("<>").lower()
    if value.startswith("mailto:"):  # Slack turns addresses into mailto links
        value = value[7:].split("|", 1)[0]
    if "@" not in value or " " in value or value.startswith("@") or value.endswith("@"):
        raise CoachError(f"That doesn't look like an email address: {value or '(nothing)'}")
    return value


def consent_label(db, coach_id: str, client: Client) -> str:
    if client.withdrawn_at:
        return "withdrawn"
    active = q.active_consent(db, coach_id, client.id)
    if active is None:
        return "none"
    return f"{consents.scope_words(active.scope_set)} ({active.method.replace('_', ' ')})"


def clients(rt, coach_id: str) -> list[ClientRow]:
    with session_scope(rt.engine) as db:
        # An erased client is a tombstone: no name or email is left to show.
        return [ClientRow(c.id, c.name or "(erased client)", c.email or "",
                          consent_label(db, coach_id, c), c.last_session_at)
                for c in q.clients_of(db, coach_id)]


def sessions(rt, coach_id: str, client_email: str | None = None, limit: int = 20) -> list[CoachingSession]:
    with session_scope(rt.engine) as db:
        client_id = _client(db, coach_id, _email(client_email)).id if client_email else None
        return q.sessions_of(db, coach_id, client_id)[:limit]


def client_names(rt, coach_id: str) -> dict[str, str]:
    with session_scope(rt.engine) as db:
        return {c.id: c.name for c in q.clients_of(db, coach_id)}


def ask_for_consent(rt, coach_id: str, email: str, name: str | None = None, *, actor: str) -> str:
    """Create the client if new and email them the consent page."""
    email = _email(email)
    with session_scope(rt.engine) as db:
        coach = q.coach_by_id(db, coach_id)
        client = q.client_by_email(db, coach_id, email)
        created = client is None
        if created:
            client = fence.new_client(db, rt, coach_id, email=email,
                                      name=(name or email.split("@")[0]).strip()[:200])
            audit.record(db, actor, "client.added", f"client:{client.id}", coach_id=coach_id)
        request_consent(db, rt, client, coach, actor=actor)
        label = client.name
    return f"{'Added ' + label + ' and e' if created else 'E'}mailed {email} a link to the consent page."


def add_client(rt, coach_id: str, email: str, name: str | None = None, *, actor: str) -> str:
    """A new client, with no consent yet (so nothing of theirs is recorded until they give it)."""
    email = _email(email)
    with session_scope(rt.engine) as db:
        if q.client_by_email(db, coach_id, email) is not None:
            raise CoachError(f"{email} is already one of your clients.")
        client = fence.new_client(db, rt, coach_id, email=email,
                                  name=(name or email.split("@")[0]).strip()[:200])
        audit.record(db, actor, "client.added", f"client:{client.id}", coach_id=coach_id)
        label = client.name
    return f"Added {label}. Nothing is recorded for them until they consent."


def record_verbal_consent(rt, coach_id: str, email: str, *, actor: str, scopes: str | None = None) -> str:
    """The coach attests that the client agreed aloud; the client is emailed the record of it
    with the consent page, where they can change or withdraw it."""
    email = _email(email)
    with session_scope(rt.engine) as db:
        client = _client(db, coach_id, email)
        coach = q.coach_by_id(db, coach_id)
        try:
            granted = consents.parse_scopes(scopes) if scopes != "none" else []
        except consents.ConsentError as exc:
            raise CoachError(str(exc)) from None
        if not may(frozenset(granted), "keep"):
            raise CoachError("Nothing was recorded: recording is what a consent is about, so tick it.")
        consents.grant(db, client, scopes=granted, method="verbal_attested", actor=actor)
        request_consent(db, rt, client, coach, verbal=True, actor=actor)
    what = "all scopes" if len(granted) == len(CONSENT_SCOPES) else ", ".join(granted)
    return (f"Recorded {client.name}'s verbal consent ({what}). They were emailed a confirmation "
            "where they can change or withdraw it.")


def fetch_now(rt, coach_id: str, session_id: str, *, actor: str) -> str:
    """Fetch a recording that was refused for want of consent, now that the client consents
    (the platform's copy must still be there: Zoom's, unless it was moved to the trash)."""
    from workers.inbox import enqueue
    with session_scope(rt.engine) as db:
        session = _session(db, coach_id, session_id)
        if session.state != SessionState.refused_no_consent.value or not session.client_id:
            raise CoachError("Only a recording refused for want of consent can be fetched again.")
        client = q.client_of(db, coach_id, session.client_id)
        if client is None or client.erasing_at is not None:
            raise CoachError("That client's data was deleted; nothing can be fetched for them.")
        if q.active_consent(db, coach_id, client.id) is None:
            raise CoachError(f"{client.name} has not consented yet. Ask them first, or record "
                             "their verbal consent.")
        rows = list(db.exec(select(InboxEvent).where(InboxEvent.coach_id == coach_id,
                                                     InboxEvent.session_id == session.id)))
        if not rows:
            raise CoachError("holdspace has no record of where that recording came from.")
        for row in rows:
            row.status, row.error, row.attempts, row.updated_at = "received", None, 0, utcnow()
        move(db, session, SessionState.received)
        audit.record(db, actor, "session.fetch_requested", f"session:{session.id}", coach_id=coach_id)
        ids, name = [r.id for r in rows], client.name
    for inbox_id in ids:
        enqueue(rt, inbox_id)
    return f"Fetching the recording of {name}'s session now."


def consent_status(rt, coach_id: str, email: str) -> str:
    email = _email(email)
    with session_scope(rt.engine) as db:
        client = _client(db, coach_id, email)
        history = q.consents_of(db, coach_id, client.id)
        now = consent_label(db, coach_id, client)
        zone = q.coach_by_id(db, coach_id).time_zone

        def day(moment) -> str:
            return notify.local_time(moment, zone, "%Y-%m-%d", named=False)
        lines = [f"{client.name} <{client.email}>: {now}"]
        for c in history[-5:]:
            lines.append(f"  • {day(c.granted_at)} {c.method.replace('_', ' ')}: {consents.scope_words(c.scopes)}"
                         + (f" (ended {day(c.withdrawn_at)})" if c.withdrawn_at else ""))
        return "\n".join(lines)


def assign(rt, coach_id: str, session_id: str, email: str, *, actor: str) -> str:
    """Give an unmatched recording its client (and remember the meeting for next time)."""
    from workers.inbox import enqueue
    email = _email(email)
    with session_scope(rt.engine) as db:
        session = _session(db, coach_id, session_id)
        if session.state != SessionState.unmatched.value:
            raise CoachError(f"Session {session.id} is {session.state.replace('_', ' ')}, not waiting for a client.")
        client = _client(db, coach_id, email)
        if not fence.may_match(fence.lock_client(db, coach_id, client.id)):
            raise CoachError(f"{client.name} withdrew and their data is deleted; nothing can be assigned to them.")
        session.client_id = client.id
        move(db, session, SessionState.received)
        if session.platform_meeting_id and not q.mapped_client(db, coach_id, session.platform, session.platform_meeting_id):
            db.add(MeetingMapping(coach_id=coach_id, client_id=client.id, platform=session.platform,
                                  meeting_id=session.platform_meeting_id))
        rows = list(db.exec(select(InboxEvent).where(InboxEvent.coach_id == coach_id,
                                                     InboxEvent.session_id == session.id,
                                                     InboxEvent.status == "unmatched")))
        for row in rows:
            row.status, row.updated_at, row.client_id = "received", utcnow(), client.id
        audit.record(db, actor, "session.assigned", f"session:{session.id}", coach_id=coach_id, client=client.id)
        ids, name = [r.id for r in rows], client.name
    for inbox_id in ids:
        enqueue(rt, inbox_id)
    return f"Assigned to {name}; holdspace is fetching the recording now (if {name} has consented)."


def search(rt, coach_id: str, words: str, limit: int = 10):
    if not (words or "").strip():
        raise CoachError("Search for what? Try: search deadline manager")
    with session_scope(rt.engine) as db:
        hits = search_passages(db, coach_id, words, limit=limit)
        names = {c.id: c.name for c in q.clients_of(db, coach_id)}
        topics = {s.id: s for s in q.sessions_of(db, coach_id) if s.id in {h.session_id for h in hits}}
        audit.record(db, f"coach:{coach_id}", "transcripts.searched", f"coach:{coach_id}", coach_id=coach_id)
        return [(h, names.get(h.client_id, "?"), topics.get(h.session_id)) for h in hits]


def add_note(rt, coach_id: str, session_id: str, text: str, *, actor: str) -> PrivateNote:
    text = (text or "").strip()
    if not text:
        raise CoachError("The note is empty.")
    with session_scope(rt.engine) as db:
        session = _session(db, coach_id, session_id)
        note = PrivateNote(coach_id=coach_id, client_id=session.client_id, session_id=session.id, body=text[:20000])
        db.add(note)
        db.flush()
        audit.record(db, actor, "note.added", f"session:{session.id}", coach_id=coach_id)
        return note


def notes(rt, coach_id: str, session_id: str | None = None, client_id: str | None = None) -> list[PrivateNote]:
    with session_scope(rt.engine) as db:
        qry = select(PrivateNote).where(PrivateNote.coach_id == coach_id)
        if session_id:
            qry = qry.where(PrivateNote.session_id == session_id)
        if client_id:
            qry = qry.where(PrivateNote.client_id == client_id)
        return list(db.exec(qry.order_by(PrivateNote.created_at)))


def resend(rt, coach_id: str, session_id: str, *, actor: str) -> str:
    """A fresh link to the client for one session (earlier ones keep working until they expire)."""
    s = rt.settings
    from workers.delivery import consent_placeholder, render, when_of
    with session_scope(rt.engine) as db:
        session = _session(db, coach_id, session_id)
        if session.state != SessionState.delivered.value:
            raise CoachError(f"Session {session.id} has not been delivered yet ({session.state.replace('_', ' ')}).")
        client = q.client_of(db, coach_id, session.client_id)
        coach = q.coach_by_id(db, coach_id)
        if client.withdrawn_at:
            raise CoachError(f"{client.name} withdrew consent.")
        link, _token = links.issue(db, s.secret_key, coach_id=coach_id, client_id=client.id, purpose="session",
                                  session_id=session.id, ttl_seconds=s.link_ttl_seconds, actor=actor)
        session.withheld_at = None  # shared again
        context = dict(client_name=client.name, coach_name=coach.name, link=links.url_of(link, "s"),
                       ttl_days=max(1, s.link_ttl_seconds // 86400),
                       consent_link=consent_placeholder(db, rt, coach_id, client.id))
        notify.queue_message(
            db, rt, key=f"resend:{link.id}", channel="email", recipient=client.email, coach_id=coach_id,
            client_id=client.id,
            subject=f"Your session with {coach.name} on {when_of(session, coach)}",
            body=render("fresh_link.txt", **context), html=render("fresh_link.html", **context))
        name = client.name
    return f"Sent {name} a fresh link to that session."


def revoke(rt, coach_id: str, session_id: str, *, actor: str) -> str:
    with session_scope(rt.engine) as db:
        session = _session(db, coach_id, session_id)
        n = links.revoke_for_client(db, coach_id, session.client_id, session_id=session.id, actor=actor) \
            if session.client_id else 0
        session.withheld_at = session.withheld_at or utcnow()
    return (f"Revoked {n} link{'s' if n != 1 else ''} to that session. This is final for those "
            "links: the session is off the client's journey and they cannot ask for a fresh link "
            f"to it. To share it again, /holdspace resend {session_id}.")


def delete_session(rt, coach_id: str, session_id: str, *, actor: str) -> str:
    from workers.erasure import enqueue_erasure, start_session_erasure
    with session_scope(rt.engine) as db:
        session = _session(db, coach_id, session_id)
        if not session.client_id:
            raise CoachError("That recording was never stored; there is nothing to delete.")
        receipt = start_session_erasure(db, coach_id, session.id, reason="coach_request", actor=actor)
        rid = receipt.id
    enqueue_erasure(rt, rid)
    return f"Deleting session {session_id}; you'll get the deletion receipt."


def delete_client(rt, coach_id: str, email: str, *, actor: str) -> str:
    from workers.erasure import enqueue_erasure, start_client_erasure
    email = _email(email)
    with session_scope(rt.engine) as db:
        client = _client(db, coach_id, email)
        receipt = start_client_erasure(db, coach_id, client.id, reason="coach_request", actor=actor)
        rid, name = receipt.id, client.name
    enqueue_erasure(rt, rid)
    return f"Deleting everything about {name}; you'll get the deletion receipt. Your private notes stay."


def retry(rt, coach_id: str, session_id: str, *, actor: str) -> str:
    """Run a failed or stalled session's work again from where it stopped."""
    from workers.inbox import enqueue
    from workers.pipeline import enqueue_advance, steps_alive
    with session_scope(rt.engine) as db:
        session = _session(db, coach_id, session_id)
        rows = list(db.exec(select(InboxEvent).where(InboxEvent.coach_id == coach_id,
                                                     InboxEvent.session_id == session.id,
                                                     InboxEvent.status == "failed")))
        stalled = session.state in PROCESSING and not steps_alive(rt, session.id)
        if session.state != SessionState.failed.value and not rows and not stalled:
            raise CoachError(f"Session {session.id} has not failed ({session.state.replace('_', ' ')}).")
        for row in rows:
            # A coach's retry is a fresh start: the download gets all its attempts again.
            row.status, row.error, row.attempts, row.updated_at = "received", None, 0, utcnow()
        # A recording already in the vault resumes at transcription; otherwise the download
        # is tried again from the inbox.
        resume_pipeline = stalled or (not rows and bool(usable_assets(db, session)))
        if session.state == SessionState.failed.value:
            move(db, session, SessionState.stored if resume_pipeline else SessionState.received)
        audit.record(db, actor, "session.retried", f"session:{session.id}", coach_id=coach_id)
        ids = [r.id for r in rows]
    for inbox_id in ids:
        enqueue(rt, inbox_id)
    if resume_pipeline:
        enqueue_advance(rt, session_id)
    return "Trying again."


@dataclass(frozen=True)
class Attention:
    """A session the coach should look at, what is wrong or waiting, and the next step:
    `retry`, `assign` (to a client), `fetch` (once consent exists), `review`, or `wait`."""
    session: CoachingSession
    reason: str
    action: str = "retry"
    progress: float | None = None


def is_stalled(rt, session: CoachingSession, now=None) -> bool:
    """Sitting in a working state longer than SESSION_STALL_SECONDS with nothing running
    for it (the sweeper re-queues such a session; the coach may retry it sooner)."""
    from workers.pipeline import steps_alive
    if session.state not in PROCESSING:
        return False
    age = ((now or utcnow()) - session.updated_at).total_seconds()
    if age < rt.settings.session_stall_seconds:
        return False
    try:
        return not steps_alive(rt, session.id)
    except Exception:  # noqa: BLE001 - with Redis away nothing can be said; the sweeper will
        return False


# Sessions that wait on the coach, each with what to say and what the coach can do.
_WAITING = {
    SessionState.ready_for_review.value: ("the summary is ready for your review; nothing was sent yet", "review"),
    SessionState.unmatched.value: ("holdspace could not tell whose session this was; choose the client", "assign"),
    SessionState.refused_no_consent.value: ("not kept: the client had no consent on record", "fetch"),
}


def needs_attention(rt, coach_id: str, limit: int = 50, now=None) -> list[Attention]:
    """What needs the coach, most pressing first: failed sessions, those waiting on the coach
    (review, assign, consent), then stalled ones."""
    with session_scope(rt.engine) as db:
        failed = _sessions_in(db, coach_id, [SessionState.failed.value], limit)
        waiting = _sessions_in(db, coach_id, sorted(_WAITING), limit)
        working = _sessions_in(db, coach_id, list(PROCESSING), limit, oldest_first=True)
        zone = q.coach_by_id(db, coach_id).time_zone
    out = [Attention(s, s.error or "failed") for s in failed]
    for s in waiting:
        if s.state == SessionState.refused_no_consent.value and not s.client_id:
            continue  # the client withdrew and was erased: there is nothing left to do
        reason, action = _WAITING[s.state]
        out.append(Attention(s, reason, action))
    out += [Attention(s, f"stalled while {s.state.replace('_', ' ')} since "
                         f"{notify.local_time(s.updated_at, zone, '%-d %b %H:%M')}; "
                         "holdspace will try again, or retry it now")
            for s in working if is_stalled(rt, s, now)]
    return out[:limit]


# Sessions being worked on, each with what holdspace does next (nothing is asked of the coach).
_UNDER_WAY = {
    SessionState.received.value: "received; the recording is fetched next",
    SessionState.fetching.value: "fetching the recording",
    SessionState.stored.value: "stored, encrypted; the transcript comes next",
    SessionState.transcribing.value: "transcribing; the summary comes next",
    SessionState.summarising.value: "summarising; then {after}",
}
_AFTER_SUMMARY = {"review": "it waits for your review", "auto": "the client is emailed their link"}


def under_way(rt, coach_id: str, limit: int = 20, now=None) -> list[Attention]:
    """Sessions being worked on now, each with what comes next; a transcription with the
    share heard so far."""
    with session_scope(rt.engine) as db:
        working = _sessions_in(db, coach_id, list(PROCESSING + INGESTING), limit,
                               oldest_first=True)
        after = _AFTER_SUMMARY.get(q.coach_by_id(db, coach_id).delivery_mode, _AFTER_SUMMARY["auto"])
    from workers.pipeline import transcription_progress
    return [Attention(s, _UNDER_WAY[s.state].format(after=after), "wait",
                      transcription_progress(rt, s.id) if s.state == SessionState.transcribing.value else None)
            for s in working if not is_stalled(rt, s, now)]


def _sessions_in(db, coach_id: str, states: list[str], limit: int, oldest_first: bool = False):
    order = CoachingSession.updated_at if oldest_first else CoachingSession.updated_at.desc()
    return list(db.exec(select(CoachingSession).where(
        CoachingSession.coach_id == coach_id, CoachingSession.state.in_(states),
        CoachingSession.erasing_at.is_(None)).order_by(order).limit(limit)))


def status(rt, coach_id: str) -> dict:
    with session_scope(rt.engine) as db:
        counts = dict(db.exec(select(CoachingSession.state, func.count()).where(
            CoachingSession.coach_id == coach_id).group_by(CoachingSession.state)).all())
        failed = list(db.exec(select(CoachingSession).where(
            CoachingSession.coach_id == coach_id, CoachingSession.state == SessionState.failed.value)
            .order_by(CoachingSession.updated_at.desc()).limit(5)))
    try:
        depth = sum(len(queue) for queue in rt.queues)
    except Exception:  # noqa: BLE001 - status must answer even when the queue does not
        depth = None
    return {"counts": counts, "failed": failed, "queue_depth": depth}
