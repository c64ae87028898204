"""The media and download routes over HTTP, on the local-directory vault and on moto's S3
server: Range, If-Range and conditional answers from werkzeug, hostile Range headers, stored
objects that are corrupt, cut short or gone, and bodies decrypted only as they are sent."""

from __future__ import annotations

import logging

import pytest
from sqlmodel import select

from models import Asset, Client, Link
from tests.portalhelpers import delivered_session
from vault import IntegrityError
from vault.format import TAG_SIZE, header_length

SEGMENT = 64 * 1024  # the vault's default segment size, which the app uses
SECURITY = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff"}


@pytest.fixture(params=["file", "s3"])
def hs(request, hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    storage = {}
    if request.param == "s3":
        s3_server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        storage = {"storage_url": f"s3://{bucket}/vault", "s3_endpoint_url": s3_server.url}
    return hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, **storage)


class Served:
    def __init__(self, hs, zoom_stub, smtp_sink, **kwargs):
        payload, self.path = delivered_session(hs, zoom_stub, smtp_sink, **kwargs)
        self.hs = hs
        self.token = self.path.rsplit("/", 1)[1]
        self.media = f"{self.path}/media"
        (audio,) = [f for f in payload["payload"]["object"]["recording_files"]
                    if f["file_type"] == "M4A"]
        self.data = zoom_stub.file_data(audio["id"])
        with hs.db() as db:
            self.asset = db.exec(select(Asset).where(Asset.kind == "audio")).one()
            self.client_id = db.exec(select(Client)).one().id

    def get(self, path=None, **headers):
        return self.hs.http.get(path or self.media, headers=headers)

    def stored(self) -> bytes:
        return self.hs.rt.vault.backend.get_bytes(self.asset.object_key)

    def replace_stored(self, data: bytes) -> None:
        self.hs.rt.vault.backend.put_bytes(self.asset.object_key, data)


@pytest.fixture
def served(hs, zoom_stub, smtp_sink):
    return Served(hs, zoom_stub, smtp_sink)


def assert_secure(resp):
    for name, value in SECURITY.items():
        assert resp.headers[name] == value, name


def test_no_range_is_the_whole_body(served):
    resp = served.get()
    assert resp.status_code == 200 and resp.data == served.data
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Type"] == "audio/mp4"
    assert int(resp.headers["Content-Length"]) == len(served.data) > 2 * SEGMENT
    assert_secure(resp)
    etag = resp.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")  # strong, so If-Range may use it
    assert served.asset.sha256 not in etag  # no fingerprint of the recording in a header
    assert resp.headers["Last-Modified"]
    head = served.hs.http.head(served.media)
    assert head.status_code == 200 and head.data == b""
    assert int(head.headers["Content-Length"]) == len(served.data)


@pytest.mark.parametrize("header, span", [("bytes=0-99", (0, 100)), ("bytes=100-", (100, None)),
                                          ("bytes=-500", (-500, None)),
                                          ("bytes=65530-65545", (65530, 65546))])
def test_single_ranges(served, header, span):
    size = len(served.data)
    start, end = span
    start, end = (start % size), (size if end is None else end)
    resp = served.get(Range=header)
    assert resp.status_code == 206, header
    assert resp.data == served.data[start:end]
    assert resp.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
    assert int(resp.headers["Content-Length"]) == end - start
    assert_secure(resp)


