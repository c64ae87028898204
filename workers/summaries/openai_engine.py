"""Summaries by an OpenAI-compatible chat model held to our JSON schema (structured outputs).

The prompt carries the transcript, one line per segment with its start in seconds, and the
client's memory, so the model can say what moved since last time. Its answer must parse as
`SummaryDraft`; anything else is a SummaryFormatError, never a half-read summary. Items whose
cited timestamp the transcript does not back are dropped, and the two tiers come back as
separate objects.

Small self-hosted models (llama.cpp's server, Ollama, vLLM) are held to the same standard:
the schema is sent as `response_format` and, where a server refuses that, written into the
prompt; reasoning (`<think>…</think>`) and code fences around the JSON are taken off; an
answer that is not the schema gets one repair request quoting what was wrong; and a session
longer than `chunk_chars` is summarised in overlapping parts whose items are merged.
"""

from __future__ import annotations

import json
import logging
import re
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
from workers.summaries.text import first_of_each
from workers.transcription import Segment

log = logging.getLogger(__name__)

ENGINE = "openai"
# ~100k tokens: far above a long session's transcript, below every current model's window.
MAX_TRANSCRIPT_CHARS = 400_000
# ~8k tokens of transcript per request: an hour's session in two or three parts, and room left
# in a small model's context for the instructions, the memory and the answer.
CHUNK_CHARS = 32_000
MAX_ANSWER_TOKENS = 4096
OVERLAP_LINES = 6  # repeated at the start of the next part, so a sentence cut in two is read whole

SYSTEM_PROMPT = """\
You summarise one coaching session for holdspace. Answer with JSON that follows the schema.

Two tiers, kept strictly apart:
- "client": the client reads this. Plain, warm, factual; in the client's own terms. Never
  mention hypotheses, diagnoses or the coach's private thoughts here.
- "coach": only the coach reads this: observations, hypotheses, patterns across sessions,
  questions for next time, questions to take to supervision.

Citations: each transcript line starts with its time in seconds in brackets, e.g. [754.2].
Every commitment, decision and homework gives that number as "source_timestamp", and every key moment
as "timestamp", of the line that says it. Leave out anything you cannot point to a line for.
Commitments: who will do what, by when (as said, or null).

The client's memory (open commitments, recurring themes, goals, last open threads) comes from
earlier sessions. Use it to say in the overview and in goals_touched what moved since last
time: commitments done or still open, goals progressed. Invent nothing.
"""


class SummaryFormatError(ValueError):
    """The model's answer is not a summary in our schema (bad JSON, wrong shape, refusal)."""


_THINKING = re.compile(r"<think>.*?</think>|^.*?</think>", re.S)  # closed, or opened by the template
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def answer_json(content: str) -> str:
    """The JSON in a model's answer: reasoning and code fences taken off, then the outermost
    object (small models often say a word before or after it)."""
    text = _FENCE.sub("", _THINKING.sub("", content).strip()).strip()
    start, end = text.find("{"), text.rfind("}")
    return text[start: end + 1] if start != -1 and end > start else text


def parse_draft(content: str) -> SummaryDraft:
    try:
        return SummaryDraft.model_validate(json.loads(answer_json(content)))
    except json.JSONDecodeError as exc:
        raise SummaryFormatError(f"the model's answer is not JSON: {exc}") from None
    except ValidationError as exc:
        raise SummaryFormatError(
            f"the model's answer does not follow the summary schema: {exc.error_count()} error(s), "
            f"first: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
        ) from None


def chunks(segments: Sequence[Segment], limit: int, overlap: int = OVERLAP_LINES) -> list[list[Segment]]:
    """The segments in parts whose prompt lines stay under `limit` characters, each part
    starting with the last `overlap` segments of the one before."""
    parts: list[list[Segment]] = [[]]
    size = 0
    for segment in segments:
        line = len(segment.text) + 40
        if parts[-1] and size + line > limit:
            carried = parts[-1][-overlap:] if overlap else []
            parts.append(list(carried))
            size = sum(len(s.text) + 40 for s in carried)
        parts[-1].append(segment)
        size += line
    return parts


