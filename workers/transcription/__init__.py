"""Transcription engines: turn a session's audio (or the platform's transcript) into timed segments.

Pure code: no database, no Flask. The pieces are `vtt` (platform transcripts and WebVTT output),
`audio` (PyAV decoding in memory, chunks cut at silences, stitching), `local` (faster-whisper),
`openai_engine` (OpenAI-compatible servers), `speakers` (who said what) and `engines`
(which engine to use). This module holds the values they share.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class TranscriptFormatError(ValueError):
    """A platform transcript we cannot read; the message says where and why."""


@dataclasses.dataclass
class Segment:
    """One stretch of speech: seconds from the start of the recording, the words, who spoke."""

    start: float
    end: float
    text: str
    speaker: str | None = None
    # True when `speaker` is our heuristic's guess rather than a name from the platform or a
    # per-participant track, so the UI can say so.
    speaker_guessed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        return cls(
            start=float(data["start"]),
            end=float(data["end"]),
            text=str(data["text"]),
            speaker=data.get("speaker"),
            speaker_guessed=bool(data.get("speaker_guessed", False)),
        )


@dataclasses.dataclass
class TranscriptResult:
    """What every engine returns: the segments in time order, the engine's name, the language."""

    segments: list[Segment]
    engine: str
    language: str | None = None

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "segments": [s.to_dict() for s in self.segments],
            "engine": self.engine,
            "language": self.language,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscriptResult:
        return cls(
            segments=[Segment.from_dict(s) for s in data["segments"]],
            engine=str(data["engine"]),
            language=data.get("language"),
        )


__all__ = ["Segment", "TranscriptFormatError", "TranscriptResult"]
