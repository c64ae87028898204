"""The one summary schema, in two tiers kept apart: what the client sees, what only the coach sees.

`SummaryDraft` is what an engine produces (and the JSON schema an LLM is held to);
`ClientSummary` and `CoachSummary` are the two tiers as the caller stores them, each naming
the engine that made it and whether it is the basic offline one. `apply_citations()` drops
every commitment, decision and key moment whose cited timestamp the transcript does not back.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workers.summaries.text import content_words
from workers.transcription import Segment

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    # Unknown keys are an error: a model that invents fields has not followed the schema.
    model_config = ConfigDict(extra="forbid")


class Commitment(_Strict):
    what: str = Field(description="What will be done, in the speaker's words")
    who: str = Field(description="Who will do it: the client, the coach, or a name")
    by_when: str | None = Field(description="When it is due, as said (e.g. 'by Friday'), or null")
    source_timestamp: float = Field(description="Seconds: the transcript line where it was said")
    tentative: bool = Field(default=False, description="True when it was hedged ('I might', 'I'll try to')")


class Decision(_Strict):
    text: str
    source_timestamp: float = Field(description="Seconds: the transcript line where it was decided")


class KeyMoment(_Strict):
    timestamp: float = Field(description="Seconds: the transcript line of the moment")
    line: str = Field(description="One line saying what happened")


class Homework(_Strict):
    task: str
    due: str | None
    source_timestamp: float | None


class GoalTouched(_Strict):
    goal: str
    progress: str | None = Field(description="What moved on this goal since last time, or null")


class ClientTier(_Strict):
    """What the client may read and download."""

    overview: str
    themes: list[str]
    insights: list[str]
    decisions: list[Decision]
    commitments: list[Commitment]
    homework: list[Homework]
    open_threads: list[str]
    key_moments: list[KeyMoment]
    goals_touched: list[GoalTouched]


class CoachTier(_Strict):
    """The coach's own working notes: never shown to the client, never in an email or export."""

    observations: list[str]
    hypotheses: list[str]
    patterns_across_sessions: list[str]
    questions_for_next_time: list[str]
    supervision_questions: list[str]


class SummaryDraft(_Strict):
    """Both tiers as one engine output; split it with `split_tiers()` before storing."""

    client: ClientTier
    coach: CoachTier


class ClientSummary(ClientTier):
    engine: str
    basic: bool = False  # True for the offline engine, so the UI can say "basic summary"


class CoachSummary(CoachTier):
    engine: str
    basic: bool = False


def split_tiers(draft: SummaryDraft, *, engine: str, basic: bool = False) -> tuple[ClientSummary, CoachSummary]:
    """The two tiers as separate objects, so nothing of the coach's tier rides along with the client's."""
    return (
        ClientSummary(**draft.client.model_dump(), engine=engine, basic=basic),
        CoachSummary(**draft.coach.model_dump(), engine=engine, basic=basic),
    )


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema in the form OpenAI's structured outputs accept with strict=true:
    every object closed (additionalProperties false) and every property required."""
    schema = copy.deepcopy(model.model_json_schema())

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("default", None)  # strict mode rejects defaults
            node.pop("title", None)
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
                for value in node["properties"].values():  # keys here are field names: keep them all
                    visit(value)
            for key, value in node.items():
                if key != "properties":
                    visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


# --- citations ----------------------------------------------------------------------------------

def _supported(timestamp: float | None, text: str, segments: Sequence[Segment], tolerance: float) -> bool:
    if timestamp is None:
        return False
    words = content_words(text)
    for index, segment in enumerate(segments):
        if segment.start - tolerance <= timestamp <= segment.end + tolerance:
            # The sentence may run on into the next segment: engines cut mid-sentence.
            said = segment.text
            if index + 1 < len(segments) and segments[index + 1].speaker == segment.speaker:
                said += " " + segments[index + 1].text
            if words & content_words(said):
                return True
    return False


def apply_citations(summary, segments: Sequence[Segment], *, tolerance: float = 1.0):
    """A copy of `summary` (a client tier, or a draft holding one) without the commitments,
    decisions, homework and key moments the transcript does not back.

    An item is backed when its cited timestamp falls in a segment (give or take `tolerance`
    seconds, for rounding) whose text shares at least one content word with the item. The
    same check runs whatever engine wrote the summary; dropped items are logged.
    """
    def keep(kind: str, items: list, text_of, time_of) -> list:
        kept = []
        for item in items:
            if _supported(time_of(item), text_of(item), segments, tolerance):
                kept.append(item)
            else:
                log.info("dropped uncited %s %r at %s", kind, text_of(item), time_of(item))
        return kept

    if isinstance(summary, SummaryDraft):
        return summary.model_copy(update={"client": apply_citations(summary.client, segments, tolerance=tolerance)})
    return summary.model_copy(update={
        "commitments": keep("commitment", summary.commitments, lambda c: c.what, lambda c: c.source_timestamp),
        "decisions": keep("decision", summary.decisions, lambda d: d.text, lambda d: d.source_timestamp),
        "homework": keep("homework", summary.homework, lambda h: h.task, lambda h: h.source_timestamp),
        "key_moments": keep("key moment", summary.key_moments, lambda k: k.line, lambda k: k.timestamp),
    })
