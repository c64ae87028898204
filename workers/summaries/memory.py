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
from workers.summaries.text import content_words, normalise, sentences, stem, turns
from workers.transcription import Segment

MAX_CLOSED_COMMITMENTS = 50  # closed ones are history; keep the memory (and the prompt) small
MAX_PEOPLE = 30  # enough names for Whisper's prompt, which holds a few dozen


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
    kind: Literal["commitment", "homework"] = "commitment"
    tentative: bool = False
    # The latest report that it is still open ("I didn't get round to it"), with its time.
    last_update: Evidence | None = None


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
    # People the client talks about, so the next transcription can spell them right.
    people: list[str] = Field(default_factory=list)
    last_session_id: str | None = None
    last_session_date: dt.date | None = None
    session_ids: list[str] = Field(default_factory=list)

    @property
    def open_commitments(self) -> list[TrackedCommitment]:
        return [c for c in self.commitments if c.status == "open"]

    def recurring_themes(self, minimum: int = 2) -> list[Theme]:
        return [t for t in self.themes if len(t.session_ids) >= minimum]


# --- did an open commitment move? -----------------------------------------------------------

Verdict = Literal["done", "open", "dropped"]

_NEGATION = re.compile(r"\b(?:not|never|no|haven't|hasn't|didn't|don't|couldn't|wasn't|yet to)\b|n't\b", re.I)
_DROPPED = re.compile(
    r"\b(?:I|we)(?:'ve|'m|\s+have|\s+am)?\s+(?:decided not to|decided against|gave up on|"
    r"given up on|dropped|let go of|won't|will not|not going to|no longer|stopped|changed my mind|"
    r"decided to stop|(?:'m|am) stopping|quit|"
    r"scrapped|abandoned|am not doing|'m not doing)\b|\blet (?:it|that|that one|the idea) go\b|"
    r"\b(?:turns out|turned out) (?:I|we) (?:don'?t|didn'?t) need to\b|\b(?:no longer|not) needed\b|"
    r"\b(?:not|isn't|wasn't) (?:worth it|the right (?:fit|move|time|thing))\b|\bnot doing (?:that|it) any ?more\b",
    re.I,
)
# Still meant, not done yet: "I didn't get round to it", "it's still on my list", "it slipped".
_NOT_YET = re.compile(
    r"\b(?:not yet|haven'?t|hasn'?t|didn'?t|did not|have not|has not|not\b[^.]*\byet|still (?:on my list|need to|to do|working on|haven'?t|want to|mean to|plan to|going to|have to)|one more|"
    r"slipped|ran out of time|no time|(?:kept )?putting it off|yet to|not quite|half done|fell apart|fell off|"
    r"(?:want to|need to|going to) get back to|lapsed|not really|made a start|partly|halfway|nope|"
    r"started (?:on )?it but|only (?:got|managed) (?:halfway|part))\b",
    re.I,
)
# "I sent", "I've finished", "I also blocked", "I finally did": a first-person subject, up to
# two adverbs, then a verb in the past.
_FIRST_PERSON_PAST = re.compile(
    r"\b(?:I|we)(?P<aux>\s+have|\s+had|'ve|'d)?\s+(?:(?:also|finally|already|actually|just|really)\s+){0,2}"
    r"(?P<verb>[a-z]+)\b",
    re.I,
)
_PAST_IRREGULAR = frozenset(
    "did done sent wrote written spoke spoken told made took taken gave given met went had began "
    "bought brought found kept left ran said spent thought held put chose drew led paid read".split()
)
_YES = re.compile(r"^(?:(?:finally|oh|well|so|um),?\s+)?(?:yes|yep|yeah|yup|done|sorted|all done|absolutely|I did|"
                  r"it did|you did|it's going|going well|booked|off)\b", re.I)


def _says_done(sentence: str) -> bool:
    for match in _FIRST_PERSON_PAST.finditer(sentence):
        verb = match.group("verb").lower()
        if (match.group("aux") or "").strip().lower() == "had" and verb not in _PAST_IRREGULAR \
                and not verb.endswith("ed"):
            verb = "had"  # "we had coffee": "had" is the verb itself
        if verb in _PAST_IRREGULAR or (verb.endswith("ed") and len(verb) > 3):
            before = sentence[: match.end()]
            clause = re.split(r"[,;]|\bbut\b", before)[-1]
            if not _NEGATION.search(clause):
                return True
    return bool(re.search(r"\b(?:it's|it is|that's|that is|all)\s+(?:done|sorted|finished|booked|sent)\b", sentence, re.I))


def _verdict(text: str, asked: bool) -> Verdict | None:
    """What a first-person report says of a commitment: dropped, still open, done, or nothing.
    `asked`: the coach has just asked about it, so a bare "yes, done" is an answer."""
    if _DROPPED.search(text):
        return "dropped"
    if _NOT_YET.search(text):
        return "open"
    if _says_done(text) or (asked and _YES.search(text)):
        return "done"
    return None


_PRECEDENCE = {"done": 0, "open": 1, "dropped": 2}
_BOTH = re.compile(r"\b(?:both|all of them|all three|each of them|the lot)\b", re.I)


