"""No token or client email in any log line: link paths, query-string and bearer tokens and
addresses are redacted in every record, tracebacks included."""

from __future__ import annotations

import logging

from workers.logs import install_redaction, redact

TOKEN = "ImFiYzEyMyI.ZxY9qW.8f3kLmNoPqRsTuVwXyZ0123456789"


def test_each_kind_of_secret_is_redacted():
    line = (f'127.0.0.1 - - "GET /s/{TOKEN}/media HTTP/1.1" 206 - robin.client+x@example.co.uk '
            f"GET /rec/download/f1?download_token=dl-secret-9 Authorization: Bearer eyJ.abc.def "
            f"/c/{TOKEN} /j/{TOKEN}?x=1 /auth/{TOKEN}")
    out = redact(line)
    for secret in (TOKEN, "robin.client+x@example.co.uk", "dl-secret-9", "eyJ.abc.def"):
        assert secret not in out
    assert "/s/[token]/media" in out and "[email]" in out and "download_token=[redacted]" in out
    assert redact("session 3f2a1b stored, 2 files") == "session 3f2a1b stored, 2 files"


def test_tokens_in_oauth_answers_and_slack_tokens_are_redacted():
    line = ('Received the following response - status: 200, body: {"ok": true, "access_token": '
            '"xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy", "refresh_token": "zr.9Kq-abc", '
            "'token': 'sq-123'} then xoxp-2-3-abcDEF in text")
    out = redact(line)
    for secret in ("pdFZKVeTuE8sk7oOcBrzbqgy", "zr.9Kq-abc", "sq-123", "abcDEF"):
        assert secret not in out
    assert '"access_token": "[redacted]"' in out and "[slack-token]" in out


def test_records_and_tracebacks_are_redacted_as_they_are_made(caplog):
    install_redaction()
    log = logging.getLogger("holdspace.test")
    with caplog.at_level(logging.INFO):
        log.info("link %s sent to %s", f"https://h/s/{TOKEN}", "robin@example.com")
        try:
            raise ValueError(f"could not open /s/{TOKEN} for robin@example.com")
        except ValueError:
            log.exception("request failed")
    text = caplog.text
    assert TOKEN not in text and "robin@example.com" not in text
    assert "link https://h/s/[token] sent to [email]" in text and "ValueError" in text


def test_the_request_log_of_a_real_server_shows_no_token(hs_factory, database_url, caplog):
    # werkzeug's own access log line carries the path, and so the link's token, unless redacted.
    import threading

    import requests
    from werkzeug.serving import make_server
    hs = hs_factory(database_url)
    server = make_server("127.0.0.1", 0, hs.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            for path in (f"/s/{TOKEN}", f"/s/{TOKEN}/media", f"/c/{TOKEN}", f"/j/{TOKEN}", f"/auth/{TOKEN}"):
                assert requests.get(f"http://127.0.0.1:{server.server_port}{path}", timeout=10).status_code < 500
    finally:
        server.shutdown()
        thread.join(5)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert len(lines) >= 5 and all("[token]" in line for line in lines[-5:])
    assert TOKEN not in caplog.text
