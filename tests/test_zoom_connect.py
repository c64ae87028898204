"""A coach connects their own Zoom (the user-authorised app), against the local Zoom stand-in
with no Server-to-Server credentials configured: the consent round trip with a signed state,
recordings fetched with that coach's own token, the hourly refresh with Zoom's rotating refresh
token (one refresh when many workers find it expired at once), a refusal reported once, and
`app_deauthorized` or a disconnect ending every use of the tokens."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlmodel import select

from models import AuditEvent, CoachingSession, OutboundMessage, ZoomConnection, utcnow
from tests.portalhelpers import path_of
from tests.zoomhelpers import CLIENT_EMAIL, post_zoom
from tests.zoomstub import EXPIRED_DOWNLOAD_TOKEN

BASE = "http://holdspace.test"
ACCOUNT_A, USER_A, EMAIL_A = "acctAlphaA1", "zUserAlpha000001", "casey@alpha.example"
ACCOUNT_B, USER_B, EMAIL_B = "acctBravoB2", "zUserBravo000002", "blair@bravo.example"


@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    zoom_stub.add_user(USER_A, ACCOUNT_A, EMAIL_A)
    zoom_stub.add_user(USER_B, ACCOUNT_B, EMAIL_B)
    # No ZOOM_ACCOUNT_ID / ZOOM_CLIENT_ID: only coaches' own connections can call Zoom.
    return hs_factory(database_url, smtp_url=smtp_sink.url, PUBLIC_BASE_URL=BASE,
                      SUMMARY_ENGINE="offline", **zoom_stub.app_env())


def add_coach(hs, email=EMAIL_A, name="Casey Alpha") -> str:
    return hs.run("coach", "add", "--email", email, "--name", name)


def signed_in(hs, coach_id):
    from portal.coach import login_link
    http = hs.app.test_client()
    assert http.get(path_of(login_link(hs.rt, coach_id))).status_code in (302, 303)
    return http


def csrf(http) -> str:
    with http.session_transaction() as s:
        return s["csrf"]


def start(http):
    """The coach presses Connect; the answer is the redirect to Zoom's consent page."""
    http.get("/coach/zoom")
    resp = http.post("/coach/zoom/connect", data={"csrf_token": csrf(http)})
    assert resp.status_code in (302, 303)
    return resp.headers["Location"]


def consent_at_zoom(zoom_stub, authorize_url: str, user_id: str) -> str:
    """The user clicks Allow at Zoom: the path (with code and state) Zoom sends them back to."""
    zoom_stub.signed_in_user = user_id
    back = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert back.status_code == 302
    return path_of(back.headers["Location"])


def connect(hs, zoom_stub, coach_id, user_id=USER_A):
    http = signed_in(hs, coach_id)
    resp = http.get(consent_at_zoom(zoom_stub, start(http), user_id))
    assert resp.status_code == 303 and "connected" in resp.headers["Location"]
    return http


def connection(hs, coach_id) -> ZoomConnection | None:
    with hs.db() as db:
        return db.exec(select(ZoomConnection).where(ZoomConnection.coach_id == coach_id)).first()


def expire_access_token(hs, coach_id):
    """An hour has passed since the token was issued (as the row records it)."""
    with hs.db() as db:
        conn = db.exec(select(ZoomConnection).where(ZoomConnection.coach_id == coach_id)).one()
        conn.access_expires_at = utcnow() - timedelta(minutes=1)
        db.add(conn)
        db.commit()


def recording_for(zoom_stub, host_id, uuid="ownZoomUUID00000001==", file_id="own-audio-1", account_id=ACCOUNT_A,
                  download_token=EXPIRED_DOWNLOAD_TOKEN):
    data = b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 64
    zoom_stub.add_file(file_id, data, "audio/mp4")
    f = {"id": file_id, "meeting_id": uuid, "file_type": "M4A", "file_extension": "M4A", "file_size": len(data),
         "download_url": zoom_stub.download_url_for(file_id), "status": "completed", "recording_type": "audio_only"}
    zoom_stub.add_meeting(9001, uuid, host_id=host_id, host_email="", invitees=[CLIENT_EMAIL], files=[f])
    obj = zoom_stub.recordings_object(uuid)
    return {"event": "recording.completed", "event_ts": 1, "download_token": download_token,
            "payload": {"account_id": account_id, "object": obj}}