def detect_progress(
    commitments: Sequence[TrackedCommitment], segments: Sequence[Segment], session_id: str
) -> dict[int, tuple[Verdict, Evidence]]:
    """For each commitment (by index) that this transcript reports on, the verdict (done,
    dropped, or still open) and the sentence that says so.

    A report is someone's own statement, read with the other person's turn just before it,
    which is what it answers: "And coffee with Leah?" — "I didn't get round to it." It is
    tied to the commitment it shares most content words with (two, or one for a short
    commitment), so one answer closes one commitment. Within one answer the more cautious
    verdict wins ("I asked one… I still want to ask one more" is still open). A question is
    no evidence.
    """
    said = sentences(segments)
    grouped = turns(said)
    best: dict[int, tuple[int, int, Verdict, Evidence]] = {}  # index -> (turn, shared, verdict, evidence)
    for number, turn in enumerate(grouped):
        before = grouped[number - 1] if number else []
        prompt = " ".join(said[p].text for p in before)
        asked = bool(before)
        for k, position in enumerate(turn):
            sentence = said[position]
            if sentence.text.rstrip().endswith("?"):
                continue
            # A short answer ("Yes.") is judged with the reply's next sentence too.
            following = said[turn[k + 1]] if k + 1 < len(turn) and len(sentence.text.split()) <= 3 else None
            text = sentence.text + (" " + following.text if following else "")
            verdict = _verdict(text, asked and k == 0)
            if verdict is None:
                continue
            context = content_words(text) | content_words(prompt)
            scores = []
            for index, commitment in enumerate(commitments):
                wanted = content_words(commitment.what)
                shared = len(wanted & context)
                if shared and shared >= min(2, len(wanted)):
                    scores.append((shared, index))
            # "And the energy log?": a short question naming one item by one word is enough.
            if not scores and asked and k == 0 and len(prompt.split()) <= 6 and prompt.endswith("?"):
                named = [index for index, c in enumerate(commitments) if content_words(c.what) & content_words(prompt)]
                scores = [(1, named[0])] if len(named) == 1 else []
            if not scores:
                continue
            # "You did, both": the answer covers every item the question named.
            chosen = [i for n, i in scores if n >= 2] if _BOTH.search(text) else [max(scores)[1]]
            for index in chosen:
                shared = next(n for n, i in scores if i == index)
                held = best.get(index)
                evidence = Evidence(session_id=session_id, timestamp=sentence.start, text=text)
                if held is None or shared > held[1] and held[0] != number:
                    best[index] = (number, shared, verdict, evidence)
                elif held[0] == number and _PRECEDENCE[verdict] > _PRECEDENCE[held[2]]:
                    best[index] = (number, max(shared, held[1]), verdict, evidence)
    return {index: (verdict, evidence) for index, (_, _, verdict, evidence) in best.items()}


# --- the update -------------------------------------------------------------------------------


def _same(a: str, b: str) -> bool:
    wa, wb = content_words(a), content_words(b)
    if not wa or not wb:
        return normalise(a).lower() == normalise(b).lower()
    return len(wa & wb) / len(wa | wb) >= 0.6


def _theme_key(name: str) -> str:
    return " ".join(stem(w) for w in re.findall(r"[a-z']+", name.lower()))


_NOT_A_NAME = frozenset(
    """I I'm I'll I've I'd OK Okay Monday Tuesday Wednesday Thursday Friday Saturday Sunday January
    February March April May June July August September October November December English God Dad
    Mum Mom Coach Client""".split()
)


def people_named(segments: Sequence[Segment]) -> list[str]:
    """Capitalised words said mid-sentence, as names are: "I asked Priya", "with Tomasz"."""
    found = []
    for segment in segments:
        for sentence in re.split(r"(?<=[.!?])\s+", segment.text):
            words = sentence.split()
            for word in (w.strip(".,;:!?\"()") for w in words[1:]):  # the first word is capitalised anyway
                word = word[:-2] if word.endswith("'s") else word
                if re.fullmatch(r"[A-Z][a-z]+(?:-[A-Z][a-z]+)?", word) and word not in _NOT_A_NAME \
                        and word not in found:
                    found.append(word)
    return found


def _same_theme(a: str, b: str) -> bool:
    """One theme when the words of one name are all in the other ("promotion", "the promotion case")."""
    wa, wb = set(a.split()), set(b.split())
    return a == b or bool(wa and wb and (wa <= wb or wb <= wa))


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
        if verdict == "open":
            earlier[index].last_update = evidence
        else:
            earlier[index].status = verdict
            earlier[index].closed_by = evidence

    new = [(c.what, c.who, c.by_when, c.source_timestamp, c.tentative, "commitment") for c in summary.commitments]
    new += [(h.task, "Client", h.due, h.source_timestamp, False, "homework")
            for h in summary.homework if h.source_timestamp is not None]
    for what, who, by_when, timestamp, hedged, kind in new:
        if any(_same(what, c.what) for c in memory.open_commitments):
            continue
        memory.commitments.append(TrackedCommitment(
            what=what, who=who, by_when=by_when, kind=kind, tentative=hedged,
            made_in=Evidence(
                session_id=session_id,
                timestamp=timestamp,
                text=_segment_text_at(segments, timestamp, what),
            ),
        ))
    closed = [c for c in memory.commitments if c.status != "open"]
    if len(closed) > MAX_CLOSED_COMMITMENTS:
        stale = {id(c) for c in closed[: len(closed) - MAX_CLOSED_COMMITMENTS]}
        memory.commitments = [c for c in memory.commitments if id(c) not in stale]

    for name in summary.themes:
        key = _theme_key(name)
        theme = next((t for t in memory.themes if _same_theme(_theme_key(t.name), key)), None)
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
    for name in people_named(segments):
        if name not in memory.people:
            memory.people.append(name)
    memory.people = memory.people[-MAX_PEOPLE:]
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


def briefing_items(memory: ClientMemory | None) -> list[TrackedCommitment]:
    """What the briefing before the next session lists: every commitment still open, oldest first."""
    return list(memory.open_commitments) if memory else []


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
