"""The OpenAI client for any OpenAI-compatible server (OpenAI itself, or a self-hosted one).

Only construction lives here; callers pass plain values in and get the `openai.OpenAI` client
out. Nothing here knows about our tables.
"""

from __future__ import annotations


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