def deauthorization(user_id=USER_A, account_id=ACCOUNT_A, client_id="stub-app-client-id"):
    return {"event": "app_deauthorized", "event_ts": 1,
            "payload": {"account_id": account_id, "user_id": user_id, "client_id": client_id,
                        "deauthorization_time": "2019-06-17T13:52:28.632Z", "signature": "x",
                        "user_data_retention": "false"}}


def bearer_requests(zoom_stub, prefix):
    return [r.authorization for r in zoom_stub.requests if r.path.startswith(prefix)]


# --- connecting -----------------------------------------------------------------------------

def test_connect_flow_stores_who_the_coach_is_and_only_sealed_tokens(hs, zoom_stub, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    coach_id = add_coach(hs)
    http = signed_in(hs, coach_id)
    page = http.get("/coach/zoom").get_data(as_text=True)
    assert 'id="zoom-connect"' in page and 'name="csrf_token"' in page

    authorize = start(http)
    parts = urlsplit(authorize)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == zoom_stub.authorize_url
    assert query["response_type"] == "code" and query["client_id"] == zoom_stub.app_client_id
    assert query["redirect_uri"] == f"{BASE}/coach/zoom/callback" and query["state"]

    done = http.get(consent_at_zoom(zoom_stub, authorize, USER_A))
    assert done.status_code == 303
    assert "is connected" in http.get(done.headers["Location"]).get_data(as_text=True)

    conn = connection(hs, coach_id)
    assert (conn.status, conn.zoom_user_id, conn.zoom_account_id) == ("active", USER_A, ACCOUNT_A)
    with hs.db() as db:
        assert hs.rt.engine and db.get(type(conn), conn.id)
        from models import Coach
        assert db.get(Coach, coach_id).zoom_user_id == USER_A
        assert db.exec(select(AuditEvent).where(AuditEvent.action == "zoom.connected")).one().coach_id == coach_id
    exchange = [r for r in zoom_stub.requests if r.path == "/oauth/token"][-1]
    assert exchange.form()["grant_type"] == "authorization_code"
    assert exchange.form()["redirect_uri"] == f"{BASE}/coach/zoom/callback"
    # The tokens are on the row only sealed; neither is anywhere in the database's files.
    refresh, = zoom_stub.live_refresh_tokens(USER_A)
    access = zoom_stub.requests[-1].authorization.split()[-1]  # the /users/me call's token
    assert access.startswith("access-")
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("holdspace.db*"))
    assert refresh.encode() not in stored and access.encode() not in stored
    assert conn.refresh_token_sealed and refresh not in conn.refresh_token_sealed
    # Nor in any log line, the HTTP libraries' debug logs included.
    from workers.platforms.zoom_tokens import zoom_for
    expire_access_token(hs, coach_id)
    zoom_for(hs.rt, coach_id).get_me()  # a refresh, and the revoke of a disconnect, log too
    http.post("/coach/zoom/disconnect", data={"csrf_token": csrf(http)})
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    tokens = {refresh, access, *[r.authorization.split()[-1] for r in zoom_stub.requests
                                 if r.authorization and "access-" in r.authorization]}
    assert len(tokens) >= 3 and not [t for t in tokens if t in logged]


