"""Fixtures for the transcription tests: rendered test speech, the OpenAI stand-in."""

from __future__ import annotations

import shutil

import pytest

from tests.openaistub import OpenAIStub
from tests.speech.generate import generate_session


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (apt-get install {tool}); the speech tests need it")


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """session1 and session2 read aloud by espeak-ng: mixed audio, per-speaker tracks, truth."""
    _need("espeak-ng")
    _need("ffmpeg")
    out = tmp_path_factory.mktemp("speech")
    return {name: generate_session(name, out) for name in ("session1", "session2")}


@pytest.fixture
def openai_stub():
    with OpenAIStub() as stub:
        yield stub
