"""The Google endpoint's answers: push tokens (signature, audience, issuer, service account,
expiry), malformed envelopes, unknown events, duplicate deliveries and the unconfigured 503.
Tokens are signed with a locally generated key whose certificate the stub serves."""

import base64
import json
import time

import pytest
from sqlmodel import select

from integrations import google
from models import InboxEvent
from tests.googlestub import (CONFERENCE, PUSH_AUDIENCE, PUSH_SERVICE_ACCOUNT, RECORDING,
                              TRANSCRIPT, WORKSPACE_SUBSCRIPTION, GoogleStub, SigningKey,
                              fixture_names, load_push_fixture, make_push, push_data)
from workers import inbox


@pytest.fixture(scope="module")
def stub():
    with GoogleStub() as s:
        yield s


@pytest.fixture
def hs(hs_factory, database_url, stub):
    hs = hs_factory(database_url, GOOGLE_PUBSUB_AUDIENCE=PUSH_AUDIENCE,
                    GOOGLE_PUBSUB_SERVICE_ACCOUNT=PUSH_SERVICE_ACCOUNT,
                    GOOGLE_CERTS_URL=stub.certs_url)
    _register(hs.app)
    return hs


def _register(app):
    # Until app.py registers the blueprint itself.
    if "google_webhook" not in app.blueprints:
        from webhooks.google import bp
        app.register_blueprint(bp)


def inbox_rows(hs):
    with hs.db() as db:
        return list(db.exec(select(InboxEvent)))


def queued(hs) -> list[str]:
    return hs.rt.queue("ingest").job_ids


def post(hs, body: bytes, headers: dict | None):
    return hs.http.post("/webhooks/google", data=body, headers=headers or {})


@pytest.mark.parametrize("fixture, event, resource", [
    ("recording_file_generated", google.RECORDING_GENERATED, RECORDING),
    ("transcript_file_generated", google.TRANSCRIPT_GENERATED, TRANSCRIPT),
    ("conference_ended", google.CONFERENCE_ENDED, CONFERENCE),
    ("subscription_expiration_reminder", google.EXPIRATION_REMINDER, WORKSPACE_SUBSCRIPTION),
    ("subscription_suspended", google.SUSPENDED, WORKSPACE_SUBSCRIPTION),
    ("subscription_expired", google.EXPIRED, WORKSPACE_SUBSCRIPTION),
])
def test_signed_push_is_recorded_once_and_queued(hs, stub, fixture, event, resource):
    envelope, body = load_push_fixture(fixture)
    resp = post(hs, body, stub.push_headers())
    assert resp.status_code == 204
    assert resp.data == b""
    [row] = inbox_rows(hs)
    assert (row.platform, row.event, row.status) == ("google", event, "received")
    ce_id = envelope["message"]["attributes"]["ce-id"]
    assert row.dedupe_key == f"google:{event}:{ce_id}:{resource}"
    assert row.payload["messageId"] == envelope["message"]["messageId"]
    assert row.payload["subscription"] == envelope["subscription"]
    assert row.payload["attributes"] == envelope["message"]["attributes"]
    assert row.payload["resourceName"] == resource
    assert row.payload["data"] == push_data(envelope)
    assert queued(hs) == [inbox.job_id(row.id)]
    message = google.PushMessage.from_payload(row.payload)
    assert message.resource_name == resource
    assert message.workspace_subscription == WORKSPACE_SUBSCRIPTION


def test_lifecycle_payload_keeps_the_subscription_state(hs, stub):
    _, body = load_push_fixture("subscription_suspended")
    assert post(hs, body, stub.push_headers()).status_code == 204
    [row] = inbox_rows(hs)
    assert row.payload["data"]["subscription"]["state"] == "SUSPENDED"
    assert row.payload["data"]["subscription"]["suspensionReason"] == "USER_SCOPE_REVOKED"


def test_redelivery_with_another_message_id_is_one_row(hs, stub):
    first, body = load_push_fixture("recording_file_generated")
    again, body_again = load_push_fixture("recording_file_generated_duplicate")
    assert first["message"]["messageId"] != again["message"]["messageId"]
    assert post(hs, body, stub.push_headers()).status_code == 204
    assert post(hs, body_again, stub.push_headers()).status_code == 204
    assert post(hs, body, stub.push_headers()).status_code == 204      # the same bytes again
    assert len(inbox_rows(hs)) == 1
    assert len(queued(hs)) == 1


def test_without_ce_id_the_message_id_dedupes(hs, stub):
    data = {"recording": {"name": RECORDING}}
    envelope = json.loads(make_push(google.RECORDING_GENERATED, data, message_id="42"))
    del envelope["message"]["attributes"]["ce-id"]
    body = json.dumps(envelope).encode()
    assert post(hs, body, stub.push_headers()).status_code == 204
    assert post(hs, body, stub.push_headers()).status_code == 204
    [row] = inbox_rows(hs)
    assert row.dedupe_key == f"google:{google.RECORDING_GENERATED}:42:{RECORDING}"