def merge_drafts(drafts: Sequence[SummaryDraft]) -> SummaryDraft:
    """One draft from the drafts of a session's parts, in order: every list joined, each item
    once (the parts overlap), the overviews one after another."""
    if len(drafts) == 1:
        return drafts[0]
    client, coach = {}, {}
    keys = {"decisions": lambda d: d.text, "commitments": lambda c: c.what, "homework": lambda h: h.task,
            "key_moments": lambda k: k.line, "goals_touched": lambda g: g.goal}
    for field in drafts[0].client.model_fields:
        if field == "overview":
            client[field] = " ".join(d.client.overview.strip() for d in drafts if d.client.overview.strip())
        else:
            joined = [item for d in drafts for item in getattr(d.client, field)]
            client[field] = first_of_each(joined, keys.get(field, str))
    for field in drafts[0].coach.model_fields:
        coach[field] = first_of_each([item for d in drafts for item in getattr(d.coach, field)], str)
    return SummaryDraft(client=drafts[0].client.model_copy(update=client),
                        coach=drafts[0].coach.model_copy(update=coach))


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


def with_schema(system: str) -> str:
    """The instructions with the schema written out, for a server without structured outputs."""
    return system + "\nThe JSON schema your answer must follow:\n" + json.dumps(strict_json_schema(SummaryDraft))


def response_format() -> dict:
    return {
        "type": "json_schema",
        "json_schema": {"name": "session_summary", "strict": True, "schema": strict_json_schema(SummaryDraft)},
    }


class OpenAISummariser:
    """Summarises with `client.chat.completions` (an `openai.OpenAI`) and a model name."""

    engine = ENGINE

    def __init__(self, client, model: str = "gpt-4o-mini", *, temperature: float = 0.2,
                 chunk_chars: int = CHUNK_CHARS):
        self.client = client
        self.model = model
        self.temperature = temperature
        self.chunk_chars = chunk_chars
        self.schema_in_prompt = False  # set once a server refuses `response_format`

    def messages(
        self,
        segments: Sequence[Segment],
        memory: ClientMemory | None = None,
        *,
        client_name: str | None = None,
        coach_name: str | None = None,
        part: tuple[int, int] = (1, 1),
    ) -> list[dict]:
        people = f"Coach: {coach_name or 'the coach'}. Client: {client_name or 'the client'}.\n\n"
        system = with_schema(SYSTEM_PROMPT) if self.schema_in_prompt else SYSTEM_PROMPT
        which = "" if part == (1, 1) else (
            f"This is part {part[0]} of {part[1]} of the session; summarise only this part.\n\n")
        return [
            {"role": "system", "content": system},
            {
                "role": "user",
                "content": people + which
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
        parts = chunks(segments, self.chunk_chars)
        drafts = [self._draft(self.messages(part, memory, client_name=client_name, coach_name=coach_name,
                                            part=(n, len(parts))))
                  for n, part in enumerate(parts, start=1)]
        draft = apply_citations(merge_drafts(drafts), segments)
        return split_tiers(draft, engine=self.engine)

    def _draft(self, messages: list[dict]) -> SummaryDraft:
        """One part's draft, with one repair request when the first answer is not the schema."""
        content = self._ask(messages)
        try:
            return parse_draft(content)
        except SummaryFormatError as first:
            log.info("summary answer outside the schema, asking once more: %s", first)
            repair = [*messages, {"role": "assistant", "content": content},
                      {"role": "user", "content": f"That answer cannot be used: {first}. Answer again with only "
                                                  "the JSON object that follows the schema, nothing before or after."}]
            return parse_draft(self._ask(repair))

    def _ask(self, messages: list[dict]) -> str:
        import openai
        # A summary's JSON is a few thousand tokens at most; a small model held to a grammar
        # can otherwise write until its context is full.
        request = dict(model=self.model, messages=messages, temperature=self.temperature, max_tokens=MAX_ANSWER_TOKENS)
        if not self.schema_in_prompt:
            try:
                return self._content(self.client.chat.completions.create(**request, response_format=response_format()))
            except openai.BadRequestError as exc:
                # A server without structured outputs: the schema goes into the prompt instead.
                log.info("the server refused response_format (%s); the schema goes in the prompt", exc.status_code)
                self.schema_in_prompt = True
                request["messages"] = [{**messages[0], "content": with_schema(messages[0]["content"])}, *messages[1:]]
        return self._content(self.client.chat.completions.create(**request))

    @staticmethod
    def _content(completion) -> str:
        if not completion.choices:
            raise SummaryFormatError("the model returned no answer")
        choice = completion.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise SummaryFormatError(f"the model refused: {refusal}")
        if choice.finish_reason == "length":
            raise SummaryFormatError("the model's answer was cut off (token limit)")
        return choice.message.content or ""
