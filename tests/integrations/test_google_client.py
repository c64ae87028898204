"""GoogleClient against the local Google stand-in, through the real googleapiclient (static
discovery documents), google-auth and httplib2: Meet, People, Drive (a 300 MB streamed
download, resumed after a 5xx and a dropped connection), Workspace Events subscriptions,
token refresh, domain-wide delegation and the coach's OAuth consent."""

import hashlib
import tracemalloc
from urllib.parse import parse_qs, urlsplit

import google.auth.jwt as google_jwt
import pytest
import requests

from integrations import google
from integrations.google import GoogleApiError, GoogleAuthError, GoogleClient
from tests.googlestub import (CLIENT_EMAIL, CLIENT_NAME, CLIENT_USER, COACH_EMAIL, COACH_NAME,
                              COACH_USER, CONFERENCE, PUBSUB_TOPIC, RECORDING, TRANSCRIPT,
                              GoogleStub, SeededBlob)

MiB = 1 << 20


@pytest.fixture(scope="module")
def stub():
    with GoogleStub(page_size=2) as s:
        s.add_conference(CONFERENCE)
        s.add_participant(CONFERENCE, user=COACH_USER, display_name=COACH_NAME, participant_id="p1")
        s.add_participant(CONFERENCE, user=CLIENT_USER, display_name=CLIENT_NAME, participant_id="p2")
        s.add_participant(CONFERENCE, kind="anonymous", display_name="Guest", participant_id="p3")
        s.add_participant(CONFERENCE, kind="phone", display_name="+44 *** *** 123", participant_id="p4")
        s.add_participant(CONFERENCE, user="users/33333", display_name="Hidden", participant_id="p5")
        s.add_recording(RECORDING, drive_file="rec1-file")
        s.add_recording(f"{CONFERENCE}/recordings/rec0", state="STARTED", drive_file=None,
                        end_time=None)
        s.add_transcript(TRANSCRIPT, entries=[
            {"participant": "p1", "text": "How has the week been?"},
            {"participant": "p2", "text": "Busy, but I kept the morning routine."},
            {"participant": "p1", "text": "What made that possible?"},
            {"participant": "p2", "text": "Writing it down the night before."},
            {"participant": "p1", "text": "Let's keep that as homework."},
        ])
        s.add_person(COACH_USER, [COACH_EMAIL])
        s.add_person(CLIENT_USER, [CLIENT_EMAIL, "sam.personal@example.org"])
        s.add_person("users/33333", hidden=True)
        yield s


@pytest.fixture
def client(stub):
    creds = google.user_credentials(stub.issue_refresh_token(), **stub.oauth_kwargs())
    with GoogleClient(creds, api_base_url=stub.api_base_url, sleep=lambda s: None) as c:
        yield c


# --- Meet and People --------------------------------------------------------------------------

def test_recording_transcript_and_conference(client):
    recording = client.get_recording(RECORDING)
    assert recording["state"] == "FILE_GENERATED"
    assert recording["driveDestination"]["file"] == "rec1-file"
    assert client.get_conference(CONFERENCE)["endTime"] == "2024-05-14T16:01:10Z"
    transcript = client.get_transcript(TRANSCRIPT)
    assert transcript["docsDestination"]["document"]
    assert [r["name"] for r in client.recordings(CONFERENCE)] == [
        RECORDING, f"{CONFERENCE}/recordings/rec0"]
    assert [t["name"] for t in client.transcripts(CONFERENCE)] == [TRANSCRIPT]


def test_transcript_entries_come_from_every_page(client, stub):
    stub.clear_requests()
    entries = client.transcript_entries(TRANSCRIPT)
    assert [e["text"] for e in entries][:2] == ["How has the week been?",
                                                "Busy, but I kept the morning routine."]
    assert len(entries) == 5
    assert entries[1]["participant"] == f"{CONFERENCE}/participants/p2"
    pages = stub.requests_to(f"/v2/{TRANSCRIPT}/entries")
    assert len(pages) == 3                                   # page size 2
    assert pages[1].param("pageToken")


