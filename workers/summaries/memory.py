"""What holdspace remembers about a client between sessions, and how a session updates it.

Pure functions over a pydantic model the caller stores as JSON. A commitment stays open until
a later session's transcript says it was done ("I sent the proposal…") or dropped ("I decided
not to…"), and the sentence that said so is kept as evidence with its session and timestamp.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from workers.summaries.schema import ClientTier
from workers.summaries.text import Sentence, content_words, normalise, sentences, stem
from workers.transcription import Segment

MAX_CLOSED_COMMITMENTS = 50  # closed ones are history; keep the memory (and the prompt) small


class Evidence(BaseModel):
    session_id: str
    timestamp: float
    text: str


class TrackedCommitment(BaseModel):
    what: str
    who: str
    by_when: str | None = None
    made_in: Evidence
    status: Literal["open", "done", "dropped"] = "open"
    closed_by: Evidence | None = None


class Theme(BaseModel):
    name: str
    session_ids: list[str] = Field(default_factory=list)


class GoalProgress(BaseModel):
    session_id: str
    session_date: dt.date | None = None
    note: str


class Goal(BaseModel):
    goal: str
    progress: list[GoalProgress] = Field(default_factory=list)


class ClientMemory(BaseModel):
    commitments: list[TrackedCommitment] = Field(default_factory=list)
    themes: list[Theme] = Field(default_factory=list)
    goals: list[Goal] = Field(default_factory=list)
    last_open_threads: list[str] = Field(default_factory=list)
    last_session_id: str | None = None
    last_session_date: dt.date | None = None
    session_ids: list[str] = Field(default_factory=list)

    @property
    def open_commitments(self) -> list[TrackedCommitment]:
        return [c for c in self.commitments if c.status == "open"]

    def recurring_themes(self, minimum: int = 2) -> list[Theme]:
        return [t for t in self.themes if len(t.session_ids) >= minimum]


# --- did an open commitment move? -----------------------------------------------------------

_NEGATION = re.compile(r"\b(?:not|never|no|haven't|hasn't|didn't|don't|couldn't|wasn't|yet to)\b|n't\b", re.I)
_DROPPED = re.compile(
    r"\b(?:I|we)(?:'ve|'m|\s+have|\s+am)?\s+(?:decided not to|decided against|gave up on|"
    r"given up on|dropped|let go of|won't|will not|not going to|no longer|stopped)\b",
    re.I,
)
# "I sent", "I've finished", "I also blocked", "I finally did": a first-person subject, up to
# two adverbs, then a verb in the past.
_FIRST_PERSON_PAST = re.compile(
    r"\b(?:I|we)(?:\s+have|\s+had|'ve|'d)?\s+(?:(?:also|finally|already|actually|just|really)\s+){0,2}"
    r"(?P<verb>[a-z]+)\b",
    re.I,
)
_PAST_IRREGULAR = frozenset(
    "did done sent wrote written spoke spoken told made took taken gave given met went had began "
    "bought brought found kept left ran said spent thought held put chose drew led paid read".split()
)


def _says_done(sentence: str) -> bool:
    for match in _FIRST_PERSON_PAST.finditer(sentence):
        verb = match.group("verb").lower()
        if verb in _PAST_IRREGULAR or (verb.endswith("ed") and len(verb) > 3):
            before = sentence[: match.end()]
            clause = re.split(r"[,;]|\bbut\b", before)[-1]
            if not _NEGATION.search(clause):
                return True
    return bool(re.search(r"\b(?:it's|it is|that's|that is)\s+(?:done|sorted|finished)\b", sentence, re.I))


def _matches(commitment: TrackedCommitment, sentence: Sentence) -> bool:
    wanted = content_words(commitment.what)
    shared = wanted & content_words(sentence.text)
    # Two shared content words (one when the commitment has few) tie the sentence to it.
    return len(shared) >= min(2, len(wanted)) and len(shared) > 0


def detect_progress(
    commitments: Sequence[TrackedCommitment], segments: Sequence[Segment], session_id: str
) -> dict[int, tuple[Literal["done", "dropped"], Evidence]]:
    """For each commitment (by index) that this transcript reports done or dropped, the verdict
    and the sentence that says so. Only first-person statements count, so the coach asking
    "did you send it?" is no evidence; a negated one ("I haven't sent it yet") is neither."""
    found: dict[int, tuple[Literal["done", "dropped"], Evidence]] = {}
    said = sentences(segments)
    for index, commitment in enumerate(commitments):
        for sentence in said:
            if sentence.text.rstrip().endswith("?") or not _matches(commitment, sentence):
                continue
            if _DROPPED.search(sentence.text):
                verdict: Literal["done", "dropped"] = "dropped"
            elif _says_done(sentence.text):
                verdict = "done"
            else:
                continue
            found[index] = (verdict, Evidence(session_id=session_id, timestamp=sentence.start, text=sentence.text))
            break
    return found


# --- the update -------------------------------------------------------------------------------


def _same(a: str, b: str) -> bool:
    wa, wb = content_words(a), content_words(b)
    if not wa or not wb:
        return normalise(a).lower() == normalise(b).lower()
    return len(wa & wb) / len(wa | wb) >= 0.6


def _theme_key(name: str) -> str:
    return " ".join(stem(w) for w in re.findall(r"[a-z']+", name.lower()))


def _segment_text_at(segments: Sequence[Segment], timestamp: float, fallback: str) -> str:
    for segment in segments:
        if segment.start - 1.0 <= timestamp <= segment.end + 1.0:
            return segment.text
    return fallback


def update_memory(
    memory: ClientMemory | None,
    summary: ClientTier,
    session_id: str,
    session_date: dt.date | None,
    segments: Sequence[Segment],
) -> ClientMemory:
    """The client's memory after this session (a new object; `memory` is not changed).

    Open commitments from earlier sessions that this transcript reports done or dropped are
    closed with the evidence; the summary's commitments join the open ones (a repeat of an
    open one is not added twice); its themes add this session's id to their history; goals
    touched gain a progress note; its open threads become the last session's open threads.
    Updating twice with the same session id changes nothing, since jobs may run twice.
    """
    memory = memory.model_copy(deep=True) if memory else ClientMemory()
    if session_id in memory.session_ids:
        return memory

    earlier = [c for c in memory.commitments if c.status == "open" and c.made_in.session_id != session_id]
    for index, (verdict, evidence) in detect_progress(earlier, segments, session_id).items():
        earlier[index].status = verdict
        earlier[index].closed_by = evidence

    for commitment in summary.commitments:
        if any(_same(commitment.what, c.what) for c in memory.open_commitments):
            continue
        memory.commitments.append(TrackedCommitment(
            what=commitment.what,
            who=commitment.who,
            by_when=commitment.by_when,
            made_in=Evidence(
                session_id=session_id,
                timestamp=commitment.source_timestamp,
                text=_segment_text_at(segments, commitment.source_timestamp, commitment.what),
            ),
        ))
    closed = [c for c in memory.commitments if c.status != "open"]
    if len(closed) > MAX_CLOSED_COMMITMENTS:
        stale = {id(c) for c in closed[: len(closed) - MAX_CLOSED_COMMITMENTS]}
        memory.commitments = [c for c in memory.commitments if id(c) not in stale]

    for name in summary.themes:
        key = _theme_key(name)
        theme = next((t for t in memory.themes if _theme_key(t.name) == key), None)
        if theme is None:
            memory.themes.append(Theme(name=name, session_ids=[session_id]))
        elif session_id not in theme.session_ids:
            theme.session_ids.append(session_id)

    for touched in summary.goals_touched:
        goal = next((g for g in memory.goals if _same(g.goal, touched.goal)), None)
        if goal is None:
            goal = Goal(goal=touched.goal)
            memory.goals.append(goal)
        if touched.progress:
            goal.progress.append(GoalProgress(session_id=session_id, session_date=session_date, note=touched.progress))

    memory.last_open_threads = list(summary.open_threads)
    memory.last_session_id = session_id
    memory.last_session_date = session_date
    memory.session_ids.append(session_id)
    return memory


def forget_session(memory: ClientMemory, session_id: str) -> ClientMemory:
    """The memory as if the session had never happened (it was deleted): its commitments gone,
    what it closed open again, its themes, progress notes and open threads no longer counted."""
    memory = memory.model_copy(deep=True)
    kept = []
    for commitment in memory.commitments:
        if commitment.made_in.session_id == session_id:
            continue
        if commitment.closed_by and commitment.closed_by.session_id == session_id:
            commitment.status, commitment.closed_by = "open", None
        kept.append(commitment)
    memory.commitments = kept
    for theme in memory.themes:
        theme.session_ids = [sid for sid in theme.session_ids if sid != session_id]
    memory.themes = [t for t in memory.themes if t.session_ids]
    for goal in memory.goals:
        goal.progress = [p for p in goal.progress if p.session_id != session_id]
    memory.session_ids = [sid for sid in memory.session_ids if sid != session_id]
    if memory.last_session_id == session_id:
        # The threads it left open were its own; the session before it is the last one now.
        memory.last_open_threads = []
        memory.last_session_id = memory.session_ids[-1] if memory.session_ids else None
        memory.last_session_date = None
    return memory


def memory_for_prompt(memory: ClientMemory | None) -> str:
    """The memory as compact JSON for a summary prompt: what was open, recurring, aimed at."""
    if memory is None or not memory.session_ids:
        return "No earlier sessions."
    return json.dumps({
        "sessions_so_far": len(memory.session_ids),
        "last_session_date": memory.last_session_date.isoformat() if memory.last_session_date else None,
        "open_commitments": [
            {"what": c.what, "who": c.who, "by_when": c.by_when, "since_session": c.made_in.session_id}
            for c in memory.open_commitments
        ],
        "recently_closed_commitments": [
            {"what": c.what, "status": c.status, "evidence": c.closed_by.text if c.closed_by else None}
            for c in memory.commitments if c.status != "open"
        ][-10:],
        "themes": [{"name": t.name, "sessions": len(t.session_ids)} for t in memory.themes],
        "goals": [
            {"goal": g.goal, "latest_progress": g.progress[-1].note if g.progress else None}
            for g in memory.goals
        ],
        "last_open_threads": memory.last_open_threads,
    }, indent=1)