def test_if_range_with_etag_and_date(served):
    whole = served.get()
    etag, modified = whole.headers["ETag"], whole.headers["Last-Modified"]
    matching = served.get(Range="bytes=10-19", **{"If-Range": etag})
    assert matching.status_code == 206 and matching.data == served.data[10:20]
    stale = served.get(Range="bytes=10-19", **{"If-Range": '"an-older-version"'})
    assert stale.status_code == 200 and stale.data == served.data
    dated = served.get(Range="bytes=10-19", **{"If-Range": modified})
    assert dated.status_code == 206 and dated.data == served.data[10:20]
    older = served.get(Range="bytes=10-19", **{"If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert older.status_code == 200 and older.data == served.data
    # An unconditional revalidation is answered without the body.
    assert served.get(**{"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{size}", "bytes=50-10",
                                    "bytes=-0", "bits=1-2", "bytes=x-y"])
def test_unsatisfiable_ranges_are_416(served, header):
    size = len(served.data)
    resp = served.get(Range=header.format(size=size))
    assert resp.status_code == 416, header
    assert resp.headers["Content-Range"] == f"bytes */{size}"
    assert_secure(resp)


def test_several_ranges_are_answered_whole(served):
    resp = served.get(Range="bytes=0-1,5-6")
    assert resp.status_code == 200 and resp.data == served.data


@pytest.mark.parametrize("header", ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000,
                                    "bytes=-" + "9" * 5000, "bytes=" + "0-1," * 1500 + "2-3",
                                    "bytes=" + "1" * 20 + "-" + "2" * 20])
def test_hostile_range_headers_are_no_500(served, header):
    resp = served.get(Range=header)
    assert resp.status_code in (200, 206, 416), resp.status_code


def test_range_requests_are_not_uses_of_the_link(served):
    for header in ("bytes=0-99", "bytes=100-", "bytes=-500"):
        assert served.get(Range=header).status_code == 206
    with served.hs.db() as db:
        link = db.exec(select(Link).where(Link.purpose == "session")).one()
    assert link.uses == 0


def test_the_body_is_decrypted_as_it_is_sent(served, monkeypatch):
    vault = served.hs.rt.vault
    opened = []

    def open_file(key, **kwargs):
        opened.append(type(vault).open_file(vault, key, **kwargs))
        return opened[-1]

    monkeypatch.setattr(vault, "open_file", open_file)
    resp = served.get()
    (media,) = opened
    # The status is out and one block read (the WSGI runner pulls it to start the response):
    # the rest is decrypted only as the body is consumed, a few segments at most held.
    assert resp.status_code == 200 and media.tell() <= SEGMENT < len(served.data)
    assert media.cached_segments <= media.cache_limit
    assert resp.get_data() == served.data and media.tell() == len(served.data)
    assert media.cached_segments <= media.cache_limit
    resp.close()
    assert media.closed


def test_a_truncated_object_is_a_clear_502(served, caplog):
    caplog.set_level(logging.DEBUG)
    served.replace_stored(served.stored()[:-TAG_SIZE - 1])
    resp = served.get()
    assert resp.status_code == 502
    assert "integrity" in resp.get_data(as_text=True) and "Traceback" not in resp.get_data(
        as_text=True)
    assert_secure(resp)
    assert any(served.asset.id in r.getMessage() for r in caplog.records)
    assert all(served.token not in r.getMessage() for r in caplog.records)


def test_a_flipped_byte_in_a_middle_segment(served, caplog):
    caplog.set_level(logging.DEBUG)
    raw = bytearray(served.stored())
    start = header_length(bytes(raw[:7]))
    raw[start + (SEGMENT + TAG_SIZE) + 100] ^= 0x01  # inside segment 1 of 3
    served.replace_stored(bytes(raw))
    # The first and last segments are intact, so what lies in them is served.
    ok = served.get(Range="bytes=0-99")
    assert ok.status_code == 206 and ok.data == served.data[:100]
    tail = served.get(Range="bytes=-100")
    assert tail.status_code == 206 and tail.data == served.data[-100:]
    # A range that starts in the bad segment is refused before any byte is sent.
    bad = served.get(Range=f"bytes={SEGMENT + 50}-{SEGMENT + 150}")
    assert bad.status_code == 502 and "integrity" in bad.get_data(as_text=True)
    # A whole download has sent its status by then: the body is cut off, never passed whole.
    whole = served.get()
    assert whole.status_code == 200
    with pytest.raises(IntegrityError):
        whole.get_data()
    whole.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("cut off" in m and served.asset.id in m for m in messages)
    assert all(served.token not in m for m in messages)


def test_missing_object_and_erased_key_are_410(hs, zoom_stub, smtp_sink, caplog):
    caplog.set_level(logging.DEBUG)
    served = Served(hs, zoom_stub, smtp_sink)
    hs.rt.vault.delete(served.asset.object_key)
    assert served.get().status_code == 410
    assert served.get(f"{served.path}/download/recording").status_code == 410
    hs.rt.vault.shred_client_key(served.client_id)
    assert served.get(Range="bytes=0-9").status_code == 410
    assert all(served.token not in r.getMessage() for r in caplog.records)


def test_download_is_an_attachment_and_takes_ranges(served):
    download = f"{served.path}/download/recording"
    resp = served.get(download)
    assert resp.status_code == 200 and resp.data == served.data
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and ".m4a" in disposition
    assert_secure(resp)
    part = served.get(download, Range="bytes=5-9")
    assert part.status_code == 206 and part.data == served.data[5:10]
    assert part.headers["Content-Disposition"] == disposition


WINDOW = 64 * 1024  # MEDIA_WINDOW_BYTES for the windowed tests: the recording is 2+ windows


@pytest.fixture
def windowed(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url,
                    MEDIA_WINDOW_BYTES=WINDOW)
    return Served(hs, zoom_stub, smtp_sink, scopes="record")


def test_download_refused_without_the_share_scope(windowed):
    served = windowed
    assert served.get(f"{served.path}/download/recording").status_code == 403
    # No whole-file answer: a request without a Range is what a downloader sends.
    whole = served.get()
    assert whole.status_code == 403 and served.data not in whole.data
    assert "text/html" in whole.headers["Content-Type"]
    assert served.hs.http.head(served.media).status_code == 403


def test_without_downloads_the_player_gets_windows_that_add_up(windowed):
    served = windowed
    size = len(served.data)
    assert size > 2 * WINDOW
    pieces, start = [], 0
    while start < size:
        part = served.get(Range=f"bytes={start}-")  # what a player asks, open-ended
        assert part.status_code == 206, start
        assert len(part.data) == min(WINDOW, size - start)
        assert part.headers["Content-Range"] == f"bytes {start}-{start + len(part.data) - 1}/{size}"
        pieces.append(part.data)
        start += len(part.data)
    assert b"".join(pieces) == served.data  # it still plays, all of it, piece by piece
    inner = served.get(Range="bytes=100-199")
    assert inner.status_code == 206 and inner.data == served.data[100:200]


@pytest.mark.parametrize("headers", [
    {"Range": "bytes=0-"},                                   # open-ended
    {"Range": f"bytes=0-{10 ** 9}"},                         # past the end
    {"Range": "bytes=0-10,20-"},                             # several ranges
    {"Range": "bytes=-100000"},                              # a suffix longer than a window
    {"Range": "bytes=0-", "If-Range": '"stale-validator"'},  # a stale If-Range
    {"Range": "bytes=0-", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"},
])
def test_without_downloads_no_range_yields_the_whole_file(windowed, headers):
    resp = windowed.get(**headers)
    assert resp.status_code == 206 and len(resp.data) <= WINDOW < len(windowed.data)


@pytest.mark.parametrize("range_header", ["items=0-", "bytes=999999999-", "bytes=abc"])
def test_without_downloads_odd_ranges_are_refused_not_served_whole(windowed, range_header):
    resp = windowed.get(Range=range_header)
    assert resp.status_code in (403, 416)
    assert windowed.data not in resp.data and len(resp.data) < WINDOW
