"""No 500 for anything a caller can send: every route in the url_map, anonymous and signed in
as a coach, with hostile path values, query strings, form fields, JSON bodies and headers."""

import json
from urllib.parse import quote

import pytest

HOSTILE = ["", "x", "0", "-1", "..%2F..%2Fetc%2Fpasswd", "%00", "\x00", "😀" * 50, "a" * 3000,
           "<script>alert(1)</script>", "' OR 1=1 --", "{}", "[]", "null", "IjEi.AAAA", "conferenceRecords/../x"]
BODIES = [b"", b"{", b"[]", b'{"event": 1}', b'{"message": "x"}', b"\xff\xfe\x00", b"a=1&a=2&text=%ff",
          json.dumps({"event": "recording.completed", "payload": {"object": {"uuid": {"x": 1}}}}).encode()]


@pytest.fixture
def hs(hs_factory, database_url):
    return hs_factory(database_url, SLACK_SIGNING_SECRET="s", GOOGLE_PUBSUB_AUDIENCE="aud",
                      GOOGLE_PUBSUB_SERVICE_ACCOUNT="sa@example.com", GOOGLE_CERTS_URL="http://127.0.0.1:9/certs",
                      GOOGLE_CLIENT_ID="cid", GOOGLE_CLIENT_SECRET="csecret")


def routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.endswith("static"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, rule


def fill(rule, value):
    path = rule.rule
    for arg in rule.arguments:
        path = path.replace(f"<{arg}>", quote(value, safe="") or "x")
    return path


def test_nothing_a_caller_sends_is_a_500(hs):
    coach_id = hs.run("coach", "add", "--email", "coach@example.com", "--name", "Casey")
    signed_in = hs.app.test_client()
    from portal.coach import login_link
    signed_in.get("/" + login_link(hs.rt, coach_id).split("/", 3)[3])
    checked = 0
    for http in (hs.app.test_client(), signed_in):
        for method, rule in routes(hs.app):
            for value in HOSTILE:
                path = fill(rule, value)
                if method == "GET":
                    resp = http.get(path, query_string={"q": value, "page": value, "at": value, "state": value,
                                                        "code": value, "next": value})
                    assert resp.status_code < 500, (method, path, resp.status_code)
                else:
                    for body in BODIES:
                        resp = http.post(path, data=body, headers={
                            "Content-Type": "application/json" if body[:1] in (b"{", b"[") else
                            "application/x-www-form-urlencoded",
                            "Authorization": f"Bearer {value}" if value.isprintable() else "Bearer x",
                            "x-zm-signature": "v0=" + "0" * 64, "x-zm-request-timestamp": value if value.isascii() and value.isprintable() else "1",
                            "X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "1"})
                        assert resp.status_code < 500, (method, path, body[:20], resp.status_code)
                checked += 1
    assert checked > 300
