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
    "tests/test_meet_briefings.py",
]


@pytest.mark.skipif(bool(os.environ.get(CLOCK_SHIFT_ENV)),
                    reason="the run is on a moved clock already; its own results are the check")
def test_clock_sensitive_tests_pass_a_year_either_way():
    # Both runs at once: each mostly waits on its own servers, so together they take little
    # longer than one.
    runs = {days: subprocess.Popen(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *CLOCK_SENSITIVE],
        cwd=ROOT, env={**os.environ, CLOCK_SHIFT_ENV: str(days)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for days in (365, -365)}
    for days, run in runs.items():
        try:
            output, _ = run.communicate(timeout=400)
        except subprocess.TimeoutExpired:
            run.kill()
            output, _ = run.communicate()
        assert run.returncode == 0, f"with the clock moved {days:+d} days:\n{output[-8000:]}"
