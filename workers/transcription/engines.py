"""Which transcription engine a session gets, from plain values the caller already has."""

from __future__ import annotations

from config import TRANSCRIBE_ENGINES as SETTINGS

ENGINES = tuple(e for e in SETTINGS if e != "auto")


def choose_engine(
    setting: str | None,
    *,
    openai_configured: bool,
    platform_transcript_available: bool,
    platform_allowed: bool,
) -> str:
    """"platform", "local" or "openai" for a session, given TRANSCRIBE_ENGINE (`setting`).

    auto: the platform's transcript when there is one and the coach allows it (no audio
    leaves holdspace, and it carries the speakers' names); else the OpenAI-compatible server
    when one is configured; else local Whisper.
    platform: the platform's transcript, falling back to local Whisper when there is none or
    the coach does not allow it (a session is never left without a transcript, and audio
    never goes to a third party nobody configured).
    openai: the configured server; ValueError when none is configured, since silently
    transcribing elsewhere would hide a broken deployment.
    local: local Whisper.
    """
    choice = (setting or "auto").strip().lower()
    if choice not in SETTINGS:
        raise ValueError(f"TRANSCRIBE_ENGINE must be one of {', '.join(SETTINGS)}, not {setting!r}")
    platform_usable = platform_transcript_available and platform_allowed
    if choice == "auto":
        if platform_usable:
            return "platform"
        return "openai" if openai_configured else "local"
    if choice == "platform":
        return "platform" if platform_usable else "local"
    if choice == "openai" and not openai_configured:
        raise ValueError("TRANSCRIBE_ENGINE=openai needs OPENAI_API_KEY or OPENAI_BASE_URL")
    return choice
