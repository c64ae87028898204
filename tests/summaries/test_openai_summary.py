"""Structured-output summaries through the local OpenAI stand-in."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from integrations.openai_api import make_client
from tests.speech.generate import script_segments
from workers.summaries.memory import update_memory
from workers.summaries.offline import summarise_offline
from workers.summaries.openai_engine import OpenAISummariser, SummaryFormatError
from workers.summaries.schema import ClientSummary, CoachSummary
from workers.transcription import Segment

SEGMENTS = script_segments("session2")


def at(fragment: str) -> float:
    return next(s.start for s in SEGMENTS if fragment in s.text)


def draft() -> dict:
    return {
        "client": {
            "overview": "Daniel sent the proposal and blocked deep-work time; Priya is still to come.",
            "themes": ["confidence", "asking for help"],
            "insights": ["Asking for help is not weakness."],
            "decisions": [
                {"text": "Lead the quarterly review", "source_timestamp": at("quarterly review is next week")},
            ],
            "commitments": [
                {"what": "Ask Priya for a meeting", "who": "Daniel", "by_when": "Tuesday", "source_timestamp": at("ask Priya for a meeting")},
                # Cites a real line, but one that says nothing about it: dropped.
                {"what": "Book a holiday in Spain", "who": "Daniel", "by_when": None, "source_timestamp": at("ask Priya for a meeting")},
                # Cites a time when nobody spoke: dropped.
                {"what": "Ask Priya for a meeting", "who": "Daniel", "by_when": None, "source_timestamp": 9999.0},
            ],
            "homework": [{"task": "Practise one sentence to ask for help", "due": None, "source_timestamp": None}],
            "open_threads": ["Why the conversation with Priya keeps slipping"],
            "key_moments": [
                {"timestamp": at("I sent the project proposal"), "line": "Proposal sent to the manager"},
                {"timestamp": at("I sent the project proposal"), "line": "Won the lottery"},
            ],
            "goals_touched": [{"goal": "Confidence at work", "progress": "Growing, slowly"}],
        },
        "coach": {
            "observations": ["Avoids the Priya conversation"],
            "hypotheses": ["Fear of looking weak drives the avoidance"],
            "patterns_across_sessions": ["Over-functioning alone"],
            "questions_for_next_time": ["What happened with Priya?"],
            "supervision_questions": ["Am I colluding with the avoidance?"],
        },
    }


@pytest.fixture
def summariser(openai_stub):
    return OpenAISummariser(make_client(base_url=openai_stub.base_url, api_key="sk-test", max_retries=0), "gpt-4o-mini")


@pytest.fixture
def memory():
    first = script_segments("session1")
    client, _ = summarise_offline(first)
    return update_memory(None, client, "s1", dt.date(2026, 3, 2), first)


def test_structured_summary_keeps_cited_items_and_the_tiers_apart(openai_stub, summariser, memory):
    openai_stub.chat_reply = draft()
    client, coach = summariser.summarise(SEGMENTS, memory, client_name="Daniel", coach_name="Maya")

    assert isinstance(client, ClientSummary) and isinstance(coach, CoachSummary)
    assert client.engine == coach.engine == "openai" and not client.basic
    assert [c.what for c in client.commitments] == ["Ask Priya for a meeting"]
    assert [k.line for k in client.key_moments] == ["Proposal sent to the manager"]
    assert [d.text for d in client.decisions] == ["Lead the quarterly review"]
    # The coach tier is its own object; nothing of it is in the client's.
    assert coach.hypotheses == ["Fear of looking weak drives the avoidance"]
    client_json = client.model_dump_json()
    assert "hypotheses" not in client_json and "Fear of looking weak" not in client_json

    request = openai_stub.chat_requests[0]
    assert request["model"] == "gpt-4o-mini"
    format_ = request["response_format"]
    assert format_["type"] == "json_schema" and format_["json_schema"]["strict"] is True
    assert set(format_["json_schema"]["schema"]["properties"]) == {"client", "coach"}
    prompt = request["messages"][-1]["content"]
    # The memory rides along: last session's open commitment and open thread.
    assert "send the project proposal to my manager by Friday" in prompt
    assert "What if I freeze during the review?" in prompt
    line = next(s for s in SEGMENTS if "I sent the project proposal" in s.text)
    assert f"[{line.start:.1f}] Client: {line.text}\n" in prompt  # each line cites its time


@pytest.mark.parametrize(
    "reply, says",
    [
        ("The session went well.", "not JSON"),
        ('{"client": {"overview": "x"}}', "does not follow the summary schema"),
        (lambda: {**draft(), "extra": 1}, "does not follow the summary schema"),
        (lambda: {**draft(), "client": {**draft()["client"], "commitments": [{"what": "x"}]}}, "commitments"),
    ],
)
def test_an_answer_outside_the_schema_is_a_clear_error(openai_stub, summariser, reply, says):
    openai_stub.chat_reply = json.dumps(reply()) if callable(reply) else reply
    with pytest.raises(SummaryFormatError, match=says):
        summariser.summarise(SEGMENTS)


def test_first_session_prompt_says_there_is_no_history(openai_stub, summariser):
    openai_stub.chat_reply = draft()
    summariser.summarise(SEGMENTS, None)
    assert "No earlier sessions." in openai_stub.chat_requests[0]["messages"][-1]["content"]


# --- small and self-hosted models ------------------------------------------------------------

def test_reasoning_and_code_fences_around_the_answer_are_taken_off(openai_stub, summariser):
    openai_stub.chat_reply = ("<think>The client mentions Priya; {maybe a commitment}.</think>\n"
                              "Here is the summary:\n```json\n" + json.dumps(draft()) + "\n```")
    client, _ = summariser.summarise(SEGMENTS)
    assert [c.what for c in client.commitments] == ["Ask Priya for a meeting"]
    assert len(openai_stub.chat_requests) == 1


def test_an_answer_outside_the_schema_gets_one_repair_request(openai_stub, summariser):
    answers = iter(['{"client": {"overview": "x"}}', json.dumps(draft())])
    openai_stub.chat_reply = lambda request: next(answers)
    client, _ = summariser.summarise(SEGMENTS)
    assert client.decisions and len(openai_stub.chat_requests) == 2
    repair = openai_stub.chat_requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"client": {"overview": "x"}}'}
    assert "does not follow the summary schema" in repair[-1]["content"]


def test_a_server_without_structured_outputs_gets_the_schema_in_the_prompt(openai_stub, summariser):
    openai_stub.chat_reply = draft()
    openai_stub.fail_next(1, 400)
    client, _ = summariser.summarise(SEGMENTS)
    assert client.commitments
    retried = openai_stub.chat_requests[-1]
    assert "response_format" not in retried
    assert '"commitments"' in retried["messages"][0]["content"]  # the schema, written out


def test_a_long_session_is_summarised_in_parts_and_merged(openai_stub):
    long = [seg for seg in SEGMENTS] + [
        Segment(s.start + 1000, s.end + 1000, s.text, s.speaker) for s in SEGMENTS]

    def reply(request):
        # Each part cites what it was shown: the meeting with Priya, in its own half.
        prompt = request["messages"][-1]["content"]
        times = [float(t) for t in re.findall(r"^\[(\d+\.\d)\] .*ask Priya for a meeting", prompt, re.M)]
        answer = draft()
        answer["client"]["commitments"] = [{"what": "Ask Priya for a meeting", "who": "Daniel", "by_when": None,
                                            "source_timestamp": t} for t in times]
        answer["client"]["overview"] = f"Part with {len(times)} mention(s)."
        return answer

    openai_stub.chat_reply = reply
    small = OpenAISummariser(make_client(base_url=openai_stub.base_url, api_key="sk-test", max_retries=0),
                             "local-1.5b", chunk_chars=3000)
    client, _ = small.summarise(long)
    requests = openai_stub.chat_requests
    assert len(requests) >= 2 and "part 1 of" in requests[0]["messages"][-1]["content"]
    # Said twice, cited twice, but one commitment; each part's overview is kept.
    assert [c.what for c in client.commitments] == ["Ask Priya for a meeting"]
    assert client.overview.count("Part with") == len(requests)
    # Homework without a line to point to is not kept.
    assert client.homework == []
