"""Platform transcripts in, WebVTT out: Zoom's VTT files, Google Meet's transcript entries.

Every way a platform transcript can be wrong ends in `TranscriptFormatError` with the line or
entry at fault, so the caller can fall back to transcribing the audio instead of failing.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

from workers.transcription import Segment, TranscriptFormatError

_TIMESTAMP = r"(?:(\d+):)?([0-5]\d):([0-5]\d)[.,](\d{3})"
_TIMING = re.compile(rf"^\s*{_TIMESTAMP}\s+-->\s+{_TIMESTAMP}(?:\s+.*)?$")
_LOOKS_LIKE_TIMING = re.compile(r"^\s*\d+:\d+\S*\s*-")  # a timing line gone wrong
# A Zoom cue reads "Jane Doe: what she said". A speaker prefix is short and has no sentence
# punctuation, so "So here's the thing: ..." in an unnamed file is rarely taken for a name,
# and the file-level vote in parse_vtt() settles the rest.
_SPEAKER_PREFIX = re.compile(r"^([^:?!\n]{1,60}?):\s+(\S.*)$", re.S)
_VOICE_SPAN = re.compile(r"^<v(?:\.[^\s>]*)?\s+([^>]+)>(.*?)(?:</v>)?$", re.S)
_TAG = re.compile(r"</?[^>]*>")


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _clean_cue_text(text: str) -> str:
    # Cue text may carry WebVTT markup (<i>, <c.color>, timestamps) and entities (&amp;).
    return html.unescape(_TAG.sub("", text)).strip()


def _speaker_candidate(text: str) -> tuple[str, str] | None:
    voice = _VOICE_SPAN.match(text)
    if voice:
        return voice.group(1).strip(), voice.group(2)
    match = _SPEAKER_PREFIX.match(text)
    if not match:
        return None
    name = match.group(1).strip()
    if len(name.split()) > 6 or not name[0].isalpha():
        return None
    return name, match.group(2)


def parse_vtt(text: str | bytes) -> list[Segment]:
    """Zoom's (or any) WebVTT transcript as segments in time order.

    Speaker names come from `Name: text` prefixes (Zoom) or `<v Name>` spans (WebVTT voices).
    A file is read as named when at least half its cues carry a prefix; otherwise every cue's
    text is kept whole and `speaker` is None. Raises TranscriptFormatError for anything that is
    not a well-formed WebVTT file: missing header, a cue without a timing line, an unreadable
    or backwards timing.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TranscriptFormatError(f"transcript is not UTF-8 text: {exc}") from None
    if not isinstance(text, str):
        raise TranscriptFormatError(f"transcript must be text, not {type(text).__name__}")
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not lines or not re.match(r"^WEBVTT(?:[ \t].*)?$", lines[0]):
        raise TranscriptFormatError("not a WebVTT file: the first line must be 'WEBVTT'")

    # Blocks are separated by blank lines; remember each block's first line number for errors.
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    for number, line in enumerate(lines[1:], start=2):
        if line.strip():
            if not current:
                blocks.append((number, current))
            current.append(line)
        else:
            current = []
    if blocks and blocks[0][0] == 2:
        # Header continuation lines ("Kind: captions") belong to the header block.
        blocks = blocks[1:] if not any("-->" in line for line in blocks[0][1]) else blocks

    cues: list[tuple[float, float, str]] = []
    for number, block in blocks:
        first = block[0].strip()
        if first.startswith(("NOTE", "STYLE", "REGION")) and "-->" not in first:
            continue
        timing_index = 0 if "-->" in block[0] else 1
        if timing_index >= len(block) or "-->" not in block[timing_index]:
            for offset, line in enumerate(block[:2]):
                if _LOOKS_LIKE_TIMING.match(line):
                    raise TranscriptFormatError(
                        f"line {number + offset}: unreadable cue timing {line.strip()[:60]!r}"
                    )
            raise TranscriptFormatError(
                f"line {number}: no timing line ('start --> end') for the cue {block[-1].strip()[:40]!r}"
            )
        timing_line = block[timing_index]
        match = _TIMING.match(timing_line)
        if not match:
            raise TranscriptFormatError(
                f"line {number + timing_index}: unreadable cue timing {timing_line.strip()[:60]!r}"
            )
        start = _seconds(*match.groups()[0:4])
        end = _seconds(*match.groups()[4:8])
        if end < start:
            raise TranscriptFormatError(
                f"line {number + timing_index}: cue ends ({end:.3f}s) before it starts ({start:.3f}s)"
            )
        body = "\n".join(block[timing_index + 1 :]).strip()
        if any("-->" in line for line in block[timing_index + 1 :]):
            raise TranscriptFormatError(
                f"line {number + timing_index + 1}: a timing line inside cue text "
                "(a blank line is missing between cues)"
            )
        if body:
            cues.append((start, end, body))

    candidates = [_speaker_candidate(body) for _, _, body in cues]
    named = sum(1 for c in candidates if c) * 2 >= len(cues) > 0
    segments = []
    for (start, end, body), candidate in zip(cues, candidates):
        speaker = None
        if named and candidate:
            speaker, body = candidate
        words = _clean_cue_text(" ".join(body.split()))
        if words:
            segments.append(Segment(start, end, words, _clean_cue_text(speaker) if speaker else None))
    segments.sort(key=lambda s: (s.start, s.end))
    return segments