def test_participants_and_their_emails(client):
    people = client.participants(CONFERENCE)
    assert len(people) == 5
    signed_in = [p["signedinUser"] for p in people if "signedinUser" in p]
    assert [u["user"] for u in signed_in] == [COACH_USER, CLIENT_USER, "users/33333"]
    assert {"anonymousUser", "phoneUser"} <= {k for p in people for k in p}
    assert client.person_email(CLIENT_USER) == CLIENT_EMAIL      # the primary one
    assert client.person_email(COACH_USER) == COACH_EMAIL
    assert client.person_email("users/33333") is None            # hidden from us
    assert client.person_email("users/99999") is None            # unknown to People


def test_person_lookup_asks_for_emails_only(client, stub):
    stub.clear_requests()
    client.person_email(CLIENT_USER)
    [req] = stub.requests_to("/v1/people/22222")
    assert req.param("personFields") == "emailAddresses"
    assert set(req.query["sources"]) == set(google.PEOPLE_SOURCES)


def test_missing_resources_and_bad_names(client):
    with pytest.raises(GoogleApiError) as err:
        client.get_recording(f"{CONFERENCE}/recordings/nope")
    assert err.value.status == 404 and not err.value.retryable
    with pytest.raises(ValueError):
        client.get_recording("conferenceRecords/x/recordings/../../../drive/v3/files/y")
    with pytest.raises(ValueError):
        client.person_email("people/me")


def test_5xx_is_retried_and_a_lasting_one_raises(client, stub, monkeypatch):
    # googleapiclient backs off with time.sleep between its retries; record instead of wait.
    naps = []
    monkeypatch.setattr("googleapiclient.http.time.sleep", naps.append)
    stub.clear_requests()
    stub.fail_next(f"/v2/{RECORDING}", 503)
    assert client.get_recording(RECORDING)["state"] == "FILE_GENERATED"
    assert len(stub.requests_to(f"/v2/{RECORDING}")) == 2 and len(naps) == 1
    stub.fail_next(f"/v2/{RECORDING}", 500, times=client.num_retries + 1)
    with pytest.raises(GoogleApiError) as err:
        client.get_recording(RECORDING)
    assert err.value.status == 500 and err.value.retryable
    assert len(stub.requests_to(f"/v2/{RECORDING}")) == 2 + client.num_retries + 1


# --- credentials ------------------------------------------------------------------------------

def test_token_refresh_against_the_token_endpoint(stub):
    refresh_token = stub.issue_refresh_token()
    creds = google.user_credentials(refresh_token, **stub.oauth_kwargs())
    client = GoogleClient(creds, api_base_url=stub.api_base_url)
    before = len(stub.token_requests("refresh_token"))
    client.get_conference(CONFERENCE)
    client.get_conference(CONFERENCE)
    forms = stub.token_requests("refresh_token")[before:]
    assert len(forms) == 1                                   # one token, reused
    assert forms[0]["refresh_token"] == refresh_token
    assert "scope" not in forms[0]                           # every granted scope
    assert "client_secret" in forms[0] and forms[0]["client_id"] == stub.client_id
    stub.expire_access_tokens()                              # a 401 refreshes and retries once
    client.get_conference(CONFERENCE)
    assert len(stub.token_requests("refresh_token")) - before == 2


def test_revoked_refresh_token_is_an_auth_error_without_the_token(stub):
    refresh_token = stub.issue_refresh_token()
    stub.revoke_refresh_token(refresh_token)
    creds = google.user_credentials(refresh_token, **stub.oauth_kwargs())
    client = GoogleClient(creds, api_base_url=stub.api_base_url)
    with pytest.raises(GoogleAuthError) as err:
        client.get_recording(RECORDING)
    assert "invalid_grant" in str(err.value)
    assert not err.value.retryable
    assert refresh_token not in str(err.value) and stub.client_secret not in str(err.value)