@pytest.mark.parametrize("how", ["forged", "stale", "another coach's"])
def test_a_forged_stale_or_foreign_state_is_refused_and_stores_nothing(hs, zoom_stub, how):
    import time_machine
    from itsdangerous import URLSafeTimedSerializer
    coach_id, other_id = add_coach(hs), add_coach(hs, EMAIL_B, "Blair Bravo")
    http = signed_in(hs, coach_id)
    query = parse_qs(urlsplit(consent_at_zoom(zoom_stub, start(http), USER_A)).query)
    code, state = query["code"][0], query["state"][0]
    if how == "forged":
        state = URLSafeTimedSerializer("not-our-key", salt="holdspace.zoom-connect").dumps({"c": coach_id, "n": "x"})
    elif how == "another coach's":
        state = URLSafeTimedSerializer(hs.rt.settings.secret_key, salt="holdspace.zoom-connect").dumps(
            {"c": other_id, "n": "x"})
    before = len([r for r in zoom_stub.requests if r.path == "/oauth/token"])
    later = utcnow() + timedelta(minutes=16 if how == "stale" else 0)
    with time_machine.travel(later, tick=True):
        resp = http.get(f"/coach/zoom/callback?code={code}&state={state}")
    assert 400 <= resp.status_code < 500
    assert connection(hs, coach_id) is None and connection(hs, other_id) is None
    assert len([r for r in zoom_stub.requests if r.path == "/oauth/token"]) == before  # Zoom never asked


def test_a_zoom_user_already_connected_to_another_coach_is_refused(hs, zoom_stub):
    first, second = add_coach(hs), add_coach(hs, EMAIL_B, "Blair Bravo")
    connect(hs, zoom_stub, first, USER_A)
    http = signed_in(hs, second)
    resp = http.get(consent_at_zoom(zoom_stub, start(http), USER_A))
    assert "already connected to another" in http.get(resp.headers["Location"]).get_data(as_text=True)
    assert connection(hs, second) is None and connection(hs, first).status == "active"


# --- using the coach's own token ------------------------------------------------------------

def test_a_recording_is_fetched_with_the_coachs_own_token_and_no_s2s_app(hs, zoom_stub):
    coach_id = add_coach(hs)
    hs.run("client", "add", "--coach-email", EMAIL_A, "--email", CLIENT_EMAIL, "--name", "Robin Client")
    hs.run("consent", "grant", "--client-email", CLIENT_EMAIL, "--method", "written")
    connect(hs, zoom_stub, coach_id)
    assert not hs.rt.zoom.configured  # no Server-to-Server app at all

    # The webhook's download token is already expired: the coach's own token must fetch it.
    assert post_zoom(hs.http, recording_for(zoom_stub, USER_A)).status_code == 200
    hs.drain()
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
        assert session.coach_id == coach_id and session.client_id is not None
        assert session.state in ("stored", "transcribing", "summarising", "delivered")
    assert zoom_stub.file_downloads("own-audio-1") == 1
    user_tokens = {a for a in bearer_requests(zoom_stub, "/rec/download/") if a and "access-" in a}
    assert user_tokens, "the download fell back to the coach's access token"
    # The client was matched through the coach's own API access (the invitee list).
    assert any(a and "access-" in a for a in bearer_requests(zoom_stub, "/v2/meetings/9001"))


def test_an_event_of_another_account_is_not_the_coachs(hs, zoom_stub):
    coach_id = add_coach(hs)
    connect(hs, zoom_stub, coach_id)
    event = recording_for(zoom_stub, USER_A, account_id="someOtherAccount")
    assert post_zoom(hs.http, event).status_code == 200
    hs.drain()
    with hs.db() as db:
        assert db.exec(select(CoachingSession)).all() == []
    assert zoom_stub.file_downloads("own-audio-1") == 0


def test_an_expired_access_token_is_refreshed_once_and_the_new_refresh_token_kept(hs, zoom_stub):
    from workers.platforms.zoom_tokens import zoom_for
    coach_id = add_coach(hs)
    connect(hs, zoom_stub, coach_id)
    first_refresh, = zoom_stub.live_refresh_tokens(USER_A)
    expire_access_token(hs, coach_id)

    assert zoom_for(hs.rt, coach_id).get_me()["id"] == USER_A
    assert zoom_stub.refreshes == 1
    second_refresh, = zoom_stub.live_refresh_tokens(USER_A)
    assert second_refresh != first_refresh  # rotated: the first is dead at Zoom
    conn = connection(hs, coach_id)
    assert conn.access_expires_at > utcnow() + timedelta(minutes=30) and conn.refresh_lease_until is None
    # The next call uses the stored token without refreshing again.
    zoom_for(hs.rt, coach_id).get_me()
    assert zoom_stub.refreshes == 1


