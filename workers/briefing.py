"""The pre-session briefing: what a coach wants in mind before seeing a client again. Built on
demand (Slack `brief`, the dashboard) and sent automatically before upcoming Zoom meetings and
before the Google Meet events on a connected coach's calendar."""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import select

from integrations import google as g
from models import ClientMemory, CoachInsight, GoogleConnection, PrivateNote, Summary, utcnow
from models import queries as q
from models.db import session_scope
from workers import notify
from workers.ingest import parse_time
from workers.platforms import zoom_tokens
from workers.platforms.meet import client_for as google_client_for
from workers.runtime import current
from workers.summaries.memory import ClientMemory as Memory, briefing_items

log = logging.getLogger(__name__)


@dataclass
class Briefing:
    client_name: str
    client_email: str
    sessions: int
    first_session: str | None
    last_session: list[str] = field(default_factory=list)
    open_commitments: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    open_threads: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)  # the coach's own, from their notes
    suggestions: list[str] = field(default_factory=list)  # holdspace's, from the last summary

    def text(self) -> str:
        out = [f"Briefing: {self.client_name} <{self.client_email}>",
               f"{self.sessions} session{'s' if self.sessions != 1 else ''}"
               + (f" since {self.first_session}" if self.first_session else "")]
        for title, items in (("Last session", self.last_session), ("Open commitments", self.open_commitments),
                             ("Recurring themes", self.themes), ("Open threads", self.open_threads),
                             ("Your private notes", self.notes), ("Your questions", self.questions),
                             ("Suggested by holdspace", self.suggestions)):
            if items:
                out.append(f"\n{title}:")
                out += [f"  • {item}" for item in items]
        return "\n".join(out)


def build(db, coach_id: str, client_id: str, today=None) -> Briefing:
    today = today or utcnow().date()
    client = q.client_of(db, coach_id, client_id)
    sessions = q.sessions_of(db, coach_id, client_id)
    dated = sorted((s for s in sessions if s.started_at), key=lambda s: s.started_at)
    brief = Briefing(client.name, client.email, len(sessions),
                     dated[0].started_at.strftime("%-d %b %Y") if dated else None)
    ids = [s.id for s in sessions]
    summaries = {s.session_id: s for s in db.exec(select(Summary).where(Summary.coach_id == coach_id,
                                                                         Summary.session_id.in_(ids)))}
    last = next((s for s in reversed(dated) if s.id in summaries), None)
    if last:
        tier = summaries[last.id].client_tier
        lines = [f"{last.started_at:%-d %b}: {tier.get('overview', '')}".strip()]
        brief.last_session = lines[:1]
        insight = db.exec(select(CoachInsight).where(CoachInsight.coach_id == coach_id,
                                                     CoachInsight.session_id == last.id)).first()
        if insight:
            brief.suggestions = list(insight.coach_tier.get("questions_for_next_time", []))[:5]
    memory = db.exec(select(ClientMemory).where(ClientMemory.coach_id == coach_id,
                                                ClientMemory.client_id == client_id)).first()
    if memory:
        data = memory.data
        made = {s.id: s.started_at for s in dated}
        brief.open_commitments = [open_item(c, made, today) for c in briefing_items(Memory.model_validate(data))]
        brief.themes = [f"{t['name']} ({len(set(t.get('session_ids', [])))} sessions)"
                        for t in data.get("themes", []) if len(set(t.get("session_ids", []))) >= 2][:6]
        brief.open_threads = list(data.get("last_open_threads", []))[:5]
    notes = [n.body for n in db.exec(
        select(PrivateNote).where(PrivateNote.coach_id == coach_id, PrivateNote.client_id == client_id)
        .order_by(PrivateNote.created_at.desc()).limit(5))]
    brief.notes = [n[:300] for n in notes]
    # The questions the coach wrote in their notes, kept apart from what holdspace suggests.
    brief.questions = [q.strip() for n in notes for q in re.findall(r"[^.!?\n]*\?", n) if q.strip()][:5]
    return brief


