"""Whisper segments cut at pauses, so per-participant tracks merge in the order people spoke,
and the names a job hands Whisper."""

from __future__ import annotations

from types import SimpleNamespace as Piece

from workers.transcription.local import echoes_prompt, split_at_pauses, vocabulary_prompt
from workers.transcription.speakers import merge_tracks


def word(text, start, end):
    return Piece(word=text, start=start, end=end)


def test_a_segment_spanning_the_other_persons_turn_is_cut_and_merges_in_order():
    # The client's track: Whisper joined "I'll send the" and, after the coach spoke for
    # six seconds, "report by Friday." into one segment.
    client = Piece(start=0.0, end=10.0, text=" I'll send the report by Friday.", words=[
        word(" I'll", 0.0, 0.4), word(" send", 0.4, 0.8), word(" the", 0.8, 1.0),
        word(" report", 7.5, 8.0), word(" by", 8.0, 8.2), word(" Friday.", 8.2, 8.8)])
    coach = Piece(start=2.0, end=6.5, text=" Which report?", words=[word(" Which", 2.0, 2.5), word(" report?", 2.5, 6.5)])
    client_segments = split_at_pauses(client, 1.0)
    assert [(s.start, s.end, s.text) for s in client_segments] == [
        (0.0, 1.0, "I'll send the"), (7.5, 8.8, "report by Friday.")]
    merged = merge_tracks([("Robin", client_segments), ("Casey", split_at_pauses(coach, 1.0))])
    assert [s.speaker for s in merged] == ["Robin", "Casey", "Robin"]


def test_a_segment_without_words_is_kept_whole():
    piece = Piece(start=1.0, end=2.0, text=" Hello there. ", words=None)
    assert [(s.start, s.text) for s in split_at_pauses(piece, 1.0)] == [(1.0, "Hello there.")]


def test_the_vocabulary_names_each_word_once():
    assert vocabulary_prompt(["Casey Lee", "Robin Ames", "Priya", "priya"], ["promotion case"]) == \
        "Casey Lee, Robin Ames, Priya, promotion case"
    assert vocabulary_prompt([], []) is None


def test_a_segment_that_only_repeats_the_given_names_is_an_echo_not_speech():
    vocabulary = vocabulary_prompt(["Hazel Pemberton", "Joaquin Ibarra"], ["Leeds"])
    assert echoes_prompt("Ibarra, Joaquin Ibarra, Joaquin Hazel Pemberton, Joaquin Ibarra", vocabulary)
    # Speech that uses the names is speech.
    assert not echoes_prompt("Hello Joaquin, lovely to meet you. How are you finding Leeds?", vocabulary)
    assert not echoes_prompt("Joaquin Ibarra.", vocabulary)  # too short to tell
    assert not echoes_prompt("Ibarra, Joaquin Ibarra, Joaquin", None)


def test_a_chunk_whose_transcript_echoes_the_names_is_heard_again_without_them():
    import numpy as np

    from workers.transcription.local import LocalWhisper

    class Model:  # stands in for faster-whisper's model: primed, it loops on the names
        def __init__(self):
            self.hotwords = []

        def transcribe(self, samples, *, hotwords=None, **options):
            self.hotwords.append(hotwords)
            text = " Joaquin Ibarra, Joaquin Ibarra, Joaquin Ibarra." if hotwords else " I will practise on Sunday."
            return iter([Piece(start=0.0, end=2.0, text=text, words=None)]), Piece(language="en")

    model = Model()
    vocabulary = vocabulary_prompt(["Hazel Pemberton", "Joaquin Ibarra"], [])
    segments, _ = LocalWhisper()._transcribe_samples(model, np.zeros(16000, np.float32), "en", vocabulary, 1.0)
    assert [s.text for s in segments] == ["I will practise on Sunday."]
    assert model.hotwords == [vocabulary, None]
