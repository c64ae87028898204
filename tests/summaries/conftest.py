"""Fixtures for the summary tests: the OpenAI stand-in."""

from __future__ import annotations

import pytest

from tests.openaistub import OpenAIStub


@pytest.fixture
def openai_stub():
    with OpenAIStub() as stub:
        yield stub
