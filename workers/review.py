"""Review before send: a coach in review mode reads the client's summary, corrects it and sends
it; nothing reaches the client before that.

An edit replaces the client tier's overview, commitments and homework (one item a line), keeps
what the summariser knew of a line the coach left as it was or only reworded (who, when, where
in the session), and re-folds the session into the client's memory, so the briefing carries the
coach's version. The audit trail records that the summary was edited and how much, never the
words themselves (they are the client's, and live only sealed)."""

from __future__ import annotations

from sqlmodel import select

from models import ClientMemory, CoachingSession, SessionState, Summary, Transcript, audit, utcnow
from models import queries as q
from models.db import session_scope
from workers import fence
from workers.coaching import CoachError

MAX_ITEMS = 30
MAX_LINE = 500
MAX_OVERVIEW = 4000


def _lines(text: str) -> list[str]:
    lines = [" ".join(line.split()) for line in (text or "").splitlines()]
    lines = [line[:MAX_LINE] for line in lines if line]
    if len(lines) > MAX_ITEMS:
        raise CoachError(f"At most {MAX_ITEMS} lines, please.")
    return lines


def _merge(old: list[dict], lines: list[str], key: str, fresh) -> list[dict]:
    """The coach's lines as items: an unchanged line keeps its item; a reworded one keeps the
    facts of the item in its place; a new one is the coach's own, tied to no moment."""
    by_text = {str(item.get(key, "")).strip(): item for item in old}
    out = []
    for index, line in enumerate(lines):
        if line in by_text:
            out.append(by_text[line])
        elif index < len(old) and old[index].get(key, "").strip() not in lines:
            out.append({**old[index], key: line, "edited": True})
        else:
            out.append({**fresh(line), "edited": True})
    return out


def _session(db, coach_id: str, session_id: str) -> CoachingSession:
    session = q.session_of(db, coach_id, session_id)
    if session is None:
        raise CoachError(f"No session {session_id}.")
    return session


def edit_summary(rt, coach_id: str, session_id: str, *, overview: str, commitments: str,
                 homework: str, actor: str) -> str:
    """Save the coach's version of the client tier (only before it is sent)."""
    with session_scope(rt.engine) as db:
        session = _session(db, coach_id, session_id)
        if session.state != SessionState.ready_for_review.value:
            raise CoachError("Only a summary waiting for your review can be edited here.")
        fence.hold(db, coach_id, session.client_id, need="summarise", session_id=session.id)
        summary = db.exec(select(Summary).where(Summary.coach_id == coach_id,
                                                Summary.session_id == session.id)).first()
        if summary is None:
            raise CoachError("This session has no summary to edit.")
        tier = dict(summary.client_tier)
        overview = " ".join((overview or "").split())[:MAX_OVERVIEW]
        new_commitments = _merge(tier.get("commitments") or [], _lines(commitments), "what",
                                 lambda line: {"what": line, "who": "client", "by_when": None,
                                               "source_timestamp": None, "tentative": False})
        new_homework = _merge(tier.get("homework") or [], _lines(homework), "task",
                              lambda line: {"task": line, "due": None, "source_timestamp": None})
        changed = [name for name, before, after in (
            ("overview", tier.get("overview") or "", overview),
            ("commitments", tier.get("commitments") or [], new_commitments),
            ("homework", tier.get("homework") or [], new_homework)) if before != after]
        if not changed:
            return "Nothing changed."
        tier.update(overview=overview, commitments=new_commitments, homework=new_homework)
        summary.client_tier = tier
        _refold_memory(db, session, tier)
        audit.record(db, actor, "summary.edited", f"session:{session.id}", coach_id=coach_id,
                     fields=",".join(changed), commitments=len(new_commitments),
                     homework=len(new_homework))
    return "Saved. Nothing has been sent yet."


def _refold_memory(db, session: CoachingSession, tier: dict) -> None:
    """The client's memory as if the summariser had written the coach's version."""
    from workers.summaries.memory import ClientMemory as Memory, forget_session, update_memory
    from workers.summaries.schema import ClientTier
    from workers.transcription import Segment
    row = db.exec(select(ClientMemory).where(ClientMemory.coach_id == session.coach_id,
                                             ClientMemory.client_id == session.client_id)).first()
    transcript = db.exec(select(Transcript).where(Transcript.coach_id == session.coach_id,
                                                  Transcript.session_id == session.id)).first()
    if row is None or transcript is None:
        return
    fields = ClientTier.model_fields
    item_fields = {"commitments": ("what", "who", "by_when", "source_timestamp", "tentative"),
                   "homework": ("task", "due", "source_timestamp")}
    clean = {name: tier.get(name) or ([] if name != "overview" else "") for name in fields}
    for name, keep in item_fields.items():
        clean[name] = [{k: item.get(k) for k in keep} for item in clean[name]]
    for item in clean["commitments"]:
        item["source_timestamp"] = item["source_timestamp"] or 0.0  # the coach's own: no moment
        item["tentative"] = bool(item["tentative"])
    memory = forget_session(Memory.model_validate(row.data), session.id) if row.data else Memory()
    later = (memory.last_session_id, memory.last_session_date, memory.last_open_threads) \
        if memory.last_session_id else None
    segments = [Segment.from_dict(r) for r in transcript.segments]
    started = session.started_at or utcnow()
    memory = update_memory(memory, ClientTier.model_validate(clean), session.id, started.date(), segments)
    if later and (session.started_at is None or (later[1] and later[1] > started.date())):
        # A later session was folded in meanwhile: it stays "the last session".
        memory.last_session_id, memory.last_session_date, memory.last_open_threads = later
    row.data = memory.model_dump(mode="json")
    row.updated_at = utcnow()


def send_reviewed(rt, coach_id: str, session_id: str, *, actor: str) -> str:
    """The coach has read it: deliver the (possibly edited) summary to the client now."""
    from workers.pipeline import enqueue_delivery
    with session_scope(rt.engine) as db:
        session = _session(db, coach_id, session_id)
        if session.state != SessionState.ready_for_review.value:
            raise CoachError(f"This session is not waiting for review ({session.state.replace('_', ' ')}).")
        client = q.client_of(db, coach_id, session.client_id)
        fence.hold(db, coach_id, session.client_id, need="deliver", session_id=session.id)
        first = session.approved_at is None
        session.approved_at = session.approved_at or utcnow()
        if first:
            audit.record(db, actor, "summary.approved", f"session:{session.id}", coach_id=coach_id)
        name = client.name
    enqueue_delivery(rt, session_id)
    return f"Sending it to {name} now."
