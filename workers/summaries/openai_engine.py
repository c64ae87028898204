"""Summaries by an OpenAI-compatible chat model held to our JSON schema (structured outputs).

The prompt carries the transcript, one line per segment with its start in seconds, and the
client's memory, so the model can say what moved since last time. Its answer must parse as
`SummaryDraft`; anything else is a SummaryFormatError, never a half-read summary. Items whose
cited timestamp the transcript does not back are dropped, and the two tiers come back as
separate objects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import ValidationError

from workers.summaries.memory import ClientMemory, memory_for_prompt
from workers.summaries.schema import (
    ClientSummary,
    CoachSummary,
    SummaryDraft,
    apply_citations,
    split_tiers,
    strict_json_schema,
)
from workers.transcription import Segment

ENGINE = "openai"
# ~100k tokens: far above a long session's transcript, below every current model's window.
MAX_TRANSCRIPT_CHARS = 400_000

SYSTEM_PROMPT = """\
You summarise one coaching session for holdspace. Answer with JSON that follows the schema.

Two tiers, kept strictly apart:
- "client": the client reads this. Plain, warm, factual; in the client's own terms. Never
  mention hypotheses, diagnoses or the coach's private thoughts here.
- "coach": only the coach reads this: observations, hypotheses, patterns across sessions,
  questions for next time, questions to take to supervision.

Citations: each transcript line starts with its time in seconds in brackets, e.g. [754.2].
Every commitment and decision gives that number as "source_timestamp", and every key moment
as "timestamp", of the line that says it. Leave out anything you cannot point to a line for.
Commitments: who will do what, by when (as said, or null).

The client's memory (open commitments, recurring themes, goals, last open threads) comes from
earlier sessions. Use it to say in the overview and in goals_touched what moved since last
time: commitments done or still open, goals progressed. Invent nothing.
"""


class SummaryFormatError(ValueError):
    """The model's answer is not a summary in our schema (bad JSON, wrong shape, refusal)."""


def transcript_for_prompt(segments: Sequence[Segment], limit: int = MAX_TRANSCRIPT_CHARS) -> str:
    lines = []
    for segment in segments:
        who = f"{segment.speaker}{' (guessed)' if segment.speaker_guessed else ''}: " if segment.speaker else ""
        lines.append(f"[{segment.start:.1f}] {who}{segment.text}")
    text = "\n".join(lines)
    if len(text) > limit:
        # Keep the start and the end, where sessions set goals and agree next steps.
        half = limit // 2
        text = text[:half] + "\n[… middle of the transcript left out for length …]\n" + text[-half:]
    return text


def response_format() -> dict:
    return {
        "type": "json_schema",
        "json_schema": {"name": "session_summary", "strict": True, "schema": strict_json_schema(SummaryDraft)},
    }


class OpenAISummariser:
    """Summarises with `client.chat.completions` (an `openai.OpenAI`) and a model name."""

    engine = ENGINE

    def __init__(self, client, model: str = "gpt-4o-mini", *, temperature: float = 0.2):
        self.client = client
        self.model = model
        self.temperature = temperature

    def messages(
        self,
        segments: Sequence[Segment],
        memory: ClientMemory | None = None,
        *,
        client_name: str | None = None,
        coach_name: str | None = None,
    ) -> list[dict]:
        people = f"Coach: {coach_name or 'the coach'}. Client: {client_name or 'the client'}.\n\n"
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": people
                + "Client memory from earlier sessions:\n"
                + memory_for_prompt(memory)
                + "\n\nTranscript of this session:\n"
                + transcript_for_prompt(segments),
            },
        ]

    def summarise(
        self,
        segments: Sequence[Segment],
        memory: ClientMemory | None = None,
        *,
        client_name: str | None = None,
        coach_name: str | None = None,
    ) -> tuple[ClientSummary, CoachSummary]:
        """(client tier, coach tier) for the session; raises SummaryFormatError on a bad answer."""
        completion = self.client.chat.completions.create(
            model=self.model,
            messages=self.messages(segments, memory, client_name=client_name, coach_name=coach_name),
            response_format=response_format(),
            temperature=self.temperature,
        )
        if not completion.choices:
            raise SummaryFormatError("the model returned no answer")
        choice = completion.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise SummaryFormatError(f"the model refused: {refusal}")
        if choice.finish_reason == "length":
            raise SummaryFormatError("the model's answer was cut off (token limit)")
        content = choice.message.content or ""
        try:
            draft = SummaryDraft.model_validate(json.loads(content))
        except json.JSONDecodeError as exc:
            raise SummaryFormatError(f"the model's answer is not JSON: {exc}") from None
        except ValidationError as exc:
            raise SummaryFormatError(
                f"the model's answer does not follow the summary schema: {exc.error_count()} error(s), "
                f"first: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
            ) from None
        draft = apply_citations(draft, segments)
        return split_tiers(draft, engine=self.engine)
