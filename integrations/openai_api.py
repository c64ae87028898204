"""The OpenAI client for any OpenAI-compatible server (OpenAI itself, or a self-hosted one).

Only construction lives here; callers pass plain values in and get the `openai.OpenAI` client
out. Nothing here knows about our tables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_TRANSCRIBE_MODEL = "whisper-1"
DEFAULT_SUMMARY_MODEL = "gpt-4o-mini"


def is_configured(env: Mapping[str, str] | None = None) -> bool:
    """True when an API key or a base URL is set (a self-hosted server may need no key)."""
    env = os.environ if env is None else env
    return bool(env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"))


def make_client(
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    max_retries: int = 4,
    timeout: float = 600.0,
):
    """An `openai.OpenAI` client. Retries (429, 5xx, timeouts) back off exponentially inside
    the openai package and honour the server's Retry-After; `max_retries` bounds them."""
    import openai

    return openai.OpenAI(
        base_url=base_url or None,
        # A self-hosted server may take no key, but the client insists on one.
        api_key=api_key or "unused",
        max_retries=max_retries,
        timeout=timeout,
    )


def client_from_env(env: Mapping[str, str] | None = None, **kwargs):
    """make_client() from OPENAI_BASE_URL and OPENAI_API_KEY."""
    env = os.environ if env is None else env
    return make_client(base_url=env.get("OPENAI_BASE_URL"), api_key=env.get("OPENAI_API_KEY"), **kwargs)