def open_item(c, made: dict, today) -> str:
    """One open item for the briefing: what, whose, how long open, and the words that made it."""
    started = made.get(c.made_in.session_id)
    parts = []
    if c.kind == "homework":
        parts.append("homework")
    elif c.who and c.who.lower() in ("coach", "both"):
        parts.append("yours" if c.who.lower() == "coach" else "both of you")
    if c.tentative:
        parts.append("tentative")
    if started:
        days = (today - started.date()).days
        parts.append(f"open {days} day{'s' * (days != 1)}")
    minute = int(c.made_in.timestamp // 60), int(c.made_in.timestamp % 60)
    said = f"said {started:%-d %b} at {minute[0]}:{minute[1]:02d}: “{c.made_in.text[:140]}”" if started else \
        f"said: “{c.made_in.text[:140]}”"
    line = f"{c.what} ({'; '.join(parts + [said])})"
    if c.last_update:
        line += f"; last heard: “{c.last_update.text[:120]}”"
    return line


def briefing_for(rt, coach_id: str, client_email: str) -> Briefing:
    from workers.coaching import CoachError, _email
    with session_scope(rt.engine) as db:
        client = q.client_by_email(db, coach_id, _email(client_email))
        if client is None:
            raise CoachError(f"No client with email {client_email}.")
        return build(db, coach_id, client.id)


def send_upcoming_briefings(now=None) -> int:
    """Every few minutes: brief each coach once, about an hour before a Zoom meeting with a known
    client, asking Zoom with the coach's own connection or the practice's S2S app."""
    rt = current()
    now = now or utcnow()
    lead = timedelta(minutes=rt.settings.briefing_lead_minutes)
    with session_scope(rt.engine) as db:
        coaches = [(c.id, c.zoom_user_id) for c in q.all_coaches(db) if c.zoom_user_id]
    sent = 0
    for coach_id, zoom_user in coaches:
        zoom = zoom_tokens.zoom_for(rt, coach_id)
        if zoom is None or not zoom.configured:
            continue
        try:
            sent += _brief_coach(rt, zoom, coach_id, "me" if zoom.acts_for_user else zoom_user, now, lead)
        except Exception as exc:  # noqa: BLE001 - one coach's Zoom trouble must not stop the others
            log.warning("briefings of coach %s skipped this round: %s", coach_id, type(exc).__name__)
    return sent


def _brief_coach(rt, zoom, coach_id: str, zoom_user: str, now, lead) -> int:
    """One coach's briefings due now; how many were queued."""
    sent = 0
    for meeting in zoom.list_upcoming_meetings(zoom_user):
        start = parse_time(meeting.get("start_time"))
        if start is None or not (now < start <= now + lead):
            continue
        client_id = _client_for_meeting(rt, zoom, coach_id, meeting)
        if client_id is None:
            continue
        sent += _send_briefing(rt, coach_id, client_id, start, now,
                               key=f"briefing:{coach_id}:{meeting.get('id')}:{start.isoformat()}")
    return sent


def _client_for_meeting(rt, zoom, coach_id: str, meeting: dict) -> str | None:
    emails = zoom.meeting_invitee_emails(meeting["id"]) if meeting.get("id") else []
    with session_scope(rt.engine) as db:
        matched = _client_by_emails(db, coach_id, emails)
        if matched:
            return matched
        mapped = q.mapped_client(db, coach_id, "zoom", str(meeting.get("id")))
        return mapped.id if mapped and not mapped.withdrawn_at else None


def _client_by_emails(db, coach_id: str, emails: list[str]) -> str | None:
    """The one client of this coach among a meeting's invitees; None for none, for a group
    (not for holdspace to guess whose session it is), or for a client who withdrew."""
    matched = {c.id for c in q.clients_by_emails(db, coach_id, emails) if not c.withdrawn_at}
    return matched.pop() if len(matched) == 1 else None


def _send_briefing(rt, coach_id: str, client_id: str, start, now, *, key: str) -> int:
    """Queue one briefing to the coach under `key`; 1 when queued, 0 when it went out already."""
    with session_scope(rt.engine) as db:
        coach = q.coach_by_id(db, coach_id)
        brief = build(db, coach_id, client_id, today=now.date())
        msg = notify.tell_coach(
            db, rt, coach, key=key,
            subject=f"Before your {notify.local_time(start, coach.time_zone, '%H:%M')} session with {brief.client_name}",
            client_id=client_id,
            body=brief.text())
    return 1 if msg else 0


# --- Google Meet: the coach's calendar --------------------------------------------------------

def send_upcoming_meet_briefings(now=None) -> int:
    """Every few minutes: the same briefing before each Meet event on a connected coach's
    calendar that starts within the lead time, with one client of theirs among its guests."""
    rt = current()
    now = now or utcnow()
    lead = timedelta(minutes=rt.settings.briefing_lead_minutes)
    with session_scope(rt.engine) as db:
        # Delegated connections are left out: the Workspace admin grants those scopes, and
        # holdspace does not ask them for the calendar.
        coaches = list(db.exec(select(GoogleConnection.coach_id).where(
            GoogleConnection.status == "active", GoogleConnection.mode == "oauth")
            .order_by(GoogleConnection.connected_at)))
    sent = 0
    for coach_id in coaches:
        try:
            sent += _brief_meet_coach(rt, coach_id, now, lead)
        except g.GoogleScopeError:
            # Connected before briefings read the calendar, or unticked it: nothing is wrong
            # until they reconnect, so no mail, and no warning every few minutes either.
            log.debug("Meet briefings of coach %s skipped: no calendar access", coach_id)
        except Exception as exc:  # noqa: BLE001 - one coach's Google trouble must not stop the others
            log.warning("Meet briefings of coach %s skipped this round: %s", coach_id, type(exc).__name__)
    return sent


def _brief_meet_coach(rt, coach_id: str, now, lead) -> int:
    """One coach's Meet briefings due now; how many were queued."""
    # timeMax is exclusive at Google, and an event exactly `lead` away is due.
    with contextlib.closing(google_client_for(rt, coach_id)) as google:
        events = google.upcoming_meet_events(now, now + lead + timedelta(seconds=1))
    sent = 0
    for event in events:
        start = event["start"]
        if not (now < start <= now + lead):
            continue  # under way already (its briefing was due before it began), or not yet due
        with session_scope(rt.engine) as db:
            client_id = _client_by_emails(db, coach_id, event["attendees"])
        if client_id is None:
            continue
        # Keyed on the start too: a moved event is briefed again, a second sweep is not.
        key = f"briefing:{coach_id}:meet:{event['id']}:{start.isoformat()}"
        sent += _send_briefing(rt, coach_id, client_id, start, now, key=key)
    return sent
