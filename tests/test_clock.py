"""No test may depend on today's date: the tests of what runs on the clock (the scheduled jobs,
client links that expire) pass with the whole run's clock a year ahead and a year back. A date
written into one of them where it should come from the clock fails here."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLOCK_SHIFT_ENV

ROOT = Path(__file__).resolve().parents[1]

# The scheduler's jobs (the inbox sweeper, the Zoom sweep, retention, briefings, the Google
# subscription keeper) and client links that expire or are refreshed.
CLOCK_SENSITIVE = [
    "tests/test_cron.py",
    "tests/test_retention_and_briefings.py",
    "tests/test_meet.py",
    "tests/test_portal.py",
]


@pytest.mark.skipif(bool(os.environ.get(CLOCK_SHIFT_ENV)),
                    reason="the run is on a moved clock already; its own results are the check")
@pytest.mark.parametrize("days", [365, -365])
def test_clock_sensitive_tests_pass_a_year_either_way(days):
    env = {**os.environ, CLOCK_SHIFT_ENV: str(days)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *CLOCK_SENSITIVE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"with the clock moved {days:+d} days:\n{run.stdout[-6000:]}{run.stderr[-2000:]}"
