"""Valence of the client's speech over a session (VADER, offline)."""

from __future__ import annotations

from tests.speech.generate import script_segments
from workers.summaries.valence import valence_timeline


def test_valence_follows_the_client_only_and_moves_with_the_words():
    segments = script_segments("session1")
    timeline = valence_timeline(segments, "Client")
    client_lines = [s for s in segments if s.speaker == "Client"]
    assert [t for t, _ in timeline] == [s.start for s in client_lines]
    assert all(-1.0 <= v <= 1.0 for _, v in timeline)
    scores = dict(zip((s.text for s in client_lines), (v for _, v in timeline)))
    lighter = next(v for text, v in scores.items() if text.startswith("Lighter."))
    tight = next(v for text, v in scores.items() if text.startswith("My chest went tight."))
    assert lighter > 0.3 > tight
    assert valence_timeline(segments, "Nobody") == []
