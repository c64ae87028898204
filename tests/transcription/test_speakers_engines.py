"""Who said what, and which engine a session gets."""

from __future__ import annotations

import pytest

from tests.speech.generate import script_segments
from workers.transcription import Segment
from workers.transcription.engines import choose_engine
from workers.transcription.speakers import (
    label_speakers_heuristic,
    merge_tracks,
    names_from_platform,
    resolve_speakers,
)


def test_merge_tracks_labels_each_track_and_orders_by_time():
    merged = merge_tracks([
        ("Maya Lopez", [Segment(0.0, 2.0, "How was your week?"), Segment(9.0, 10.0, "Say more.")]),
        ("Daniel Okafor", [Segment(2.5, 8.0, "Busy, but good.")]),
    ])
    assert [(s.start, s.speaker) for s in merged] == [(0.0, "Maya Lopez"), (2.5, "Daniel Okafor"), (9.0, "Maya Lopez")]
    assert not any(s.speaker_guessed for s in merged)


def test_platform_names_go_to_the_segments_they_overlap():
    heard = [Segment(0.0, 2.1, "How was your week?"), Segment(2.4, 8.0, "Busy but good."), Segment(20.0, 21.0, "Hm.")]
    platform = [Segment(0.0, 2.0, "how was your week", "Maya Lopez"), Segment(2.0, 8.5, "busy but good", "Daniel Okafor")]
    named = names_from_platform(heard, platform)
    assert [s.speaker for s in named] == ["Maya Lopez", "Daniel Okafor", None]
    assert resolve_speakers(heard, platform=platform)[1].speaker == "Daniel Okafor"


def test_heuristic_on_unlabelled_speech_is_a_marked_guess():
    truth = script_segments("session1") + script_segments("session2")
    unlabelled = [Segment(s.start, s.end, s.text) for s in truth]
    guessed = label_speakers_heuristic(unlabelled)
    assert all(s.speaker_guessed for s in guessed)
    accuracy = sum(g.speaker == t.speaker for g, t in zip(guessed, truth)) / len(truth)
    print(f"\nCoach/Client heuristic on unlabelled script lines: {accuracy:.0%} right")
    assert accuracy >= 0.75


def test_heuristic_finds_the_coach_among_anonymous_labels():
    truth = script_segments("session1")
    anonymous = [Segment(s.start, s.end, s.text, {"Coach": "Speaker 2", "Client": "Speaker 1"}[s.speaker]) for s in truth]
    guessed = label_speakers_heuristic(anonymous)
    assert [g.speaker for g in guessed] == [t.speaker for t in truth]
    assert all(g.speaker_guessed for g in guessed)
    # A label that is the coach's name settles it, whatever the questions say.
    named = label_speakers_heuristic(anonymous, coach_name="speaker 1")
    assert named[0].speaker == "Client" and named[1].speaker == "Coach"


def test_known_speakers_are_left_alone():
    exact = merge_tracks([("Maya", [Segment(0, 1, "Hello?")])])
    assert resolve_speakers(exact) == exact


@pytest.mark.parametrize(
    "setting, openai, platform, allowed, engine",
    [
        ("auto", False, True, True, "platform"),
        ("auto", True, True, True, "platform"),
        ("auto", True, True, False, "openai"),
        ("auto", True, False, True, "openai"),
        ("auto", False, False, True, "local"),
        ("auto", False, True, False, "local"),
        (None, False, False, False, "local"),
        ("platform", False, True, True, "platform"),
        ("platform", True, False, True, "local"),
        ("platform", True, True, False, "local"),
        ("local", True, True, True, "local"),
        (" OpenAI ", True, True, True, "openai"),
    ],
)
def test_choose_engine(setting, openai, platform, allowed, engine):
    assert choose_engine(
        setting, openai_configured=openai, platform_transcript_available=platform, platform_allowed=allowed
    ) == engine


def test_choose_engine_refuses_what_cannot_work():
    with pytest.raises(ValueError, match="needs OPENAI_API_KEY"):
        choose_engine("openai", openai_configured=False, platform_transcript_available=True, platform_allowed=True)
    with pytest.raises(ValueError, match="must be one of"):
        choose_engine("whisperx", openai_configured=True, platform_transcript_available=True, platform_allowed=True)
