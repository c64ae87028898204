"""Who said what: exact labels from per-participant tracks, the platform's names, or a guess.

Order of trust: Zoom's per-participant audio files (each transcribed alone, so every word's
speaker is known), then the names in the platform's transcript, then the heuristic in
`label_speakers_heuristic()`, whose labels carry `speaker_guessed=True`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from workers.transcription import Segment

COACH, CLIENT = "Coach", "Client"

# Phrases coaches use and clients rarely do: reflecting back, inviting, setting homework.
_COACH_CUES = re.compile(
    r"\b(what i'?m hearing|it sounds like|tell me more|how does that|what would|what will you|"
    r"what do you|how would you|for homework|i'?d like you to|i would like you to|"
    r"between now and|let'?s come back|let us come back|on a scale|what else)\b",
    re.I,
)


def merge_tracks(tracks: Iterable[tuple[str, list[Segment]]]) -> list[Segment]:
    """One transcript from per-participant transcripts: each segment labelled by its track.

    Every track must be timed from the same origin (Zoom's participant files start with the
    recording; shift a late joiner's segments by its join offset first).
    """
    merged = []
    for speaker, segments in tracks:
        merged += [dataclasses.replace(s, speaker=speaker, speaker_guessed=False) for s in segments]
    merged.sort(key=lambda s: (s.start, s.end))
    return merged


def names_from_platform(segments: list[Segment], platform: list[Segment]) -> list[Segment]:
    """Give each segment the speaker of the named platform segment it overlaps most in time.

    For a transcript made from mixed audio (better words) when the platform's own transcript
    has the names. A segment overlapping no named platform segment keeps its speaker.
    """
    named = [p for p in platform if p.speaker]
    out = []
    for segment in segments:
        best, best_overlap = None, 0.0
        for p in named:
            overlap = min(segment.end, p.end) - max(segment.start, p.start)
            if overlap > best_overlap:
                best, best_overlap = p, overlap
        out.append(dataclasses.replace(segment, speaker=best.speaker, speaker_guessed=False) if best else segment)
    return out


def _asks(text: str) -> bool:
    return "?" in text or bool(_COACH_CUES.search(text))


def find_coach(segments: list[Segment], coach_name: str | None = None) -> str | None:
    """Which speaker label is the coach: the one that is the coach's name (or first name),
    else the one whose segments most often ask or use a coaching phrase. None without labels."""
    labels = sorted({s.speaker for s in segments if s.speaker})
    if not labels:
        return None
    if coach_name:
        wanted = coach_name.strip().lower()
        named = [l for l in labels if l.strip().lower() == wanted] or \
                [l for l in labels if l.split()[0].lower() == wanted.split()[0]] if wanted else []
        if len(named) == 1:
            return named[0]

    def asking_rate(label: str) -> float:
        theirs = [s for s in segments if s.speaker == label]
        return sum(_asks(s.text) for s in theirs) / len(theirs)

    return max(labels, key=asking_rate)


def label_speakers_heuristic(segments: list[Segment], coach_name: str | None = None,
                             names: tuple[str, str] = (COACH, CLIENT)) -> list[Segment]:
    """Coach/Client labels by a stated guess, each marked `speaker_guessed=True`.

    The heuristic: in coaching the coach asks and the client tells. With unnamed speaker
    labels (e.g. "Speaker 1", "Speaker 2"), the label whose segments most often ask a question
    or use a coaching phrase ("it sounds like", "what would…", "for homework…") is the Coach
    and every other label the Client; a label equal to `coach_name` is the Coach outright.
    With no labels at all, each segment that asks a question or uses a coaching phrase is the
    Coach's and every other segment the Client's. `names`: what to call the two, when the
    coach's and the client's names are known.
    """
    coach_is, client_is = names
    if not any(s.speaker for s in segments):
        return [
            dataclasses.replace(s, speaker=coach_is if _asks(s.text) else client_is, speaker_guessed=True)
            for s in segments
        ]
    coach_label = find_coach(segments, coach_name)
    return [
        dataclasses.replace(
            s,
            speaker=coach_is if s.speaker == coach_label else client_is,
            speaker_guessed=True,
        )
        for s in segments
    ]


def resolve_speakers(
    segments: list[Segment],
    *,
    platform: list[Segment] | None = None,
    coach_name: str | None = None,
    names: tuple[str, str] = (COACH, CLIENT),
) -> list[Segment]:
    """Speakers for segments from mixed audio: the platform's names when it has any, else the guess.

    (With per-participant tracks, use merge_tracks() instead: its labels are exact.)
    """
    if segments and all(s.speaker and not s.speaker_guessed for s in segments):
        return segments
    if platform and any(p.speaker for p in platform):
        return names_from_platform(segments, platform)
    return label_speakers_heuristic(segments, coach_name=coach_name, names=names)


def regroup(words: list[Segment], pause: float = 1.0, longest: float = 30.0) -> list[Segment]:
    """Words (one segment each, labelled) joined back into segments: a new one where the
    speaker changes, where the words stop for `pause` seconds, or at a sentence's end once a
    segment is `longest` seconds long. A word without a speaker takes its neighbour's."""
    known = next((w.speaker for w in words if w.speaker), None)
    out: list[Segment] = []
    for word in words:
        speaker = word.speaker or (out[-1].speaker if out else known)
        last = out[-1] if out else None
        if last and last.speaker == speaker and word.start - last.end < pause \
                and not (last.text.endswith((".", "?", "!")) and last.end - last.start >= longest):
            out[-1] = dataclasses.replace(last, end=max(last.end, word.end), text=f"{last.text} {word.text}")
        else:
            out.append(dataclasses.replace(word, speaker=speaker))
    return out


def _by_runs(words: list[Segment], pause: float = 0.3) -> list[Segment]:
    """Each run of words without a pause between them given the speaker most of it is timed
    under: a platform's cue times are a few tenths of a second off, a turn's words are not."""
    out, run = [], []
    for word in [*words, None]:
        if run and (word is None or word.start - run[-1].end >= pause):
            weight: dict[str, float] = {}
            for w in run:
                if w.speaker:
                    weight[w.speaker] = weight.get(w.speaker, 0.0) + (w.end - w.start) + 1e-3
            if weight:
                chosen = max(sorted(weight), key=weight.get)
                run = [dataclasses.replace(w, speaker=chosen) for w in run]
            out += run
            run = []
        if word is not None:
            run.append(word)
    return out


def attribute(
    words: list[Segment],
    *,
    platform: list[Segment] | None = None,
    voices=None,
    coach_name: str | None = None,
    client_name: str | None = None,
) -> list[Segment]:
    """A transcript of one mixed track, each word given its speaker, joined into segments.

    Trust in order: the names in the platform's own transcript, by time (its words may be
    worse than ours, its turns are right); else two voices told apart in the audio
    (`voices`, from `voices.voice_frames`), the coach among them found by who asks; else the
    question-asking guess per segment. Guessed speakers are called by the coach's and the
    client's names when known, and marked guessed.
    """
    from workers.transcription.voices import two_voices
    names = (coach_name or COACH, client_name or CLIENT)
    if platform and any(p.speaker for p in platform):
        return regroup(_by_runs(names_from_platform(words, platform)))
    if voices is not None:
        return label_speakers_heuristic(regroup(two_voices(words, voices)), coach_name=coach_name, names=names)
    return label_speakers_heuristic(regroup(words), coach_name=coach_name, names=names)
