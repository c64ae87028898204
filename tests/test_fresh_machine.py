"""What a fresh machine lacks, the suite does without: during every run ffmpeg, ffprobe and
redis-server on the PATH are stand-ins that fail (tests/fresh_machine.py), so the demo test,
the pipeline tests and the transcription tests passing shows none of them is needed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fresh_machine import ABSENT, stand_in_dir


@pytest.mark.parametrize("name", ABSENT)
def test_each_binary_a_fresh_machine_lacks_is_a_failing_stand_in(name):
    found = shutil.which(name)
    assert found is not None and stand_in_dir() is not None
    assert found == str(stand_in_dir() / name)
    run = subprocess.run([name, "-version"], capture_output=True, text=True)
    assert run.returncode == 127 and "must not need" in run.stderr


def test_the_test_redis_is_the_bundled_one(redis_server):
    from tests.services import redis_executable
    assert stand_in_dir() not in Path(redis_executable()).parents
    assert redis_server.proc is not None and redis_server.proc.poll() is None
