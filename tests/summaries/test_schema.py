"""The summary schema: citations checked against the transcript, the strict JSON schema."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workers.summaries.schema import (
    ClientTier,
    Commitment,
    Decision,
    KeyMoment,
    SummaryDraft,
    apply_citations,
    split_tiers,
    strict_json_schema,
)
from workers.transcription import Segment

SEGMENTS = [
    Segment(0.0, 5.0, "What is the next concrete step?", "Coach"),
    Segment(5.5, 12.0, "I will send the project proposal to my manager by Friday.", "Client"),
    Segment(12.5, 20.0, "We agreed that the quarterly review is my chance to practise leading.", "Client"),
]


def tier(**items) -> ClientTier:
    base = dict(overview="", themes=[], insights=[], decisions=[], commitments=[], homework=[],
                open_threads=[], key_moments=[], goals_touched=[])
    return ClientTier(**{**base, **items})


def test_items_without_backing_are_dropped_and_the_rest_kept():
    summary = tier(
        commitments=[
            Commitment(what="Send the proposal to the manager", who="Client", by_when="Friday", source_timestamp=6.0),
            Commitment(what="Send the proposal to the manager", who="Client", by_when=None, source_timestamp=40.0),
            Commitment(what="Run a marathon", who="Client", by_when=None, source_timestamp=6.0),
        ],
        decisions=[
            Decision(text="Treat the quarterly review as leadership practice", source_timestamp=12.6),
            Decision(text="Quit the job", source_timestamp=13.0),
        ],
        key_moments=[
            KeyMoment(timestamp=12.0, line="Sending the proposal"),  # edge of a segment: backed
            KeyMoment(timestamp=5.25, line="Next step: the proposal"),  # in a gap, within 1 s
            KeyMoment(timestamp=3.0, line="Daniel cried"),
        ],
    )
    kept = apply_citations(summary, SEGMENTS)
    assert [(c.what, c.source_timestamp) for c in kept.commitments] == [("Send the proposal to the manager", 6.0)]
    assert [d.text for d in kept.decisions] == ["Treat the quarterly review as leadership practice"]
    assert [k.line for k in kept.key_moments] == ["Sending the proposal", "Next step: the proposal"]
    assert summary.commitments[2].what == "Run a marathon"  # the input is not changed


def test_strict_json_schema_closes_every_object():
    schema = strict_json_schema(SummaryDraft)

    def objects(node):
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield node
            for value in node.values():
                yield from objects(value)
        elif isinstance(node, list):
            for value in node:
                yield from objects(value)

    found = list(objects(schema))
    assert len(found) == 8  # the draft, two tiers, five item kinds
    for node in found:
        assert node["additionalProperties"] is False
        assert sorted(node["required"]) == sorted(node["properties"])
    assert "default" not in str(schema)
    assert set(schema["properties"]) == {"client", "coach"}


def test_drafts_refuse_unknown_fields_and_split_into_two_tiers():
    coach = dict(observations=["o"], hypotheses=["h"], patterns_across_sessions=[], questions_for_next_time=[],
                 supervision_questions=["s"])
    with pytest.raises(ValidationError):
        SummaryDraft.model_validate({"client": tier().model_dump() | {"secret": 1}, "coach": coach})
    client, coach_tier = split_tiers(SummaryDraft.model_validate({"client": tier().model_dump(), "coach": coach}), engine="x")
    assert "hypotheses" not in client.model_dump()
    assert coach_tier.hypotheses == ["h"] and coach_tier.engine == "x" and not coach_tier.basic
