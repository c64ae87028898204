"""integrations.zoom.ZoomClient against tests.zoomstub over real HTTP: OAuth caching and
refresh, rate limits, pagination, uuid encoding, and every way a recording download can go
wrong. The fixtures in tests/fixtures/zoom/ are checked here too."""

from __future__ import annotations

import json
import threading
from datetime import date
from urllib.parse import quote

import pytest
import requests

from integrations.zoom import (DownloadError, ZoomApiError, ZoomClient, ZoomError,
                               encode_uuid)
from tests.zoomstub import (CLIENT_EMAIL, EXPIRED_DOWNLOAD_TOKEN, FIXTURE_FILE_HOST, HOST_EMAIL,
                            HOST_ID, ZoomStub, ended_meeting_files, fixture_names, load_fixture,
                            media_bytes, register_fixture_files)

MEETING_ID = 85746065432
UUID = "Xb3mK9qWTQ2v8nLp4rS7dA=="
SLASH_UUID = "/ajXp112QmuoKj4854875=="
DOUBLE_SLASH_UUID = "Tq9v//Jk3QWm2RfZpHc8xw=="


class FakeClock:
    def __init__(self, now: float = 1_715_700_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def stub():
    with ZoomStub() as zoom:
        yield zoom


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(stub, clock, sleeps):
    return ZoomClient(**stub.client_kwargs(), clock=clock, sleep=sleeps.append, timeout=5)


@pytest.fixture
def unconfigured(stub):
    return ZoomClient(None, None, None, api_base_url=stub.api_base_url,
                      oauth_url=stub.oauth_url, download_hosts=(f"127.0.0.1:{stub.port}",), timeout=5)


def secrets_of(stub: ZoomStub, *extra: str) -> list[str]:
    issued = [f"access-{n}" for n in range(1, stub.token_requests + 1)]
    return [stub.client_secret, *issued, *(e for e in extra if e)]


def assert_no_secrets(exc: BaseException, secrets: list[str]) -> None:
    text = f"{exc} {exc!r} {exc.args!r}"
    for secret in secrets:
        assert secret not in text, f"a secret leaked into {text!r}"


def add_file(stub, file_id="file-1", size=200_000, content_type="video/mp4"):
    data = media_bytes(file_id, size)
    stub.add_file(file_id, data, content_type)
    return data, stub.download_url_for(file_id)


def read_all(download) -> bytes:
    with download:
        return b"".join(download)


# --- uuids and configuration ----------------------------------------------------------------

@pytest.mark.parametrize("uuid, expected", [
    ("Xb3mK9qWTQ2v8nLp4rS7dA==", "Xb3mK9qWTQ2v8nLp4rS7dA%3D%3D"),
    ("M2pQe8RrS5u+Zc4x/JhKtA==", "M2pQe8RrS5u%2BZc4x%2FJhKtA%3D%3D"),
    ("/ajXp112QmuoKj4854875==", "%252FajXp112QmuoKj4854875%253D%253D"),
    ("Tq9v//Jk3QWm2RfZpHc8xw==", "Tq9v%252F%252FJk3QWm2RfZpHc8xw%253D%253D"),
])
def test_encode_uuid_doubles_only_for_leading_or_double_slash(uuid, expected):
    assert encode_uuid(uuid) == expected


def test_configured_needs_all_three_credentials(stub):
    assert ZoomClient(**stub.client_kwargs()).configured
    assert not ZoomClient("acct", "id", None).configured
    assert not ZoomClient("", "id", "secret").configured
    with pytest.raises(ZoomError, match="not configured"):
        ZoomClient(None, None, None, api_base_url=stub.api_base_url).get_meeting(1)
    assert stub.requests == []
    assert "secret" not in repr(ZoomClient("acct", "id", "s3cret-value"))


# --- OAuth ----------------------------------------------------------------------------------

def test_token_is_fetched_with_basic_auth_and_cached(stub, client):
    stub.add_meeting(MEETING_ID, UUID, invitees=[CLIENT_EMAIL])
    client.get_meeting(MEETING_ID)
    client.get_meeting(MEETING_ID)
    assert stub.token_requests == 1
    (token_req,) = stub.requests_to("/oauth/token")
    assert token_req.method == "POST"
    assert token_req.param("grant_type") == "account_credentials"
    assert token_req.param("account_id") == stub.account_id
    assert token_req.authorization.startswith("Basic ")
    api = stub.requests_to("/v2/")
    assert [r.authorization for r in api] == ["Bearer access-1", "Bearer access-1"]


def test_token_is_refreshed_a_minute_before_expiry(stub, client, clock):
    stub.add_meeting(MEETING_ID, UUID)
    client.get_meeting(MEETING_ID)
    clock.advance(3600 - 61)
    client.get_meeting(MEETING_ID)
    assert stub.token_requests == 1
    clock.advance(2)                          # now inside the last minute
    client.get_meeting(MEETING_ID)
    assert stub.token_requests == 2
    assert stub.requests_to("/v2/")[-1].authorization == "Bearer access-2"


def test_a_401_fetches_a_new_token_once_and_retries(stub, client):
    stub.add_meeting(MEETING_ID, UUID)
    client.get_meeting(MEETING_ID)
    stub.revoke_access_tokens()
    assert client.get_meeting(MEETING_ID)["uuid"] == UUID
    assert stub.token_requests == 2
    assert [r.authorization for r in stub.requests_to("/v2/")] == [
        "Bearer access-1", "Bearer access-1", "Bearer access-2"]


def test_a_401_that_persists_is_raised_after_one_refresh(stub, client):
    stub.add_meeting(MEETING_ID, UUID)
    stub.fail_next(401, times=5)
    with pytest.raises(ZoomApiError) as caught:
        client.get_meeting(MEETING_ID)
    assert caught.value.status == 401
    assert stub.token_requests == 2 and len(stub.requests_to("/v2/")) == 2
    assert_no_secrets(caught.value, secrets_of(stub))


def test_wrong_credentials_are_reported_without_the_secret(stub):
    client = ZoomClient(stub.account_id, stub.client_id, "not-the-secret",
                        api_base_url=stub.api_base_url, oauth_url=stub.oauth_url)
    with pytest.raises(ZoomApiError) as caught:
        client.get_meeting(MEETING_ID)
    assert caught.value.status == 401 and "invalid" in str(caught.value).lower()
    assert_no_secrets(caught.value, ["not-the-secret", stub.client_secret])


def test_concurrent_callers_share_one_token(stub, client):
    stub.add_meeting(MEETING_ID, UUID)
    errors = []

    def call():
        try:
            client.get_meeting(MEETING_ID)
        except Exception as exc:             # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and stub.token_requests == 1


# --- rate limits and server errors ----------------------------------------------------------

def test_429_waits_out_retry_after_then_succeeds(stub, client, sleeps):
    stub.add_meeting(MEETING_ID, UUID)
    client.get_meeting(MEETING_ID)
    stub.fail_next(429, times=2, retry_after=2)
    assert client.get_meeting(MEETING_ID)["id"] == MEETING_ID
    assert sleeps == [2.0, 2.0]


def test_429_gives_up_after_three_attempts(stub, client, sleeps):
    stub.add_meeting(MEETING_ID, UUID)
    stub.fail_next(429, times=3, retry_after=1)
    with pytest.raises(ZoomApiError) as caught:
        client.get_meeting(MEETING_ID)
    assert caught.value.status == 429 and caught.value.retry_after == 1.0
    assert caught.value.retryable
    assert sleeps == [1.0, 1.0] and len(stub.requests_to("/v2/")) == 3


def test_429_with_a_long_retry_after_is_left_to_the_caller(stub, client, sleeps):
    stub.add_meeting(MEETING_ID, UUID)
    stub.fail_next(429, times=1, retry_after=3600)
    with pytest.raises(ZoomApiError) as caught:
        client.get_meeting(MEETING_ID)
    assert caught.value.retry_after == 3600.0 and sleeps == []


def test_5xx_is_retried_with_short_backoff_then_raised(stub, client, sleeps):
    stub.add_meeting(MEETING_ID, UUID)
    stub.fail_next(503, times=2)
    assert client.get_meeting(MEETING_ID)["uuid"] == UUID
    assert len(sleeps) == 2 and all(0 < s <= 5 for s in sleeps)
    stub.fail_next(500, times=3)
    with pytest.raises(ZoomApiError) as caught:
        client.get_meeting(MEETING_ID)
    assert caught.value.status == 500 and caught.value.retryable


def test_oauth_endpoint_429_is_retried_too(stub, client, sleeps):
    stub.add_meeting(MEETING_ID, UUID)
    stub.fail_next(429, times=1, retry_after=1, path_prefix="/oauth/")
    client.get_meeting(MEETING_ID)
    assert stub.token_requests == 1 and sleeps == [1.0]


# --- meetings, people, pagination -----------------------------------------------------------

def test_invitee_emails(stub, client):
    stub.add_meeting(MEETING_ID, UUID, invitees=[CLIENT_EMAIL, " Client@Example.com ", ""])
    assert client.meeting_invitee_emails(MEETING_ID) == [CLIENT_EMAIL]
    assert client.meeting_invitee_emails(99999) == []
    with pytest.raises(ZoomApiError) as caught:
        client.get_meeting(99999)
    assert caught.value.status == 404 and caught.value.code == 3001


def test_registrants_are_paged(stub, client):
    emails = [f"r{i}@example.com" for i in range(5)]
    stub.add_meeting(MEETING_ID, UUID, registrants=emails)
    assert client.registrant_emails(MEETING_ID) == emails
    pages = stub.requests_to(f"/v2/meetings/{MEETING_ID}/registrants")
    assert len(pages) == 3
    assert [r.param("next_page_token") for r in pages][0] is None
    assert all(r.param("next_page_token") for r in pages[1:])


def test_registrants_absent_or_disabled_give_an_empty_list(stub, client):
    stub.add_meeting(MEETING_ID, UUID, registrants=None)
    assert client.registrant_emails(MEETING_ID) == []       # 400: registration off
    assert client.registrant_emails(99999) == []            # 404


def test_participants_skip_hidden_emails_across_pages(stub, client):
    stub.add_meeting(MEETING_ID, SLASH_UUID, participants=[
        {"name": "Alex", "user_email": HOST_EMAIL}, {"name": "Guest", "user_email": ""},
        {"name": "Sam", "user_email": CLIENT_EMAIL}, {"name": "Alex", "user_email": HOST_EMAIL},
        {"name": "Phone", "user_email": ""}])
    assert client.participant_emails(SLASH_UUID) == [HOST_EMAIL, CLIENT_EMAIL]
    assert len(stub.requests_to("/v2/past_meetings/")) == 3
    assert client.participant_emails("nope==") == []


def test_user_recordings_paged_and_by_date(stub, client):
    for day in range(1, 6):
        stub.add_meeting(100 + day, f"uuid-{day}==", start_time=f"2024-05-0{day}T10:00:00Z",
                         files=[{"id": f"f{day}", "file_type": "MP4", "file_size": 10}])
    stub.add_meeting(200, "other==", host_id="someone-else", files=[{"id": "x"}])
    got = client.list_user_recordings(HOST_ID, date(2024, 5, 2), date(2024, 5, 5))
    assert sorted(m["uuid"] for m in got) == ["uuid-2==", "uuid-3==", "uuid-4==", "uuid-5=="]
    reqs = stub.requests_to(f"/v2/users/{HOST_ID}/recordings")
    assert len(reqs) == 2
    assert reqs[0].param("from") == "2024-05-02" and reqs[0].param("to") == "2024-05-05"
    assert reqs[0].param("page_size") == "300"


def test_user_recordings_over_a_month_are_asked_in_windows(stub, client):
    stub.add_meeting(1, "jan==", start_time="2024-01-10T10:00:00Z", files=[{"id": "a"}])
    stub.add_meeting(2, "mar==", start_time="2024-03-10T10:00:00Z", files=[{"id": "b"}])
    got = client.list_user_recordings(HOST_ID, date(2024, 1, 1), date(2024, 3, 31))
    assert sorted(m["uuid"] for m in got) == ["jan==", "mar=="]
    windows = [(r.param("from"), r.param("to"))
               for r in stub.requests_to(f"/v2/users/{HOST_ID}/recordings")]
    assert windows[0] == ("2024-01-01", "2024-01-30") and windows[-1][1] == "2024-03-31"


def test_upcoming_meetings_are_paged(stub, client):
    for i in range(3):
        stub.add_upcoming(HOST_ID, {"id": 900 + i, "topic": f"Session {i}",
                                    "start_time": "2024-06-01T10:00:00Z"})
    assert [m["id"] for m in client.list_upcoming_meetings(HOST_ID)] == [900, 901, 902]
    reqs = stub.requests_to(f"/v2/users/{HOST_ID}/meetings")
    assert len(reqs) == 2 and all(r.param("type") == "upcoming" for r in reqs)


# --- recordings and uuid encoding -----------------------------------------------------------

@pytest.mark.parametrize("uuid", [UUID, "M2pQe8RrS5u+Zc4x/JhKtA==", SLASH_UUID,
                                  DOUBLE_SLASH_UUID])
def test_recordings_of_any_uuid(stub, client, uuid):
    files = [{"id": "f1", "file_type": "MP4", "file_size": 100, "status": "completed"}]
    stub.add_meeting(MEETING_ID, uuid, files=files)
    rec = client.get_recordings(uuid, ttl=600)
    assert rec["uuid"] == uuid and rec["recording_files"] == files
    assert rec["download_access_token"].startswith("dl-")
    (req,) = stub.requests_to("/v2/meetings/")
    assert req.path == f"/v2/meetings/{encode_uuid(uuid)}/recordings"
    assert req.param("include_fields") == "download_access_token" and req.param("ttl") == "600"


@pytest.mark.parametrize("uuid", [SLASH_UUID, DOUBLE_SLASH_UUID])
def test_stub_like_zoom_404s_a_singly_encoded_slash_uuid(stub, client, uuid):
    stub.add_meeting(MEETING_ID, uuid, files=[{"id": "f1"}])
    token = client._access_token()
    resp = requests.get(f"{stub.api_base_url}/meetings/{quote(uuid, safe='')}/recordings",
                        headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert resp.status_code == 404


def test_missing_recordings_and_trash(stub, client):
    assert client.get_recordings("unknown==") is None
    stub.add_meeting(MEETING_ID, SLASH_UUID, files=[{"id": "f1"}])
    assert client.trash_recordings(SLASH_UUID) is True
    assert SLASH_UUID in stub.trashed
    (delete,) = stub.requests_to("/v2/meetings/", method="DELETE")
    assert delete.param("action") == "trash"
    assert client.get_recordings(SLASH_UUID) is None
    assert client.trash_recordings(SLASH_UUID) is False      # already gone: fine


# --- downloads ------------------------------------------------------------------------------

def test_download_follows_the_302_with_the_download_token(stub, client):
    data, url = add_file(stub)
    token = stub.issue_download_token()
    with client.open_download(url, expected_size=len(data), kind="media",
                              download_token=token, chunk_size=64 * 1024) as dl:
        assert dl.content_type == "video/mp4" and dl.size == len(data)
        chunks = list(dl)
    assert b"".join(chunks) == data and len(chunks) > 1
    assert [r.path for r in stub.requests] == ["/rec/download/file-1", "/files/file-1"]
    assert stub.requests[0].authorization == f"Bearer {token}"
    assert all(not r.query for r in stub.requests)           # never a query-string token
    assert stub.token_requests == 0 and stub.file_downloads("file-1") == 1


def test_expired_download_token_falls_back_to_the_access_token(stub, client):
    data, url = add_file(stub)
    assert read_all(client.open_download(url, expected_size=len(data), kind="media",
                                         download_token=EXPIRED_DOWNLOAD_TOKEN)) == data
    first, second = stub.requests_to("/rec/download/")
    assert first.authorization == f"Bearer {EXPIRED_DOWNLOAD_TOKEN}"
    assert second.authorization == "Bearer access-1"


def test_a_download_token_expired_later_also_falls_back(stub, client):
    data, url = add_file(stub)
    token = stub.issue_download_token()
    stub.expire_download_tokens()
    assert read_all(client.open_download(url, expected_size=None, kind="media",
                                         download_token=token)) == data


def test_without_a_download_token_the_access_token_is_used(stub, client):
    data, url = add_file(stub)
    assert read_all(client.open_download(url, expected_size=len(data), kind="media")) == data
    assert stub.requests_to("/rec/download/")[0].authorization == "Bearer access-1"


def test_a_revoked_access_token_is_replaced_once_for_downloads(stub, client):
    data, url = add_file(stub)
    stub.add_meeting(MEETING_ID, UUID)
    client.get_meeting(MEETING_ID)                           # caches access-1
    stub.revoke_access_tokens()
    assert read_all(client.open_download(url, expected_size=len(data), kind="media")) == data
    assert [r.authorization for r in stub.requests_to("/rec/download/")] == [
        "Bearer access-1", "Bearer access-2"]


def test_refused_everywhere_is_not_retryable_and_keeps_tokens_out(stub, unconfigured):
    data, url = add_file(stub)
    with pytest.raises(DownloadError) as caught:
        unconfigured.open_download(url, expected_size=len(data), kind="media",
                                   download_token=EXPIRED_DOWNLOAD_TOKEN)
    assert not caught.value.retryable and caught.value.status == 401
    assert_no_secrets(caught.value, [EXPIRED_DOWNLOAD_TOKEN])


@pytest.mark.parametrize("mode", ["html", "html_octet"])
def test_an_html_page_is_a_retryable_failure(stub, client, mode):
    data, url = add_file(stub)
    stub.set_file_mode("file-1", mode)
    token = stub.issue_download_token()
    with pytest.raises(DownloadError) as caught:
        client.open_download(url, expected_size=len(data), kind="media", download_token=token)
    assert caught.value.retryable and "HTML" in str(caught.value)
    assert_no_secrets(caught.value, secrets_of(stub, token))
    assert stub.file_downloads("file-1") == 0


def test_an_html_page_for_the_download_token_tries_the_access_token(stub, client):
    data, url = add_file(stub)
    stub.set_file_mode("file-1", "html", times=1)
    token = stub.issue_download_token()
    assert read_all(client.open_download(url, expected_size=len(data), kind="media",
                                         download_token=token)) == data


def test_html_in_a_text_file_served_as_octet_stream_is_caught(stub, client):
    data, url = add_file(stub, content_type="text/vtt")
    stub.set_file_mode("file-1", "html_octet")
    with pytest.raises(DownloadError) as caught:
        client.open_download(url, expected_size=len(data), kind="text")
    assert caught.value.retryable


def test_wrong_content_type_for_the_kind(stub, client):
    data, url = add_file(stub, content_type="application/json")
    with pytest.raises(DownloadError) as caught:
        client.open_download(url, expected_size=len(data), kind="media")
    assert caught.value.retryable and "content type" in str(caught.value)
    vtt = b"WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\nAlex: hello\n"
    stub.add_file("t1", vtt, "text/vtt")
    text = client.open_download(stub.download_url_for("t1"), expected_size=len(vtt), kind="text")
    assert read_all(text) == vtt and text.content_type == "text/vtt"
    with pytest.raises(DownloadError):
        client.open_download(stub.download_url_for("t1"), expected_size=len(vtt), kind="media")
    with pytest.raises(DownloadError):
        client.open_download(url, expected_size=len(data), kind="text")
    with pytest.raises(ValueError):
        client.open_download(url, expected_size=None, kind="video")


def test_429_reports_retry_after(stub, client):
    data, url = add_file(stub)
    stub.set_file_mode("file-1", "429", times=1)
    with pytest.raises(DownloadError) as caught:
        client.open_download(url, expected_size=len(data), kind="media")
    assert caught.value.retryable and caught.value.retry_after == 1.0
    assert read_all(client.open_download(url, expected_size=len(data), kind="media")) == data


def test_5xx_is_retryable(stub, client):
    data, url = add_file(stub)
    stub.set_file_mode("file-1", "503")
    with pytest.raises(DownloadError) as caught:
        client.open_download(url, expected_size=len(data), kind="media")
    assert caught.value.retryable and caught.value.status == 503


def test_missing_file_is_not_retryable(stub, client):
    with pytest.raises(DownloadError) as caught:
        client.open_download(stub.download_url_for("nope"), expected_size=None, kind="media")
    assert not caught.value.retryable and caught.value.status == 404


def test_a_dropped_connection_fails_from_the_iterator(stub, client):
    data, url = add_file(stub, size=300_000)
    stub.set_file_mode("file-1", "drop")
    received = []
    download = client.open_download(url, expected_size=len(data), kind="media",
                                    chunk_size=16 * 1024)
    with pytest.raises(DownloadError) as caught:
        with download:
            for chunk in download:
                received.append(chunk)
    assert caught.value.retryable
    assert 0 < len(b"".join(received)) < len(data)
    assert b"".join(received) == data[:len(b"".join(received))]
    assert stub.file_downloads("file-1") == 0


def test_a_short_file_is_caught_up_front_by_content_length(stub, client):
    data, url = add_file(stub)
    stub.set_file_mode("file-1", "short", times=1)
    with pytest.raises(DownloadError) as caught:
        client.open_download(url, expected_size=len(data), kind="media")
    assert caught.value.retryable and "Content-Length" in str(caught.value)
    assert read_all(client.open_download(url, expected_size=len(data), kind="media")) == data


def test_a_short_file_without_content_length_fails_at_the_end_of_iteration(stub, client):
    data, url = add_file(stub)
    stub.set_file_mode("file-1", "short_no_length")
    download = client.open_download(url, expected_size=len(data), kind="media")
    assert download.size == len(data)
    received = []
    with pytest.raises(DownloadError) as caught:
        for chunk in download:
            received.append(chunk)
    assert caught.value.retryable and "expected" in str(caught.value)
    assert len(b"".join(received)) == len(data) * 3 // 4


def test_a_file_that_keeps_coming_is_cut_off_at_its_file_size(stub, client):
    # No Content-Length, and far more bytes than Zoom's file_size: refused as they arrive.
    data, url = add_file(stub)
    stub.set_file_mode("file-1", "endless_no_length")
    received = 0
    with pytest.raises(DownloadError) as caught:
        for chunk in client.open_download(url, expected_size=len(data), kind="media"):
            received += len(chunk)
    assert not caught.value.retryable and "more than" in str(caught.value)
    assert received <= len(data)


def test_a_length_other_than_expected_fails(stub, client):
    data, url = add_file(stub)
    with pytest.raises(DownloadError) as caught:
        client.open_download(url, expected_size=len(data) + 1, kind="media")
    assert caught.value.retryable


def test_a_redirect_off_the_allow_list_is_refused(stub, client):
    data, url = add_file(stub)
    stub.set_file_mode("file-1", "redirect_offlist")
    with pytest.raises(DownloadError) as caught:
        client.open_download(url, expected_size=len(data), kind="media")
    assert not caught.value.retryable and "localhost" in str(caught.value)
    assert stub.requests_to("/files/") == []


def test_the_allow_list_matches_the_port_too(stub):
    # Another service on an allowed host (here the same machine, another port) is refused.
    data, url = add_file(stub)
    for hosts, allowed in [((f"127.0.0.1:{stub.port}",), True), (("127.0.0.1",), False),
                           ((f"127.0.0.1:{stub.port + 1}",), False), ((f"*.0.0.1:{stub.port}",), True)]:
        zoom = ZoomClient(stub.account_id, stub.client_id, stub.client_secret,
                          api_base_url=stub.api_base_url, oauth_url=stub.oauth_url,
                          download_hosts=hosts, timeout=5)
        if allowed:
            assert read_all(zoom.open_download(url, expected_size=len(data), kind="media",
                                               download_token=stub.issue_download_token())) == data
        else:
            with pytest.raises(DownloadError, match="not an allowed Zoom download host"):
                zoom.open_download(url, expected_size=len(data), kind="media")


def test_too_many_redirects_are_refused(stub, client):
    data, url = add_file(stub)
    stub.set_file_mode("file-1", "redirect_loop")
    with pytest.raises(DownloadError) as caught:
        client.open_download(url, expected_size=len(data), kind="media")
    assert not caught.value.retryable
    assert len(stub.requests_to("/rec/download/")) == 6          # the URL and 5 redirects


@pytest.mark.parametrize("url", [
    "http://localhost:{port}/rec/download/file-1",
    "ftp://127.0.0.1:{port}/rec/download/file-1",
    "http://127.0.0.1@localhost:{port}/rec/download/file-1",
    "http://127.0.0.1.evil.example:{port}/rec/download/file-1",
])
def test_a_url_off_the_allow_list_is_refused_without_a_request(stub, client, url):
    add_file(stub)
    with pytest.raises(DownloadError) as caught:
        client.open_download(url.format(port=stub.port), expected_size=None, kind="media",
                             download_token="dl-secret-token")
    assert not caught.value.retryable
    assert stub.requests == []
    assert_no_secrets(caught.value, ["dl-secret-token"])


def test_default_allow_list_is_zoom_and_its_subdomains():
    client = ZoomClient(None, None, None)
    for url in ("https://evil.example/rec/download/x", "https://zoom.us.evil.example/x",
                "https://notzoom.us/x", "http://localhost/x"):
        with pytest.raises(DownloadError) as caught:
            client.open_download(url, expected_size=None, kind="media")
        assert not caught.value.retryable


def test_leaving_early_closes_the_stream(stub, client):
    stub.slow_delay = 0.01
    data, url = add_file(stub, size=120_000)
    stub.set_file_mode("file-1", "slow")
    with client.open_download(url, expected_size=len(data), kind="media",
                              chunk_size=4096) as download:
        first = next(iter(download))
    assert first == data[:len(first)]
    assert stub.file_downloads("file-1") == 0


def test_a_download_reads_only_once(stub, client):
    data, url = add_file(stub)
    with client.open_download(url, expected_size=len(data), kind="media") as download:
        assert b"".join(download) == data
        with pytest.raises(ZoomError):
            iter(download)


# --- fixtures -------------------------------------------------------------------------------

EXPECTED_FIXTURES = {
    "endpoint_url_validation", "recording_completed", "recording_completed_audio_only",
    "recording_completed_processing", "recording_completed_double_slash_uuid",
    "recording_completed_expired_token", "recording_completed_duplicate_other_token",
    "recording_transcript_completed", "recording_completed_participant_audio",
    "meeting_ended", "meeting_started"}


def files_of(payload):
    obj = payload["payload"]["object"]
    return (obj.get("recording_files") or []) + (obj.get("participant_audio_files") or [])


def test_every_fixture_is_there_and_well_formed():
    assert EXPECTED_FIXTURES <= set(fixture_names())
    for name in fixture_names():
        payload, body = load_fixture(name, "http://files.test")
        assert json.loads(body) == payload
        assert isinstance(payload["event"], str) and isinstance(payload["event_ts"], int)
        obj = payload["payload"].get("object")
        if payload["event"].startswith("recording."):
            assert obj["host_id"] == HOST_ID and obj["host_email"] == HOST_EMAIL
            for f in files_of(payload):
                assert f["download_url"].startswith("http://files.test/rec/download/")
                if f.get("id"):
                    assert f["download_url"].endswith("/" + f["id"])
                    assert 1_000 <= f["file_size"] <= 400_000
            assert obj["total_size"] == sum(f.get("file_size", 0)
                                            for f in obj["recording_files"])


def test_fixture_relations():
    load = {n: load_fixture(n, FIXTURE_FILE_HOST)[0] for n in EXPECTED_FIXTURES}
    main, dup = load["recording_completed"], load["recording_completed_duplicate_other_token"]
    assert main["payload"] == dup["payload"]
    assert main["download_token"] != dup["download_token"]
    assert main["event_ts"] != dup["event_ts"]
    types = [f["file_type"] for f in files_of(main)]
    assert types == ["MP4", "M4A", "TRANSCRIPT", "CHAT", "TIMELINE"]
    timeline = files_of(main)[-1]
    assert not {"id", "status", "file_size"} & set(timeline)
    transcript = load["recording_transcript_completed"]
    assert "download_token" not in transcript
    assert transcript["payload"]["object"]["uuid"] == main["payload"]["object"]["uuid"]
    assert [f["file_type"] for f in files_of(transcript)] == ["TRANSCRIPT"]
    assert load["recording_completed_expired_token"]["download_token"] == EXPIRED_DOWNLOAD_TOKEN
    uuid = load["recording_completed_double_slash_uuid"]["payload"]["object"]["uuid"]
    assert uuid.startswith("/") or "//" in uuid
    processing = load["recording_completed_processing"]
    assert [f["status"] for f in files_of(processing)] == ["processing", "completed"]
    assert [f["file_type"] for f in files_of(load["recording_completed_audio_only"])] == ["M4A"]
    assert load["recording_completed_participant_audio"]["payload"]["object"][
        "participant_audio_files"]
    ended = load["meeting_ended"]["payload"]["object"]
    assert ended["uuid"] not in {load[n]["payload"]["object"]["uuid"]
                                 for n in EXPECTED_FIXTURES if n.startswith("recording")}


@pytest.mark.parametrize("name", sorted(EXPECTED_FIXTURES - {"endpoint_url_validation"}))
def test_fixture_files_download_through_the_stub(stub, client, name):
    payload, _ = load_fixture(name, stub.base_url)
    register_fixture_files(stub, payload)
    obj = payload["payload"]["object"]
    token = payload.get("download_token")
    for f in files_of(payload):
        if not f.get("id") or f.get("status") != "completed":
            continue
        kind = "media" if f["file_type"] in ("MP4", "M4A") else "text"
        data = read_all(client.open_download(f["download_url"], expected_size=f["file_size"],
                                             kind=kind, download_token=token))
        assert len(data) == f["file_size"]
        if f["file_type"] == "MP4":
            assert data[4:8] == b"ftyp"
        if f["file_type"] == "TRANSCRIPT":
            assert data.startswith(b"WEBVTT\n")
    assert CLIENT_EMAIL in client.meeting_invitee_emails(obj["id"])
    if payload["event"] == "meeting.started":
        return
    rec = client.get_recordings(obj["uuid"])
    expected = ([f["id"] for f in obj["recording_files"] if f.get("id")]
                if obj.get("recording_files")
                else [f["id"] for f in ended_meeting_files(obj, stub.base_url)])
    assert [f["id"] for f in rec["recording_files"] if f.get("id")] == expected
    for f in rec["recording_files"]:
        if f.get("id") and f["status"] == "completed":
            got = read_all(client.open_download(f["download_url"], kind="media"
                                                if f["file_type"] in ("MP4", "M4A") else "text",
                                                expected_size=f["file_size"],
                                                download_token=rec["download_access_token"]))
            assert len(got) == f["file_size"]


def test_transcript_fixture_adds_to_the_registered_meeting(stub, client):
    for name in ("recording_completed", "recording_transcript_completed"):
        register_fixture_files(stub, load_fixture(name, stub.base_url)[0])
    rec = client.get_recordings(UUID)
    assert [f["file_type"] for f in rec["recording_files"]] == [
        "MP4", "M4A", "TRANSCRIPT", "CHAT", "TIMELINE"]
    assert [m["uuid"] for m in client.list_user_recordings(
        HOST_ID, date(2024, 5, 1), date(2024, 5, 31))] == [UUID]
