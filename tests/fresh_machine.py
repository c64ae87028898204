"""A pytest plugin that makes every run prove the suite needs no ffmpeg, ffprobe or
redis-server: for the whole run (this process and everything it starts, the demo and workers
included) each name on the PATH is a stand-in that fails loudly, so a test passes only if
nothing it exercises calls them."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

ABSENT = ("ffmpeg", "ffprobe", "redis-server")
_dir_key = pytest.StashKey[str]()

_STAND_IN = """#!/bin/sh
echo "holdspace must not need $(basename "$0"), yet something ran it: $*" >&2
exit 127
"""


def stand_in_dir() -> Path | None:
    """Where the stand-ins of this run live (None outside a test run)."""
    value = os.environ.get("HOLDSPACE_TEST_ABSENT_BIN")
    return Path(value) if value else None


def pytest_configure(config):
    directory = tempfile.mkdtemp(prefix="hs-absent-")
    for name in ABSENT:
        path = Path(directory, name)
        path.write_text(_STAND_IN)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.environ["PATH"] = directory + os.pathsep + os.environ.get("PATH", "")
    os.environ["HOLDSPACE_TEST_ABSENT_BIN"] = directory
    config.stash[_dir_key] = directory


def pytest_unconfigure(config):
    directory = config.stash.get(_dir_key, None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
