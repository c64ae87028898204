"""Summary engines: a session's transcript into a two-tier summary, and the client's memory.

`schema` holds the one summary schema and the citation check, `offline` the deterministic
engine, `openai_engine` the structured-output one, `memory` what carries between sessions.
Pure code: plain values in and out, no database.
"""

from __future__ import annotations

from config import SUMMARY_ENGINES as SETTINGS


def choose_summary_engine(setting: str | None, *, openai_configured: bool) -> str:
    """"openai" or "offline" for SUMMARY_ENGINE (`setting`).

    auto: the OpenAI-compatible server when one is configured, else offline. openai without
    a configured server is a ValueError: falling back silently would hide a broken deployment.
    """
    choice = (setting or "auto").strip().lower()
    if choice not in SETTINGS:
        raise ValueError(f"SUMMARY_ENGINE must be one of {', '.join(SETTINGS)}, not {setting!r}")
    if choice == "auto":
        return "openai" if openai_configured else "offline"
    if choice == "openai" and not openai_configured:
        raise ValueError("SUMMARY_ENGINE=openai needs OPENAI_API_KEY or OPENAI_BASE_URL")
    return choice