def test_unknown_event_type_is_acknowledged_without_a_row(hs, stub):
    _, body = load_push_fixture("unknown_event_type")
    resp = post(hs, body, stub.push_headers())
    assert resp.status_code == 204
    assert inbox_rows(hs) == []
    assert queued(hs) == []


OTHER_KEY = SigningKey.generate()


@pytest.mark.parametrize("case", [
    "wrong_audience", "wrong_service_account", "unverified_email", "email_verified_string",
    "no_email", "expired", "wrong_issuer", "other_key_same_kid", "other_key_unknown_kid",
    "no_token", "garbled", "not_bearer", "not_a_jwt", "unsigned", "tampered_claims",
])
def test_bad_push_tokens_are_401_and_record_nothing(hs, stub, case):
    _, body = load_push_fixture("recording_file_generated")
    token = None
    if case == "wrong_audience":
        token = stub.push_token(aud="https://elsewhere.example.com/push")
    elif case == "wrong_service_account":
        token = stub.push_token(email="someone-else@attacker.iam.gserviceaccount.com")
    elif case == "unverified_email":
        token = stub.push_token(email_verified=False)
    elif case == "email_verified_string":
        token = stub.push_token(email_verified="true")
    elif case == "no_email":
        token = stub.push_token(email=None)
    elif case == "expired":
        now = int(time.time())
        token = stub.push_token(iat=now - 7200, exp=now - 3600)
    elif case == "wrong_issuer":
        token = stub.push_token(iss="https://evil.example.com")
    elif case == "other_key_same_kid":
        forged = SigningKey(stub.key.key_id, OTHER_KEY.private_pem, OTHER_KEY.certificate_pem)
        token = stub.push_token(key=forged)
    elif case == "other_key_unknown_kid":
        token = stub.push_token(key=OTHER_KEY)
    elif case == "unsigned":
        head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        claims = base64.urlsafe_b64encode(json.dumps(stub.push_claims()).encode()).rstrip(b"=")
        token = f"{head}.{claims.decode()}."
    elif case == "tampered_claims":
        head, _, sig = stub.push_token().split(".")
        claims = stub.push_claims(email="attacker@example.com")
        token = ".".join([head, base64.urlsafe_b64encode(json.dumps(claims).encode())
                          .rstrip(b"=").decode(), sig])
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif case == "garbled":
        headers["Authorization"] = "Bearer eyJhbGciOi.%%%garbage%%%.xyz"
    elif case == "not_bearer":
        headers["Authorization"] = f"Basic {stub.push_token()}"
    elif case == "not_a_jwt":
        headers["Authorization"] = "Bearer ya29.an-access-token-not-an-id-token"
    resp = post(hs, body, headers)
    assert resp.status_code == 401
    assert token is None or token not in resp.get_data(as_text=True)
    assert inbox_rows(hs) == []
    assert queued(hs) == []


def test_auth_is_checked_before_the_body_is_read(hs):
    resp = post(hs, b"{not json", {"Authorization": "Bearer x.y.z"})
    assert resp.status_code == 401


@pytest.mark.parametrize("body", [
    b"{not json", b"[1,2]", b"\xff\xfe", b'{"subscription": "x"}', b'{"message": "x"}',
    b'{"message": {"messageId": "1", "attributes": {"ce-type": 7}}}',
    b'{"message": {"attributes": {"ce-type": "google.workspace.meet.recording.v2.fileGenerated"}}}',
    b'{"message": {"messageId": "1", "data": "%%%not base64%%%", "attributes": {"ce-type": "google.workspace.meet.recording.v2.fileGenerated"}}}',
    b'{"message": {"messageId": "1", "data": "WzEsMl0=", "attributes": {"ce-type": "google.workspace.meet.recording.v2.fileGenerated"}}}',
    b'{"message": {"messageId": "1", "data": "e30=", "attributes": {"ce-type": "google.workspace.meet.recording.v2.fileGenerated"}}}',
])
def test_malformed_envelopes_are_400(hs, stub, body):
    resp = post(hs, body, stub.push_headers())
    assert resp.status_code == 400
    assert inbox_rows(hs) == []


@pytest.mark.parametrize("message", [
    {"messageId": "1", "attributes": {}},
    {"messageId": "2", "data": "aGVsbG8=", "attributes": {"origin": "billing-export"}},
    {"messageId": "3", "data": "e30="},
])
def test_a_pub_sub_message_that_is_not_a_workspace_event_is_acknowledged(hs, stub, message, caplog):
    # Another publisher on the topic: a 4xx would make Pub/Sub redeliver it for days.
    caplog.set_level("INFO", logger="webhooks.google")
    resp = post(hs, json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}).encode(),
                stub.push_headers())
    assert resp.status_code == 204
    assert inbox_rows(hs) == [] and queued(hs) == []
    assert "not a Workspace event" in caplog.text


def test_deeply_nested_data_is_400_not_500(hs, stub):
    deep = "[" * 100_000 + "]" * 100_000
    data = base64.b64encode(json.dumps({"recording": {"name": RECORDING}})[:-1].encode() + b', "x": ' + deep.encode() + b"}").decode()
    body = json.dumps({"message": {"messageId": "9", "data": data,
                                   "attributes": {"ce-type": google.RECORDING_GENERATED}}}).encode()
    assert post(hs, body, stub.push_headers()).status_code == 400
    assert post(hs, b'{"message": ' * 50_000 + b"1" + b"}" * 50_000, stub.push_headers()).status_code == 400
    assert inbox_rows(hs) == []


