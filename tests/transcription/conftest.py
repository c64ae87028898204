"""Fixtures for the transcription tests: rendered test speech, the OpenAI stand-in."""

from __future__ import annotations

import pytest

from tests.openaistub import OpenAIStub
from tests.speech.generate import generate_session


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """session1 and session2 in two espeak-ng voices (from the committed renderings in
    tests/speech/rendered/): mixed audio, per-speaker tracks, truth."""
    out = tmp_path_factory.mktemp("speech")
    return {name: generate_session(name, out) for name in ("session1", "session2")}


@pytest.fixture
def openai_stub():
    with OpenAIStub() as stub:
        yield stub