def test_a_token_zoom_kills_early_is_refreshed_and_the_call_retried(hs, zoom_stub):
    from workers.platforms.zoom_tokens import zoom_for
    coach_id = add_coach(hs)
    connect(hs, zoom_stub, coach_id)
    zoom_stub.expire_user_access_tokens(USER_A)  # a 401 (code 124) although not yet expired
    assert zoom_for(hs.rt, coach_id).get_me()["id"] == USER_A
    assert zoom_stub.refreshes == 1


def test_workers_refreshing_at_once_make_one_refresh_and_lose_no_token(hs_factory, both_databases, zoom_stub):
    """Eight workers, each with its own database connection, find the token expired together;
    Zoom takes a moment to answer. One refresh is made; the others are told to come back (a job
    never sleeps) and then use its token; the stored refresh token is the live one."""
    from workers.platforms.zoom_tokens import ZoomTokenBusy, access_token
    zoom_stub.add_user(USER_A, ACCOUNT_A, EMAIL_A)
    hs = hs_factory(both_databases, PUBLIC_BASE_URL=BASE, **zoom_stub.app_env())
    coach_id = add_coach(hs)
    connect(hs, zoom_stub, coach_id)
    old_token = access_token(hs.rt, coach_id)
    expire_access_token(hs, coach_id)
    zoom_stub.refresh_delay = 0.3

    barrier, got, busy, errors = threading.Barrier(8), [], [], []

    def worker():
        barrier.wait()
        try:
            got.append(access_token(hs.rt, coach_id))
        except ZoomTokenBusy as exc:
            busy.append(exc)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(got) + len(busy) == 8 and got and busy
    assert all(b.retryable and b.retry_after for b in busy)
    # The jobs that were told to come back now find the new token, with no second refresh.
    got += [access_token(hs.rt, coach_id) for _ in busy]
    assert zoom_stub.refreshes == 1 and zoom_stub.refused_refreshes == 0
    assert len(set(got)) == 1 and got[0] != old_token
    live, = zoom_stub.live_refresh_tokens(USER_A)
    conn = connection(hs, coach_id)
    assert hs.rt.vault.unseal(conn.refresh_token_sealed, f"zoom-refresh-token:{coach_id}").decode() == live
    hs.rt.engine.dispose()


def test_a_recording_whose_token_another_worker_is_refreshing_is_fetched_on_the_retry(hs, zoom_stub):
    """The refresh lease is held (another worker mid-refresh): the ingest job is put off, not
    failed, and the retry fetches the recording once the lease is free."""
    coach_id = add_coach(hs)
    hs.run("client", "add", "--coach-email", EMAIL_A, "--email", CLIENT_EMAIL, "--name", "Robin Client")
    hs.run("consent", "grant", "--client-email", CLIENT_EMAIL, "--method", "written")
    connect(hs, zoom_stub, coach_id)
    expire_access_token(hs, coach_id)
    with hs.db() as db:
        conn = db.exec(select(ZoomConnection).where(ZoomConnection.coach_id == coach_id)).one()
        conn.refresh_lease_until = utcnow() + timedelta(seconds=1)  # another worker's claim
        db.add(conn)
        db.commit()
    assert post_zoom(hs.http, recording_for(zoom_stub, USER_A)).status_code == 200
    hs.drain()  # runs the put-off job too, once its two seconds have passed
    from models import InboxEvent
    with hs.db() as db:
        event = db.exec(select(InboxEvent)).one()
        assert event.status == "done" and event.attempts == 2
        assert db.exec(select(CoachingSession)).one().state in ("stored", "transcribing", "summarising", "delivered")
    assert zoom_stub.refreshes == 1 and zoom_stub.file_downloads("own-audio-1") == 1