@pytest.mark.parametrize("name", [
    "conferenceRecords/abc/recordings/../../../drive/v3/files/x",
    "conferenceRecords/abc", "spaces/abc/recordings/rec1", "conferenceRecords/a b/recordings/r",
])
def test_resource_names_that_are_not_recordings_are_400(hs, stub, name):
    body = make_push(google.RECORDING_GENERATED, {"recording": {"name": name}})
    assert post(hs, body, stub.push_headers()).status_code == 400
    assert inbox_rows(hs) == []


def test_oversized_body_is_413(hs, stub):
    body = make_push(google.RECORDING_GENERATED,
                     {"recording": {"name": RECORDING}, "padding": "x" * (1 << 20)})
    resp = post(hs, body, stub.push_headers())
    assert resp.status_code == 413
    assert inbox_rows(hs) == []


@pytest.mark.parametrize("missing", ["GOOGLE_PUBSUB_AUDIENCE", "GOOGLE_PUBSUB_SERVICE_ACCOUNT"])
def test_unconfigured_endpoint_is_503(hs_factory, database_url, stub, missing):
    env = {"GOOGLE_PUBSUB_AUDIENCE": PUSH_AUDIENCE,
           "GOOGLE_PUBSUB_SERVICE_ACCOUNT": PUSH_SERVICE_ACCOUNT,
           "GOOGLE_CERTS_URL": stub.certs_url}
    del env[missing]
    hs = hs_factory(database_url, **env)
    _register(hs.app)
    _, body = load_push_fixture("recording_file_generated")
    assert post(hs, body, stub.push_headers()).status_code == 503
    assert inbox_rows(hs) == []


def test_certificates_unreachable_is_503_not_401(hs_factory, database_url, stub):
    hs = hs_factory(database_url, GOOGLE_PUBSUB_AUDIENCE=PUSH_AUDIENCE,
                    GOOGLE_PUBSUB_SERVICE_ACCOUNT=PUSH_SERVICE_ACCOUNT,
                    GOOGLE_CERTS_URL="http://127.0.0.1:9/oauth2/v1/certs")
    _register(hs.app)
    _, body = load_push_fixture("recording_file_generated")
    assert post(hs, body, stub.push_headers()).status_code == 503
    assert inbox_rows(hs) == []


def test_redis_down_still_acknowledges_and_records(hs_factory, database_url, stub):
    hs = hs_factory(database_url, GOOGLE_PUBSUB_AUDIENCE=PUSH_AUDIENCE,
                    GOOGLE_PUBSUB_SERVICE_ACCOUNT=PUSH_SERVICE_ACCOUNT,
                    GOOGLE_CERTS_URL=stub.certs_url, REDIS_URL="redis://127.0.0.1:9/0")
    _register(hs.app)
    _, body = load_push_fixture("conference_ended")
    assert post(hs, body, stub.push_headers()).status_code == 204
    assert len(inbox_rows(hs)) == 1


# --- the fixtures, verify_push and the certificate cache, without the app ---------------------

def test_every_fixture_is_a_well_formed_push():
    assert set(fixture_names()) == {
        "recording_file_generated", "recording_file_generated_duplicate",
        "transcript_file_generated", "conference_ended", "subscription_expiration_reminder",
        "subscription_suspended", "subscription_expired", "unknown_event_type"}
    for name in fixture_names():
        envelope, body = load_push_fixture(name)
        message = google.parse_push(body)
        assert message.message_id == envelope["message"]["messageId"]
        assert message.workspace_subscription == WORKSPACE_SUBSCRIPTION
        assert message.handled == (name != "unknown_event_type")
        assert message.resource_name



def test_certificates_are_fetched_once_and_refetched_for_a_rotated_key():
    with GoogleStub() as s:
        certs = google.CachedCertsRequest(min_refetch_s=0)
        kwargs = dict(audience=s.push_audience, service_account=s.push_service_account,
                      certs_url=s.certs_url, request=certs)
        for _ in range(3):
            claims = google.verify_push(f"Bearer {s.push_token()}", **kwargs)
        assert claims["email"] == s.push_service_account
        assert len(s.requests_to("/oauth2/v1/certs")) == 1
        s.rotate_key()
        google.verify_push(f"Bearer {s.push_token()}", **kwargs)
        assert len(s.requests_to("/oauth2/v1/certs")) == 2
        # A forged key id refetches at most once per min_refetch_s.
        certs.min_refetch_s = 3600
        with pytest.raises(google.PushAuthError):
            google.verify_push(f"Bearer {s.push_token(key=OTHER_KEY)}", **kwargs)
        assert len(s.requests_to("/oauth2/v1/certs")) == 2


def test_verify_push_refuses_to_run_without_an_audience():
    with pytest.raises(google.PushAuthError, match="audience"):
        google.verify_push("Bearer a.b.c", audience="", service_account="x@example.com")
