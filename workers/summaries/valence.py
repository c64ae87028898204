"""How the client's words felt, segment by segment: VADER valence over the session.

VADER is a lexicon and rules shipped inside the vaderSentiment package: no model download,
deterministic. It reads English words, not tone of voice, so a timeline is a hint for the
coach (where the session lifted or sank), never a verdict.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from workers.transcription import Segment


@functools.lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()  # reads its lexicon once per process


def valence_timeline(segments: Sequence[Segment], speaker: str) -> list[tuple[float, float]]:
    """(start seconds, compound valence from -1 to 1) for each of `speaker`'s segments."""
    analyzer = _analyzer()
    return [
        (segment.start, analyzer.polarity_scores(segment.text)["compound"])
        for segment in segments
        if segment.speaker == speaker and segment.text.strip()
    ]
