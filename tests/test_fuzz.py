"""Property-based fuzz of every route and every header we parse (the quick profile; the long run
is bench/fuzz.py): no answer is a 5xx, and no log line or stderr write holds a link token, a
sign-in token, a Zoom download token or the client's email. See tests/fuzzing.py."""

import logging
import os
import sys

import pytest

from tests.fuzzing import (CLIENT_EMAIL, REGRESSIONS, LogCapture, Outcome, Tally, leaks, open_world,
                           properties, run_property)
from tests.googlestub import GoogleStub
from tests.zoomstub import ZoomStub

# Examples per property in the normal suite: enough to reach every route and both sides of each
# signature check, small enough for the whole file to stay well under a minute.
QUICK = {"any route": 200, "zoom webhook": 80, "slack command": 60, "google push": 40,
         "client links": 120}


@pytest.fixture(scope="module")
def world(tmp_path_factory, redis_server, smtp_sink):
    # One world for the module: building one ingests and delivers a recording (seconds).
    with ZoomStub() as zoom, GoogleStub() as google:
        w = open_world(tmp_path_factory.mktemp("fuzz"), redis_server.url, zoom, smtp_sink, google)
        yield w
        w.hs.rt.engine.dispose()


@pytest.fixture(scope="module")
def strategies(world):
    return properties(world)


def test_building_the_world_logs_no_secret(world):
    assert world.setup_leaks == []
    assert {"session token", "client email", "fixture download token"} <= set(world.secrets)


@pytest.mark.parametrize("name", list(QUICK))
def test_property(world, strategies, name):
    tally = Tally()
    with LogCapture() as capture:
        run_property(world, capture, strategies[name], QUICK[name], tally, examples=REGRESSIONS.get(name, ()))
    assert tally.cases >= QUICK[name]


def test_the_checks_can_fail(world):
    """The log check flags a planted token in a record, on stderr and on descriptor 2, an
    email percent-encoded, and a DEBUG record; it does not flag what redaction already hid."""
    token = world.tokens["session"]
    with LogCapture() as capture:
        logging.getLogger("portal.client").debug("opened with %s", token)
        logging.getLogger("portal.client").info("GET /s/%s", token)   # redacted at creation
        print(f"boom {world.login_token}", file=sys.stderr)
        os.write(2, f"fd {world.secrets['fixture download token']}\n".encode())
        logging.getLogger("webhooks.zoom").warning("to client%40example.com")
        found = leaks(capture.take(), world.secrets)
    by_line = {line.split(":", 1)[0]: what for what, line in found}
    assert len(found) == 4, found
    assert by_line["DEBUG portal.client"].startswith("session token")
    assert by_line["WARNING webhooks.zoom"] == "client email"
    assert by_line["stderr"].startswith("sign-in token")
    assert by_line["fd2"] == "fixture download token"
    assert not leaks([f"INFO x: {CLIENT_EMAIL.replace('@', ' at ')}"], world.secrets)
    assert not Outcome("GET", "/", "", [], b"", status=500).ok
    assert not Outcome("GET", "/", "", [], b"", error="RuntimeError").ok
    assert Outcome("GET", "/", "", [], b"", status=404).ok
