"""Client memory across sessions: commitments closed with evidence, themes accumulating."""

from __future__ import annotations

import datetime as dt

from tests.speech.generate import script_segments
from tests.speech.scoring import EXPECTED, same_item
from workers.summaries.memory import ClientMemory, TrackedCommitment, Evidence, detect_progress, update_memory
from workers.summaries.offline import summarise_offline
from workers.summaries.schema import ClientTier
from workers.transcription import Segment

S1, S2 = script_segments("session1"), script_segments("session2")
DAY1, DAY2 = dt.date(2026, 3, 2), dt.date(2026, 3, 16)


def two_sessions() -> tuple[ClientMemory, ClientMemory]:
    first, _ = summarise_offline(S1)
    after_one = update_memory(None, first, "s1", DAY1, S1)
    second, _ = summarise_offline(S2, memory=after_one, session_id="s2")
    return after_one, update_memory(after_one, second, "s2", DAY2, S2)


def talk_about(*turns: str) -> list[Segment]:
    """Alternating turns, coach first, ten seconds each."""
    return [Segment(10.0 * i, 10.0 * i + 8, text, "Coach" if i % 2 == 0 else "Client") for i, text in enumerate(turns)]


def find(memory: ClientMemory, what: str) -> TrackedCommitment:
    return next(c for c in memory.commitments if same_item(c.what, what))


def test_a_commitment_reported_done_is_closed_with_evidence():
    after_one, after_two = two_sessions()
    assert sum(c.kind == "commitment" for c in after_one.open_commitments) == 5
    # The homework the coach set is tracked too, so the next briefing can ask about it.
    assert sum(c.kind == "homework" for c in after_one.open_commitments) == 2
    proposal = find(after_two, "send the project proposal to my manager")
    assert proposal.status == "done"
    assert proposal.made_in.session_id == "s1"
    assert proposal.closed_by.session_id == "s2"
    assert "I sent the project proposal to my manager on Thursday" in proposal.closed_by.text
    said = next(s for s in S2 if "I sent the project proposal" in s.text)
    assert proposal.closed_by.timestamp == said.start

    for what in EXPECTED["session2"]["done_from_session1"]:
        assert find(after_two, what).status == "done", what
    for what in EXPECTED["session2"]["still_open_from_session1"]:
        assert find(after_two, what).status == "open", what  # "I have not talked to Priya yet"
    for what in (c["what"] for c in EXPECTED["session2"]["commitments"]):
        assert find(after_two, what).made_in.session_id == "s2"
    assert after_one.open_commitments[0].status == "open"  # the earlier memory is untouched


def test_themes_accumulate_session_ids_and_threads_roll_over():
    after_one, after_two = two_sessions()
    review = next(t for t in after_two.themes if t.name == "quarterly review")
    assert review.session_ids == ["s1", "s2"]
    assert all(t.session_ids == ["s1"] for t in after_one.themes)
    assert after_one.last_open_threads == ["What if I freeze during the review?"]
    assert after_two.last_session_id == "s2" and after_two.last_session_date == DAY2
    assert after_two.session_ids == ["s1", "s2"]


def test_the_second_summary_says_what_moved():
    after_one, _ = two_sessions()
    second, coach = summarise_offline(S2, memory=after_one, session_id="s2")
    assert "Since last time:" in second.overview and "(done)" in second.overview
    assert any("quarterly review" in p for p in coach.patterns_across_sessions)
    # The coach is asked to check in on what is still open, not on what was just done.
    assert any("talk to Priya" in q for q in coach.questions_for_next_time)
    assert not any("project proposal" in q for q in coach.questions_for_next_time)


def test_updating_twice_with_the_same_session_changes_nothing():
    _, after_two = two_sessions()
    second, _ = summarise_offline(S2)
    assert update_memory(after_two, second, "s2", DAY2, S2) == after_two


def test_memory_round_trips_as_json():
    _, after_two = two_sessions()
    assert ClientMemory.model_validate_json(after_two.model_dump_json()) == after_two


def test_negated_dropped_and_asked_are_told_apart():
    open_one = TrackedCommitment(
        what="talk to Priya about sharing the reporting work", who="Client",
        made_in=Evidence(session_id="s1", timestamp=1.0, text="..."),
    )
    def verdict(text: str, speaker: str = "Client"):
        found = detect_progress([open_one], [Segment(0.0, 3.0, text, speaker)], "s2")
        return found[0][0] if found else None

    # Not done but still meant: it stays open, and the report is kept as its latest news.
    assert verdict("I have not talked to Priya about the reporting work yet.") == "open"
    assert verdict("Did you talk to Priya about the reporting work?", "Coach") is None
    assert verdict("I talked to Priya and she took over the reporting work.") == "done"
    assert verdict("I've decided not to share the reporting work with Priya after all.") == "dropped"
    assert verdict("I finished the quarterly budget.") is None  # nothing in common
    # Reports as people make them.
    assert verdict("Turns out I don't need to talk to Priya, she took the reporting work on herself.") == "dropped"
    assert verdict("The reporting work with Priya, I made a start, but only the first part.") == "open"
    assert verdict("Priya and the reporting work, nope, didn't happen.") == "open"
    assert verdict("Priya, the reporting work: I've let that one go.") == "dropped"


def test_a_repeated_commitment_is_not_added_twice():
    tier = ClientTier(overview="", themes=[], insights=[], decisions=[], homework=[], open_threads=[],
                      key_moments=[], goals_touched=[], commitments=[])
    first, _ = summarise_offline(S1)
    memory = update_memory(None, first, "s1", DAY1, S1)
    again = tier.model_copy(update={"commitments": [first.commitments[0]]})
    memory = update_memory(memory, again, "s2", DAY2, [])
    assert sum(1 for c in memory.commitments if c.what == first.commitments[0].what) == 1


def test_one_answer_reports_on_what_the_question_named():
    first = talk_about(
        "What will you do before next time?",
        "I'll send the portfolio to Marta by Friday.",
        "I'll send you the reading list. And I'll send you the podcast on negotiation.",
        "Great.",
        "What else?",
        "I'm going to keep a sleep diary every morning.",
    )
    client, _ = summarise_offline(first, coach_labels=("Coach",))
    memory = update_memory(None, client, "s1", None, first)
    # "We had coffee" is a verb of its own; "You did, both" covers both things named; a short
    # question naming one item is enough to tie "I stopped it" to the diary.
    later = talk_about(
        "Did the portfolio reach Marta?",
        "Yes, we had coffee on Tuesday and I sent the portfolio to Marta then.",
        "And I sent you the reading list and the podcast, didn't I?",
        "You did, both, thanks.",
        "And the diary?",
        "I've decided to stop it, it kept me awake.",
    )
    memory = update_memory(memory, summarise_offline(later, coach_labels=("Coach",), memory=memory,
                                                     session_id="s2")[0], "s2", None, later)
    status = {c.what: c.status for c in memory.commitments}
    assert [status[w] for w in status if "portfolio" in w] == ["done"]
    assert [status[w] for w in status if "reading list" in w] == ["done"]
    assert [status[w] for w in status if "podcast" in w] == ["done"]
    assert [status[w] for w in status if "diary" in w] == ["dropped"]