def _timestamp(seconds: float) -> str:
    millis = int(round(max(0.0, seconds) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _escape(text: str) -> str:
    # Cue text must not hold a blank line or "-->", and &, < must be entities.
    text = " ".join(text.split()).replace("-->", "->")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(segments: Iterable[Segment]) -> str:
    """Segments as a WebVTT file in Zoom's style (`Name: text`), which parse_vtt reads back."""
    out = ["WEBVTT", ""]
    for number, segment in enumerate(segments, start=1):
        text = _escape(segment.text)
        if not text:
            continue
        if segment.speaker:
            text = f"{_escape(segment.speaker).replace(':', '')}: {text}"
        end = max(segment.end, segment.start)
        out += [str(number), f"{_timestamp(segment.start)} --> {_timestamp(end)}", text, ""]
    return "\n".join(out)


def _rfc3339(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        # Google writes up to nanoseconds and a trailing Z; fromisoformat takes microseconds.
        cleaned = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
        try:
            moment = dt.datetime.fromisoformat(cleaned)
        except ValueError:
            raise TranscriptFormatError(f"{where}: not an RFC 3339 time: {value!r}") from None
    else:
        raise TranscriptFormatError(f"{where}: expected an RFC 3339 time, got {value!r}")
    if moment.tzinfo is None:
        raise TranscriptFormatError(f"{where}: time {value!r} has no time zone")
    return moment


def parse_meet_entries(
    entries: Iterable[Mapping[str, Any]],
    participants: Mapping[str, str],
    conference_start: dt.datetime | str,
) -> list[Segment]:
    """Google Meet transcript entries as segments, in seconds from `conference_start`.

    `entries` are the API's TranscriptEntry objects (`participant`, `text`, `startTime`,
    `endTime`); `participants` maps a participant's resource name to its display name. An entry
    from a participant we have no name for keeps `speaker=None`.
    """
    origin = _rfc3339(conference_start, "conference start")
    segments = []
    for index, entry in enumerate(entries):
        where = f"entry {index}"
        if not isinstance(entry, Mapping):
            raise TranscriptFormatError(f"{where}: expected an object, got {type(entry).__name__}")
        text = entry.get("text")
        if text is None or not isinstance(text, str):
            raise TranscriptFormatError(f"{where}: missing 'text'")
        if "startTime" not in entry or "endTime" not in entry:
            raise TranscriptFormatError(f"{where}: missing 'startTime' or 'endTime'")
        start = (_rfc3339(entry["startTime"], where) - origin).total_seconds()
        end = (_rfc3339(entry["endTime"], where) - origin).total_seconds()
        if end < start:
            raise TranscriptFormatError(f"{where}: ends before it starts")
        if start < 0:
            raise TranscriptFormatError(f"{where}: starts before the conference started")
        participant = entry.get("participant")
        speaker = participants.get(participant) if isinstance(participant, str) else None
        words = " ".join(text.split())
        if words:
            segments.append(Segment(round(start, 3), round(end, 3), words, speaker))
    segments.sort(key=lambda s: (s.start, s.end))
    return segments
