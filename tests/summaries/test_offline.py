"""The offline summariser on the test scripts: it finds the known commitments and homework."""

from __future__ import annotations

import pytest

from tests.speech.generate import script_segments
from tests.speech.scoring import EXPECTED, precision_recall, same_item
from workers.summaries.offline import summarise_offline
from workers.summaries.schema import ClientSummary, CoachSummary, apply_citations


@pytest.fixture(scope="module")
def summaries():
    return {name: summarise_offline(script_segments(name)) for name in ("session1", "session2")}


def test_commitments_and_homework_precision_and_recall(summaries):
    found_c, wanted_c, found_h, wanted_h = [], [], [], []
    for name, (client, _) in summaries.items():
        found_c += [c.what for c in client.commitments]
        wanted_c += [c["what"] for c in EXPECTED[name]["commitments"]]
        found_h += [h.task for h in client.homework]
        wanted_h += EXPECTED[name]["homework"]
    pc, rc = precision_recall(found_c, wanted_c)
    ph, rh = precision_recall(found_h, wanted_h)
    print(f"\noffline summariser on the scripts: commitments precision {pc:.2f} recall {rc:.2f}; "
          f"homework precision {ph:.2f} recall {rh:.2f}")
    # The scripts hold hard negatives ("I will admit", "I will try", "My manager will
    # probably…", "I could share…", questions): precision must stay high with them in.
    assert pc >= 0.85 and rc >= 0.85
    assert ph >= 0.85 and rh >= 0.85


def test_commitments_say_who_and_by_when(summaries):
    client, _ = summaries["session1"]
    proposal = next(c for c in client.commitments if same_item(c.what, "send the project proposal to my manager"))
    assert proposal.who == "Client" and proposal.by_when == "by Friday"
    worksheet = next(c for c in client.commitments if "worksheet" in c.what)
    assert worksheet.who == "Coach" and worksheet.by_when == "tonight"
    segments = script_segments("session1")
    said_at = next(s for s in segments if "send the project proposal" in s.text)
    assert proposal.source_timestamp == said_at.start


def test_output_is_labelled_basic_and_its_tiers_are_apart(summaries):
    client, coach = summaries["session1"]
    assert isinstance(client, ClientSummary) and isinstance(coach, CoachSummary)
    assert client.basic and coach.basic and client.engine == coach.engine == "offline-basic"
    assert "hypotheses" not in client.model_dump() and "overview" not in coach.model_dump()
    assert "Basic summary" in client.overview


def test_everything_it_cites_is_backed_by_the_transcript(summaries):
    client, _ = summaries["session1"]
    segments = script_segments("session1")
    assert apply_citations(client, segments) == client
    assert client.key_moments and client.decisions and client.open_threads
    assert client.open_threads == ["What if I freeze during the review?"]
    assert any("never ask anyone for help" in i for i in client.insights)


def test_nothing_to_summarise():
    client, coach = summarise_offline([])
    assert client.commitments == [] and client.basic and coach.observations == []


def test_platform_names_work_with_or_without_knowing_which_is_the_coach():
    names = {"COACH": "Maya Lopez", "CLIENT": "Daniel Okafor"}
    segments = script_segments("session1", speaker_names=names)
    for labels in (("Coach",), ("Maya Lopez",)):
        client, _ = summarise_offline(segments, coach_labels=labels)
        assert len(client.homework) == 2
        worksheet = next(c for c in client.commitments if "worksheet" in c.what)
        assert worksheet.who == "Maya Lopez"


def test_a_commitment_said_again_is_listed_once():
    from workers.transcription import Segment
    from workers.summaries.offline import summarise_offline
    line = "I will book a one-to-one for Thursday and write down my three asks."
    segments = [Segment(10.0 * i, 10.0 * i + 5, line if i % 2 else "What will you do next?",
                        "Client" if i % 2 else "Coach") for i in range(8)]
    client, _ = summarise_offline(segments)
    assert [c.what for c in client.commitments] == ["book a one-to-one for Thursday and write down my three asks"]
    assert client.commitments[0].source_timestamp == 10.0  # the first mention is the one cited