def test_a_refused_refresh_breaks_the_connection_and_tells_the_coach_once(hs, zoom_stub):
    from workers.platforms.zoom_tokens import ZoomNotConnected, access_token, zoom_for
    coach_id = add_coach(hs)
    connect(hs, zoom_stub, coach_id)
    zoom_stub.kill_refresh_tokens(USER_A)  # revoked at Zoom, or 90 days unused
    expire_access_token(hs, coach_id)
    for _ in range(3):
        with pytest.raises(ZoomNotConnected):
            access_token(hs.rt, coach_id)
    conn = connection(hs, coach_id)
    assert conn.status == "broken" and conn.access_token_sealed is None and conn.refresh_token_sealed is None
    assert zoom_for(hs.rt, coach_id) is None
    assert zoom_stub.refused_refreshes == 1  # the dead token was tried once, not on every call
    with hs.db() as db:
        told = db.exec(select(OutboundMessage).where(OutboundMessage.idempotency_key.startswith("zoom-broken:"))).all()
    assert len(told) == 1 and f"{BASE}/coach/zoom" in told[0].body
    page = signed_in(hs, coach_id).get("/coach/zoom").get_data(as_text=True)
    assert "Reconnect Zoom" in page


# --- Zoom or the coach ends it -------------------------------------------------------------

def test_app_deauthorized_deletes_the_tokens_and_nothing_more_is_fetched(hs, zoom_stub, caplog):
    caplog.set_level(logging.DEBUG)
    coach_id = add_coach(hs)
    hs.run("client", "add", "--coach-email", EMAIL_A, "--email", CLIENT_EMAIL, "--name", "Robin Client")
    hs.run("consent", "grant", "--client-email", CLIENT_EMAIL, "--method", "written")
    connect(hs, zoom_stub, coach_id)

    unsigned = json.dumps(deauthorization()).encode()
    assert hs.http.post("/webhooks/zoom", data=unsigned, headers={"content-type": "application/json"}).status_code == 401
    assert connection(hs, coach_id).status == "active"

    assert post_zoom(hs.http, deauthorization()).status_code == 200
    assert post_zoom(hs.http, deauthorization()).status_code == 200  # Zoom retries: harmless
    conn = connection(hs, coach_id)
    assert conn.status == "deauthorized"
    assert conn.access_token_sealed is None and conn.refresh_token_sealed is None
    with hs.db() as db:
        assert len(db.exec(select(AuditEvent).where(AuditEvent.action == "zoom.deauthorized")).all()) == 1
        told = db.exec(select(OutboundMessage).where(OutboundMessage.idempotency_key.startswith("zoom-deauthorized:"))).all()
    assert len(told) == 1

    # A later recording of theirs, even with a live download token, is not fetched.
    calls_before = len(zoom_stub.requests)
    event = recording_for(zoom_stub, USER_A, download_token=zoom_stub.issue_download_token())
    assert post_zoom(hs.http, event).status_code == 200
    hs.drain()
    with hs.db() as db:
        assert db.exec(select(CoachingSession)).all() == []
    assert zoom_stub.file_downloads("own-audio-1") == 0
    assert len(zoom_stub.requests) == calls_before


def test_deauthorized_for_another_app_or_unknown_user_changes_nothing(hs, zoom_stub):
    coach_id = add_coach(hs)
    connect(hs, zoom_stub, coach_id)
    assert post_zoom(hs.http, deauthorization(client_id="someone-elses-app")).get_json()["handled"] is False
    assert post_zoom(hs.http, deauthorization(user_id="zNobody")).get_json()["handled"] is False
    assert post_zoom(hs.http, {"event": "app_deauthorized", "payload": {"user_id": 7}}).status_code == 400
    assert connection(hs, coach_id).status == "active"


def test_disconnect_revokes_at_zoom_and_deletes_the_tokens(hs, zoom_stub):
    coach_id = add_coach(hs)
    http = connect(hs, zoom_stub, coach_id)
    resp = http.post("/coach/zoom/disconnect", data={"csrf_token": csrf(http)})
    assert resp.status_code == 303
    conn = connection(hs, coach_id)
    assert conn.status == "disconnected" and conn.access_token_sealed is None
    assert len(zoom_stub.revoked) == 1 and zoom_stub.live_refresh_tokens(USER_A) == []
    assert "Reconnect Zoom" in http.get("/coach/zoom").get_data(as_text=True)


