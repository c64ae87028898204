"""The Zoom endpoint's answers: signatures, validation, malformed and oversized bodies,
unknown events and duplicate deliveries."""

import hashlib
import hmac
import json
import time

import pytest
from sqlmodel import select

from models import InboxEvent
from tests.zoomhelpers import ZOOM_SECRET, post_zoom, signed_headers

EVENT = {"event": "recording.completed", "event_ts": 1, "download_token": "t",
         "payload": {"object": {"uuid": "abc==", "id": 1, "host_id": "h", "recording_files": []}}}


@pytest.fixture
def hs(hs_factory, database_url):
    return hs_factory(database_url)


def inbox_rows(hs):
    with hs.db() as db:
        return list(db.exec(select(InboxEvent)))


def test_url_validation_answers_with_hmac_of_plain_token(hs):
    body = {"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
            "event_ts": 1654503849680}
    resp = post_zoom(hs.http, body)
    assert resp.status_code == 200
    expected = hmac.new(ZOOM_SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert resp.get_json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}


def test_url_validation_needs_a_valid_signature_too(hs):
    body = json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": "x"}}).encode()
    resp = hs.http.post("/webhooks/zoom", data=body, headers=signed_headers(body, secret="wrong"))
    assert resp.status_code == 401


@pytest.mark.parametrize("case", ["forged", "wrong_secret", "stale", "future", "missing", "garbled_ts",
                                  "superscript_ts", "huge_ts", "spaced_ts"])
def test_bad_signatures_are_401_and_record_nothing(hs, case):
    body = json.dumps(EVENT).encode()
    headers = signed_headers(body)
    if case == "forged":
        headers["x-zm-signature"] = "v0=" + "0" * 64
    elif case == "wrong_secret":
        headers = signed_headers(body, secret="not-the-secret")
    elif case == "stale":
        headers = signed_headers(body, timestamp=int(time.time()) - 301)
    elif case == "future":
        headers = signed_headers(body, timestamp=int(time.time()) + 301)
    elif case == "missing":
        headers = {"content-type": "application/json"}
    elif case == "garbled_ts":
        headers["x-zm-request-timestamp"] = "yesterday"
    elif case == "superscript_ts":  # str.isdigit() says yes, int() says no
        headers["x-zm-request-timestamp"] = "\u00b2"
    elif case == "huge_ts":  # past int()'s 4,300-digit limit
        headers["x-zm-request-timestamp"] = "9" * 5000
    elif case == "spaced_ts":
        headers["x-zm-request-timestamp"] = f" {int(time.time())} "
    resp = hs.http.post("/webhooks/zoom", data=body, headers=headers)
    assert resp.status_code == 401
    assert inbox_rows(hs) == []


def test_body_changed_after_signing_is_401(hs):
    body = json.dumps(EVENT).encode()
    headers = signed_headers(body)
    resp = hs.http.post("/webhooks/zoom", data=body.replace(b'"h"', b'"x"'), headers=headers)
    assert resp.status_code == 401


def test_freshness_window_is_a_setting(hs_factory, database_url):
    hs = hs_factory(database_url, ZOOM_SIGNATURE_WINDOW_SECONDS=7200)
    resp = post_zoom(hs.http, EVENT, timestamp=int(time.time()) - 3600)
    assert resp.status_code == 200


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"payload": {}}', b"\xff\xfe",
                                  b'{"event": "recording.completed", "payload": {"object": {"id": 1}}}',
                                  b'{"event": "recording.completed", "payload": {"object": {"uuid": "u", "recording_files": "x"}}}',
                                  b'{"event": "recording.completed", "payload": {"object": {"uuid": "u", "recording_files": [1]}}}',
                                  b'{"event": "recording.completed", "payload": "nope"}'])
def test_malformed_bodies_are_400(hs, body):
    resp = post_zoom(hs.http, body)
    assert resp.status_code == 400
    assert "error" in resp.get_json()
    assert inbox_rows(hs) == []


def test_deeply_nested_json_is_400_not_500(hs):
    for body in (b'{"event": "recording.completed", "payload": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
                 json.dumps({**EVENT, "payload": {"object": {"uuid": "u", "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}}).encode()):
        resp = post_zoom(hs.http, body)
        assert resp.status_code == 400
        assert "not JSON" in resp.get_json()["error"] or "nests deeper" in resp.get_json()["error"]
    assert inbox_rows(hs) == []


def test_oversized_body_is_413(hs):
    body = json.dumps({**EVENT, "padding": "x" * (1 << 20)}).encode()
    resp = hs.http.post("/webhooks/zoom", data=body, headers=signed_headers(body))
    assert resp.status_code == 413
    assert inbox_rows(hs) == []


def test_unknown_event_is_acknowledged_and_not_recorded(hs):
    resp = post_zoom(hs.http, {"event": "meeting.participant_joined", "payload": {"object": {}}})
    assert resp.status_code == 200
    assert resp.get_json()["handled"] is False
    assert inbox_rows(hs) == []


def test_not_configured_is_503(hs_factory, database_url):
    hs = hs_factory(database_url, ZOOM_WEBHOOK_SECRET="")
    assert post_zoom(hs.http, EVENT).status_code == 503


def test_duplicate_and_byte_different_redelivery_make_one_inbox_row(hs):
    first = post_zoom(hs.http, EVENT)
    again = post_zoom(hs.http, EVENT)
    other_token = post_zoom(hs.http, {**EVENT, "download_token": "another", "event_ts": 2})
    assert [r.status_code for r in (first, again, other_token)] == [200, 200, 200]
    assert [r.get_json()["duplicate"] for r in (first, again, other_token)] == [False, True, True]
    assert len(inbox_rows(hs)) == 1


def test_redis_down_still_answers_2xx_and_keeps_the_row(hs_factory, database_url):
    hs = hs_factory(database_url, REDIS_URL="redis://127.0.0.1:1/0")
    resp = post_zoom(hs.http, EVENT)
    assert resp.status_code == 200
    rows = inbox_rows(hs)
    assert len(rows) == 1 and rows[0].status == "received"


def test_healthz(hs, hs_factory, database_url):
    resp = hs.http.get("/healthz")
    assert resp.status_code == 200 and resp.get_json()["ok"] is True
    down = hs_factory(database_url, REDIS_URL="redis://127.0.0.1:1/0")
    resp = down.http.get("/healthz")
    assert resp.status_code == 503
    assert resp.get_json() == {"ok": False, "database": True, "queue": False}
