"""Each word of one mixed track gets its speaker: by the platform transcript's times, else by voice."""

from __future__ import annotations

import dataclasses
import random

import pytest

from workers.transcription import Segment
from workers.transcription.audio import blocks_of
from workers.transcription.local import LocalWhisper
from workers.transcription.speakers import attribute, regroup
from workers.transcription.voices import two_voices, voice_frames


@pytest.fixture(scope="module")
def heard(speech):
    """session2's mixed track heard word by word, with its truth and its voice frames."""
    session = speech["session2"]
    words = LocalWhisper().transcribe(str(session.mixed), per_word=True).segments
    return session, words, voice_frames(blocks_of(str(session.mixed)))


def _truth(session, word: Segment) -> str:
    middle = (word.start + word.end) / 2
    return min(session.segments, key=lambda line: 0 if line.start <= middle <= line.end
               else min(abs(line.start - middle), abs(line.end - middle))).speaker


def _share_right(session, segments, as_truth: dict[str, str]) -> float:
    """The share of words (by the words of each segment) whose speaker is right."""
    right = total = 0
    for segment in segments:
        n = len(segment.text.split())
        middle = Segment(segment.start, segment.end, "")
        # Judge a joined segment word by word: spread its words evenly over its time.
        for k in range(n):
            t = segment.start + (segment.end - segment.start) * (k + 0.5) / n
            middle.start = middle.end = t
            right += as_truth.get(segment.speaker) == _truth(session, middle)
            total += 1
    return right / total


def test_words_are_one_segment_each(heard):
    _, words, _ = heard
    assert len(words) > 150 and all(len(w.text.split()) == 1 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)


def test_two_voices_in_one_mixed_track_are_told_apart_word_by_word(heard):
    session, words, frames = heard
    segments = attribute(words, voices=frames, coach_name="Maya Lopez", client_name="Daniel Okafor")
    assert {s.speaker for s in segments} == {"Maya Lopez", "Daniel Okafor"}
    assert all(s.speaker_guessed for s in segments)
    share = _share_right(session, segments, {"Maya Lopez": "Coach", "Daniel Okafor": "Client"})
    print(f"\nwords whose speaker is right, from the voices alone: {share:.1%}")
    assert share >= 0.95
    # Turns come back as turns, not one segment per word.
    assert len(segments) < len(session.segments) * 2


def test_one_voice_stays_one_speaker(speech):
    track = speech["session2"].tracks["Client"]
    words = LocalWhisper().transcribe(str(track), per_word=True).segments
    labelled = two_voices(words, voice_frames(blocks_of(str(track))))
    assert len({w.speaker for w in labelled}) == 1


def test_the_platform_transcript_names_every_word_by_its_time(heard):
    session, words, _ = heard
    rng = random.Random(7)
    # Zoom's cues: its own (worse) words, timed a little off, with the speakers' names.
    names = {"Coach": "Maya Lopez", "Client": "Daniel Okafor"}
    cues = [Segment(max(0.0, line.start + rng.uniform(-0.3, 0.3)), line.end + rng.uniform(-0.3, 0.3),
                    " ".join(w for w in line.text.split() if rng.random() > 0.2), names[line.speaker])
            for line in session.segments]
    segments = attribute(words, platform=cues, voices=None)
    assert not any(s.speaker_guessed for s in segments)
    share = _share_right(session, segments, {v: k for k, v in names.items()})
    print(f"\nwords whose speaker is right, from the platform's cues: {share:.1%}")
    assert share >= 0.97
    # The words are ours, not the platform's.
    assert " ".join(s.text for s in segments) == " ".join(w.text for w in words)


def test_regroup_joins_a_speakers_words_and_cuts_at_turns_and_pauses():
    words = [Segment(0.0, 0.4, "How", "A"), Segment(0.5, 0.9, "are", "A"), Segment(1.0, 1.3, "you?", "A"),
             Segment(1.5, 1.9, "Fine.", "B"), Segment(4.0, 4.5, "Really", None), Segment(4.6, 5.0, "fine.", "B")]
    out = regroup(words)
    assert [(s.speaker, s.text, s.start, s.end) for s in out] == [
        ("A", "How are you?", 0.0, 1.3), ("B", "Fine.", 1.5, 1.9), ("B", "Really fine.", 4.0, 5.0)]
    # Unlabelled words at the start take the first speaker heard.
    first = regroup([dataclasses.replace(words[0], speaker=None), *words[1:3]])
    assert [s.speaker for s in first] == ["A"]