def test_the_daily_sweep_uses_each_connected_coachs_own_token(hs, zoom_stub):
    from workers.platforms.zoom import sweep_recordings
    a, b = add_coach(hs), add_coach(hs, EMAIL_B, "Blair Bravo")
    connect(hs, zoom_stub, a, USER_A)
    connect(hs, zoom_stub, b, USER_B)
    today = utcnow().strftime("%Y-%m-%dT09:00:00Z")
    for n, user in enumerate((USER_A, USER_B)):
        uuid = f"sweepUUID{n}0000000000=="
        zoom_stub.add_file(f"sweep-{n}", b"\x00\x00\x00\x18ftypM4A " + bytes(64), "audio/mp4")
        f = {"id": f"sweep-{n}", "file_type": "M4A", "file_extension": "M4A", "file_size": 40,
             "download_url": zoom_stub.download_url_for(f"sweep-{n}"), "status": "completed"}
        zoom_stub.add_meeting(500 + n, uuid, host_id=user, host_email="", start_time=today, files=[f])
    assert sweep_recordings(now=utcnow()) == 2
    listed = [r for r in zoom_stub.requests if r.path.endswith("/recordings") and r.path.startswith("/v2/users/")]
    assert sorted(r.path for r in listed) == ["/v2/users/me/recordings"] * 2
    assert len({r.authorization for r in listed}) == 2  # each with its own coach's token


def test_the_briefing_before_a_zoom_meeting_asks_with_the_coachs_own_token(hs, zoom_stub):
    from workers.briefing import send_upcoming_briefings
    coach_id = add_coach(hs)
    hs.run("client", "add", "--coach-email", EMAIL_A, "--email", CLIENT_EMAIL, "--name", "Robin Client")
    hs.run("consent", "grant", "--client-email", CLIENT_EMAIL, "--method", "written")
    connect(hs, zoom_stub, coach_id)
    start_at = (utcnow() + timedelta(minutes=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    zoom_stub.add_meeting(4242, "upcomingUUID0000000001==", host_id=USER_A, host_email="", start_time=start_at,
                          invitees=[CLIENT_EMAIL])
    zoom_stub.add_upcoming(USER_A, {"id": 4242, "topic": "Coaching", "start_time": start_at})
    assert send_upcoming_briefings() == 1
    assert send_upcoming_briefings() == 0  # once per meeting
    with hs.db() as db:
        briefing, = db.exec(select(OutboundMessage).where(OutboundMessage.idempotency_key.startswith("briefing:"))).all()
    assert "Robin Client" in briefing.subject
    asked = [r for r in zoom_stub.requests if r.path == "/v2/users/me/meetings"]
    assert asked and all("access-" in r.authorization for r in asked)


def test_a_lost_webhook_is_reconciled_with_the_coachs_own_token(hs, zoom_stub):
    from workers.platforms.zoom import reconcile_session
    coach_id = add_coach(hs)
    connect(hs, zoom_stub, coach_id)
    event = recording_for(zoom_stub, USER_A)
    obj = event["payload"]["object"]
    ended = {"event": "meeting.ended", "event_ts": 1,
             "payload": {"account_id": ACCOUNT_A, "object": {k: obj[k] for k in
                                                             ("uuid", "id", "host_id", "topic", "start_time", "duration")}}}
    assert post_zoom(hs.http, ended).status_code == 200
    hs.drain()  # the reconciler is scheduled for later, not run
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
    assert session.state == "received" and session.coach_id == coach_id
    assert reconcile_session(session.id) == "discovered"
    asked = [r for r in zoom_stub.requests if r.path.startswith("/v2/meetings/") and r.path.endswith("/recordings")]
    assert asked and all("access-" in r.authorization for r in asked)
