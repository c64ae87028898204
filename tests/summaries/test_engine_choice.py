"""Which summary engine runs, and what counts as an OpenAI-compatible server being configured."""

from __future__ import annotations

import pytest

from config import Settings
from integrations.openai_api import make_client
from workers.summaries import choose_summary_engine


@pytest.mark.parametrize(
    "setting, configured, engine",
    [("auto", True, "openai"), ("auto", False, "offline"), (None, False, "offline"),
     ("offline", True, "offline"), ("OpenAI", True, "openai")],
)
def test_choose_summary_engine(setting, configured, engine):
    assert choose_summary_engine(setting, openai_configured=configured) == engine


def test_choose_summary_engine_refuses_what_cannot_work():
    with pytest.raises(ValueError, match="needs OPENAI_API_KEY"):
        choose_summary_engine("openai", openai_configured=False)
    with pytest.raises(ValueError, match="must be one of"):
        choose_summary_engine("gpt", openai_configured=True)


def test_configured_by_key_or_by_base_url(tmp_path):
    def settings(**env):
        return Settings.from_env({"HOLDSPACE_VAR_DIR": str(tmp_path), **env})
    assert not settings().openai_configured
    assert settings(OPENAI_API_KEY="sk-x").openai_configured
    assert settings(OPENAI_BASE_URL="http://127.0.0.1:8000/v1").openai_configured  # a keyless local server
    client = make_client(base_url="http://127.0.0.1:8000/v1", max_retries=3)
    assert str(client.base_url).startswith("http://127.0.0.1:8000/v1") and client.max_retries == 3
