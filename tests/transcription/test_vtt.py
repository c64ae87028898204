"""Platform transcripts: Zoom's VTT files and Meet's transcript entries into segments."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from workers.transcription import Segment, TranscriptFormatError
from workers.transcription.vtt import parse_meet_entries, parse_vtt, to_vtt

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zoom" / "vtt"


def read(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8")


def test_named_zoom_vtt_gives_speakers_times_and_text():
    segments = parse_vtt(read("named.vtt"))
    assert [s.speaker for s in segments] == ["Maya Lopez", "Daniel Okafor", "Maya Lopez", "Daniel Okafor", "Maya Lopez"]
    assert segments[0].start == pytest.approx(1.02) and segments[0].end == pytest.approx(4.65)
    assert segments[4].start == pytest.approx(62.0)
    # A colon later in the text is text, and a cue's second line joins its first.
    assert segments[1].text == (
        "I want to talk about my confidence at work. Note: my manager asked me to lead the quarterly review."
    )
    assert not any(s.speaker_guessed for s in segments)


def test_crlf_bom_and_names_with_punctuation():
    segments = parse_vtt((FIXTURES / "named_crlf_bom.vtt").read_bytes())
    assert [(s.speaker, s.text) for s in segments] == [
        ("Dr. Ana Ruiz (she/her)", "Welcome back."),
        ("Sam", "Thanks, it has been a week."),
    ]


def test_unnamed_vtt_keeps_whole_text_and_no_speaker():
    segments = parse_vtt(read("unnamed.vtt"))
    assert len(segments) == 4
    assert all(s.speaker is None for s in segments)
    assert segments[1].text == "Honestly? Here is the thing: I said yes to everything again."


@pytest.mark.parametrize(
    "name, says",
    [
        ("malformed_timing.vtt", "line 8: unreadable cue timing"),
        ("malformed_missing_timing.vtt", "line 7: no timing line ('start --> end') for the cue 'Daniel Okafor"),
        ("malformed_backwards.vtt", "ends (4.000s) before it starts (9.000s)"),
        ("malformed_no_header.vtt", "first line must be 'WEBVTT'"),
        ("malformed_missing_blank_line.vtt", "a blank line is missing"),
    ],
)
def test_malformed_vtt_is_a_clear_error(name, says):
    with pytest.raises(TranscriptFormatError) as error:
        parse_vtt(read(name))
    assert says in str(error.value)


@pytest.mark.parametrize("junk", [b"\xff\xfe\x00W", b"", "", "WEBVTT\n\n-->", 42, None])
def test_junk_is_a_clear_error(junk):
    with pytest.raises(TranscriptFormatError):
        parse_vtt(junk)


def test_mangled_files_never_crash_with_another_exception():
    # Random damage to a good file: each result is segments or TranscriptFormatError, nothing else.
    rng = random.Random(7)
    good = read("named.vtt")
    alphabet = "\n :->.0123456789WEBVTTabc<>&"
    for _ in range(400):
        text = list(good)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(text))
            action = rng.random()
            if action < 0.4:
                del text[i]
            elif action < 0.8:
                text.insert(i, rng.choice(alphabet))
            else:
                text = text[:i]
                break
        try:
            segments = parse_vtt("".join(text))
        except TranscriptFormatError:
            continue
        assert all(isinstance(s, Segment) and s.end >= s.start for s in segments)


def test_to_vtt_round_trips_and_escapes():
    segments = [
        Segment(0.0, 2.5, "Fish & chips <b>now</b> --> later", "Maya Lopez"),
        Segment(3.0, 3661.25, "An hour later.", None),
        Segment(3662.0, 3663.0, "Guessed.", "Coach", speaker_guessed=True),
    ]
    text = to_vtt(segments)
    assert text.startswith("WEBVTT\n")
    assert "00:00:03.000 --> 01:01:01.250" in text
    assert "&lt;b&gt;" in text and "-->" not in text.split("\n", 6)[5]
    back = parse_vtt(text)
    assert [(s.start, s.end, s.speaker, s.text) for s in back] == [
        (0.0, 2.5, "Maya Lopez", "Fish & chips <b>now</b> -> later"),
        (3.0, 3661.25, None, "An hour later."),
        (3662.0, 3663.0, "Coach", "Guessed."),
    ]


MEET_START = "2026-03-02T15:00:00Z"
PARTICIPANTS = {
    "conferenceRecords/abc/participants/111": "Maya Lopez",
    "conferenceRecords/abc/participants/222": "Daniel Okafor",
}


def test_meet_entries_are_timed_from_the_conference_start():
    entries = [
        {"name": "conferenceRecords/abc/transcripts/t/entries/2", "participant": "conferenceRecords/abc/participants/222",
         "text": "I will send the proposal by Friday.", "languageCode": "en-US",
         "startTime": "2026-03-02T15:00:07.123456789Z", "endTime": "2026-03-02T15:00:10.5Z"},
        {"name": "conferenceRecords/abc/transcripts/t/entries/1", "participant": "conferenceRecords/abc/participants/111",
         "text": "What is the next step?", "languageCode": "en-US",
         "startTime": "2026-03-02T16:00:03+01:00", "endTime": "2026-03-02T15:00:06Z"},
        {"participant": "conferenceRecords/abc/participants/999", "text": "Hello from someone unnamed.",
         "startTime": "2026-03-02T15:00:11Z", "endTime": "2026-03-02T15:00:12Z"},
    ]
    segments = parse_meet_entries(entries, PARTICIPANTS, MEET_START)
    assert [(s.start, s.end, s.speaker) for s in segments] == [
        (3.0, 6.0, "Maya Lopez"),
        (7.123, 10.5, "Daniel Okafor"),
        (11.0, 12.0, None),
    ]


@pytest.mark.parametrize(
    "entry, says",
    [
        ({"participant": "p", "startTime": MEET_START, "endTime": MEET_START}, "missing 'text'"),
        ({"participant": "p", "text": "hi", "endTime": MEET_START}, "missing 'startTime'"),
        ({"participant": "p", "text": "hi", "startTime": "yesterday", "endTime": MEET_START}, "not an RFC 3339 time"),
        ({"participant": "p", "text": "hi", "startTime": "2026-03-02T15:00:00", "endTime": MEET_START}, "no time zone"),
        ({"participant": "p", "text": "hi", "startTime": "2026-03-02T15:00:05Z", "endTime": "2026-03-02T15:00:01Z"}, "ends before"),
        ("not an object", "expected an object"),
    ],
)
def test_bad_meet_entries_are_clear_errors(entry, says):
    with pytest.raises(TranscriptFormatError) as error:
        parse_meet_entries([entry], PARTICIPANTS, MEET_START)
    assert says in str(error.value) and "entry 0" in str(error.value)