def test_scopes_the_stub_enforces_are_enough_and_needed(stub):
    creds = google.user_credentials(stub.issue_refresh_token(scopes=[google.SCOPE_MEET]),
                                    **dict(stub.oauth_kwargs()), scopes=[google.SCOPE_MEET])
    client = GoogleClient(creds, api_base_url=stub.api_base_url)
    assert client.get_recording(RECORDING)
    with pytest.raises(GoogleApiError) as err:
        client.drive_file_size("rec1-file")
    assert err.value.status == 403


def test_domain_wide_delegation_with_a_generated_key_file(stub):
    info = stub.service_account_info()
    creds = google.delegated_credentials(info, COACH_EMAIL)
    client = GoogleClient(creds, api_base_url=stub.api_base_url)
    assert client.get_recording(RECORDING)["state"] == "FILE_GENERATED"
    [form] = stub.token_requests("urn:ietf:params:oauth:grant-type:jwt-bearer")
    claims = google_jwt.decode(form["assertion"], certs=stub.service_account_key.certificate_pem,
                               audience=google.GOOGLE_TOKEN_URI)
    assert claims["sub"] == COACH_EMAIL
    assert claims["iss"] == info["client_email"]
    assert set(claims["scope"].split()) == set(google.SCOPES)


def test_coach_consent_round_trip(stub, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")     # the stub speaks plain http
    redirect = "https://holdspace.example.com/coach/google/callback"
    state = "st-8f3a1c"
    stub.grant_scopes = [*google.OAUTH_SCOPES, "https://www.googleapis.com/auth/calendar.readonly"]
    try:
        url = google.authorization_url(stub.client_id, stub.client_secret, redirect, state,
                                       auth_uri=stub.auth_url, token_uri=stub.token_url)
        query = parse_qs(urlsplit(url).query)
        assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
        assert query["include_granted_scopes"] == ["true"]
        assert query["code_challenge_method"] == ["S256"] and query["state"] == [state]
        assert set(query["scope"][0].split()) == set(google.OAUTH_SCOPES)
        back = requests.get(url, allow_redirects=False, timeout=10)
        assert back.status_code == 302
        location = urlsplit(back.headers["Location"])
        code = parse_qs(location.query)["code"][0]
        assert parse_qs(location.query)["state"] == [state]
        # Google answering with more scopes than asked (include_granted_scopes) is fine.
        tokens = google.exchange_code(code, client_id=stub.client_id,
                                      client_secret=stub.client_secret, redirect_uri=redirect,
                                      state=state, token_uri=stub.token_url)
    finally:
        stub.grant_scopes = None
    assert tokens["refresh_token"] and tokens["access_token"]
    assert tokens["google_user_id"] == COACH_USER.split("/")[1]
    assert tokens["email"] == COACH_EMAIL
    assert tokens["missing_scopes"] == []
    client = GoogleClient(google.user_credentials(tokens["refresh_token"], **stub.oauth_kwargs()),
                          api_base_url=stub.api_base_url)
    assert client.get_recording(RECORDING)["state"] == "FILE_GENERATED"
    # The code is single-use; a second exchange is refused without echoing it.
    with pytest.raises(GoogleAuthError) as err:
        google.exchange_code(code, client_id=stub.client_id, client_secret=stub.client_secret,
                             redirect_uri=redirect, state=state, token_uri=stub.token_url)
    assert code not in str(err.value)


def test_consent_with_unticked_scopes_reports_them(stub, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    redirect = "https://holdspace.example.com/coach/google/callback"
    stub.grant_scopes = [*google.SIGN_IN_SCOPES, google.SCOPE_MEET]
    try:
        url = google.authorization_url(stub.client_id, stub.client_secret, redirect, "s2",
                                       auth_uri=stub.auth_url, token_uri=stub.token_url)
        code = parse_qs(urlsplit(requests.get(url, allow_redirects=False, timeout=10)
                                 .headers["Location"]).query)["code"][0]
        tokens = google.exchange_code(code, client_id=stub.client_id,
                                      client_secret=stub.client_secret, redirect_uri=redirect,
                                      state="s2", token_uri=stub.token_url)
    finally:
        stub.grant_scopes = None
    assert set(tokens["missing_scopes"]) == set(google.SCOPES) - {google.SCOPE_MEET}


def test_pkce_verifier_is_bound_to_state_and_secret(stub, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    redirect = "https://holdspace.example.com/cb"
    url = google.authorization_url(stub.client_id, stub.client_secret, redirect, "right",
                                   auth_uri=stub.auth_url, token_uri=stub.token_url)
    code = parse_qs(urlsplit(requests.get(url, allow_redirects=False, timeout=10)
                             .headers["Location"]).query)["code"][0]
    with pytest.raises(GoogleAuthError):
        google.exchange_code(code, client_id=stub.client_id, client_secret=stub.client_secret,
                             redirect_uri=redirect, state="wrong", token_uri=stub.token_url)


# --- Drive ------------------------------------------------------------------------------------

def test_300_mb_recording_streams_in_chunks_with_flat_memory(client, stub):
    blob = SeededBlob(300 * MiB + 12345, seed="coaching-session-300mb")
    stub.add_drive_file("big-recording", blob)
    chunk = 16 * MiB
    assert client.drive_file_size("big-recording") == blob.size
    digest = hashlib.sha256()
    total = chunks = 0
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for piece in client.download_drive_file("big-recording", chunk_size=chunk):
            assert len(piece) <= chunk
            digest.update(piece)
            total += len(piece)
            chunks += 1
            del piece
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == blob.size
    assert chunks == -(-blob.size // chunk)
    assert digest.hexdigest() == blob.sha256()
    assert peak - base < 4 * chunk, f"peak {peak - base} bytes for {chunk}-byte chunks"
    ranges = stub.drive_ranges("big-recording")
    assert [r[0] for r in ranges] == list(range(0, blob.size, chunk))
    assert all(status == 206 for *_, status in ranges)
    assert stub.drive_bytes_served("big-recording") == blob.size


@pytest.mark.parametrize("failure", ["500", "drop"])
def test_failed_chunk_is_retried_and_resumes_from_where_it_broke_off(client, stub, failure):
    blob = SeededBlob(40 * MiB + 777, seed=f"resume-{failure}")
    file_id = f"resume-{failure}"
    stub.add_drive_file(file_id, blob)
    chunk = 8 * MiB
    pieces = client.download_drive_file(file_id, chunk_size=chunk)
    digest = hashlib.sha256()
    got = 0
    for piece in pieces:
        digest.update(piece)
        got += len(piece)
        if got == 2 * chunk:
            # Break the third chunk: a 500 before any byte, or a body cut after 3 MiB.
            stub.fail_drive(file_id, failure, after_bytes=3 * MiB)
    assert got == blob.size
    assert digest.hexdigest() == blob.sha256()
    starts = [start for start, _, _ in stub.drive_ranges(file_id)]
    assert starts[:4] == [0, chunk, 2 * chunk, 2 * chunk]     # the retry resumes at 16 MiB
    assert stub.drive_ranges(file_id)[2][2] == (500 if failure == "500" else 206)
    served = stub.drive_bytes_served(file_id)
    assert blob.size <= served <= blob.size + chunk
    if failure == "drop":
        assert served == blob.size + 3 * MiB


def test_download_from_an_offset_and_past_the_end(client, stub):
    data = bytes(range(256)) * 4096                            # 1 MiB
    stub.add_drive_file("small", data)
    assert b"".join(client.download_drive_file("small", chunk_size=300_000)) == data
    assert b"".join(client.download_drive_file("small", start=1000, chunk_size=300_000)) == data[1000:]
    assert b"".join(client.download_drive_file("small", start=len(data))) == b""
    stub.add_drive_file("empty", b"")
    assert b"".join(client.download_drive_file("empty")) == b""
    # A file served from a generator factory (the stub skips to each range).
    stub.add_drive_file("generated", lambda: (bytes([i]) * 70_000 for i in range(20)),
                        size=1_400_000)
    whole = b"".join(bytes([i]) * 70_000 for i in range(20))
    assert b"".join(client.download_drive_file("generated", start=123_456,
                                               chunk_size=250_000)) == whole[123_456:]


def test_download_gives_up_after_bounded_failures(client, stub):
    stub.add_drive_file("flaky", b"x" * (3 * MiB))
    pieces = client.download_drive_file("flaky", chunk_size=MiB)
    assert len(next(pieces)) == MiB
    stub.fail_drive("flaky", "503", times=client.download_attempts)
    with pytest.raises(GoogleApiError) as err:
        list(pieces)
    assert err.value.status == 503 and err.value.retryable
    assert "gave up" in str(err.value)
    with pytest.raises(GoogleApiError) as err:
        list(client.download_drive_file("nope"))
    assert err.value.status == 404


# --- Workspace Events -------------------------------------------------------------------------

@pytest.mark.parametrize("operation_polls", [0, 2])
def test_subscription_create_renew_get_delete(stub, operation_polls):
    stub.operation_polls = operation_polls
    user = f"users/{70000 + operation_polls}"
    creds = google.user_credentials(stub.issue_refresh_token(user), **stub.oauth_kwargs())
    client = GoogleClient(creds, api_base_url=stub.api_base_url, sleep=lambda s: None)
    try:
        target = google.user_target(user)
        sub = client.create_subscription(target, google.MEET_EVENT_TYPES, PUBSUB_TOPIC,
                                         ttl_seconds=86400)
        assert sub["name"].startswith("subscriptions/")
        assert sub["state"] == "ACTIVE" and sub["targetResource"] == target
        assert "@type" not in sub
        [create] = stub.requests_to("/v1/subscriptions", "POST")[-1:]
        assert create.json()["ttl"] == "86400s"
        assert create.json()["notificationEndpoint"] == {"pubsubTopic": PUBSUB_TOPIC}
        polls = stub.requests_to("/v1/operations/")
        assert len(polls) >= operation_polls

        renewed = client.renew_subscription(sub["name"], 7 * 86400)
        assert renewed["expireTime"] > sub["expireTime"]
        [patch] = stub.requests_to(f"/v1/{sub['name']}", "PATCH")
        assert patch.param("updateMask") == "ttl" and patch.json() == {"ttl": "604800s"}
        assert client.get_subscription(sub["name"])["expireTime"] == renewed["expireTime"]
        assert [s["name"] for s in client.list_subscriptions(google.RECORDING_GENERATED,
                                                             target)] == [sub["name"]]

        with pytest.raises(GoogleApiError) as err:       # one subscription per user and target
            client.create_subscription(target, google.MEET_EVENT_TYPES, PUBSUB_TOPIC)
        assert err.value.status == 409

        stub.suspend_subscription(sub["name"])
        assert client.get_subscription(sub["name"])["state"] == "SUSPENDED"
        assert client.reactivate_subscription(sub["name"])["state"] == "ACTIVE"

        client.delete_subscription(sub["name"])
        assert client.get_subscription(sub["name"]) is None
        client.delete_subscription(sub["name"])          # already gone: fine
        stub.expire_subscription("subscriptions/never-existed")
        with pytest.raises(GoogleApiError) as err:       # expired: renew is a 404
            client.renew_subscription(sub["name"])
        assert err.value.status == 404
    finally:
        stub.operation_polls = 0


def test_user_target():
    assert google.user_target("users/11111") == "//cloudidentity.googleapis.com/users/11111"
    assert google.user_target("11111") == "//cloudidentity.googleapis.com/users/11111"
    with pytest.raises(ValueError):
        google.user_target("users/../x")


def test_static_discovery_documents_are_bundled():
    from googleapiclient.discovery_cache import get_static_doc
    for api, version in [("meet", "v2"), ("drive", "v3"), ("people", "v1"),
                         ("workspaceevents", "v1")]:
        assert get_static_doc(api, version), f"{api} {version} not bundled"
