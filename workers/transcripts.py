"""Transcript rows in the shapes people use: WebVTT, plain text, and search passages."""

from __future__ import annotations


def _clock(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def segments_as_vtt(segments: list[dict]) -> str:
    from workers.transcription import Segment
    from workers.transcription.vtt import to_vtt
    return to_vtt([Segment.from_dict(s) for s in segments])


def segments_as_text(segments: list[dict]) -> str:
    lines = []
    for s in segments:
        who = f"{s['speaker']}: " if s.get("speaker") else ""
        lines.append(f"[{_clock(s['start'])}] {who}{s['text'].strip()}")
    return "\n".join(lines) + "\n"


def passages(segments: list[dict], seconds: float = 30.0) -> list[tuple[float, float, str]]:
    """Group consecutive segments into passages of about `seconds` for full-text search."""
    out, start, end, texts = [], None, None, []
    for s in segments:
        if start is None:
            start = s["start"]
        texts.append(s["text"].strip())
        end = s["end"]
        if end - start >= seconds:
            out.append((start, end, " ".join(texts)))
            start, texts = None, []
    if texts:
        out.append((start, end, " ".join(texts)))
    return out
