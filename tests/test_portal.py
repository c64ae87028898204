"""The client's pages over HTTP: links (forged, tampered, expired, revoked, refreshed), the media
stream's Range handling, downloads by consent scope, the consent page and withdrawal."""

from datetime import timedelta

import pytest
from sqlmodel import select

from models import (Asset, AuditEvent, Client, CoachingSession, Consent, DeletionReceipt, Link,
                    OutboundMessage, utcnow)
from tests.portalhelpers import body_of, delivered_session, links_in, path_of
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, coach_and_client


@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    return hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url,
                      PUBLIC_BASE_URL="https://holdspace.example")


def audio_bytes(zoom_stub, payload):
    (audio,) = [f for f in payload["payload"]["object"]["recording_files"] if f["file_type"] == "M4A"]
    return zoom_stub.file_data(audio["id"])


def test_delivery_email_and_session_page(hs, zoom_stub, smtp_sink):
    payload, path = delivered_session(hs, zoom_stub, smtp_sink)
    (mail,) = [m for m in smtp_sink.to(CLIENT_EMAIL) if "/s/" in body_of(m)]
    assert mail.is_multipart() and {p.get_content_type() for p in mail.walk()} >= {"text/plain", "text/html"}
    assert any(u.startswith("https://holdspace.example/s/") for u in links_in(mail))
    resp = hs.http.get(path)
    assert resp.status_code == 200
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cache-Control"] == "no-store"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "http" not in csp
    page = resp.get_data(as_text=True)
    assert "<audio" in page and f"{path}/media" in page
    # Nothing on the page is fetched from anywhere else.
    assert "https://" not in page.replace("https://holdspace.example", "")
    with hs.db() as db:
        assert db.exec(select(CoachingSession)).one().state == "delivered"
        assert any("Sent to Robin Client" in m.subject for m in db.exec(select(OutboundMessage)))
    assert smtp_sink.to(COACH_EMAIL), "the coach's copy"


def test_media_ranges(hs, zoom_stub, smtp_sink):
    payload, path = delivered_session(hs, zoom_stub, smtp_sink)
    data = audio_bytes(zoom_stub, payload)
    size = len(data)
    full = hs.http.get(f"{path}/media")
    assert full.status_code == 200 and full.data == data
    assert full.headers["Accept-Ranges"] == "bytes" and full.headers["Content-Type"] == "audio/mp4"
    assert int(full.headers["Content-Length"]) == size
    for header, (start, end) in {"bytes=0-0": (0, 1), "bytes=100-70000": (100, 70001),
                                 f"bytes={size - 10}-": (size - 10, size), "bytes=-500": (size - 500, size),
                                 f"bytes=5-{size * 3}": (5, size)}.items():
        part = hs.http.get(f"{path}/media", headers={"Range": header})
        assert part.status_code == 206, header
        assert part.data == data[start:end], header
        assert part.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        assert int(part.headers["Content-Length"]) == end - start
    for bad in (f"bytes={size}-", "bytes=50-10", "bytes=-0", "bits=1-2", "bytes=x-y"):
        resp = hs.http.get(f"{path}/media", headers={"Range": bad})
        assert resp.status_code == 416, bad
        assert resp.headers["Content-Range"] == f"bytes */{size}"
    # Seeking is not a use of the link: only page views are counted and audited.
    hs.http.get(path)
    with hs.db() as db:
        link = db.exec(select(Link).where(Link.purpose == "session")).one()
        used = [e for e in db.exec(select(AuditEvent)) if e.action == "link.used"]
    assert link.uses == 1 and len(used) == 1


def test_downloads_follow_the_share_scope(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url)
    payload, path = delivered_session(hs, zoom_stub, smtp_sink, scopes="record")
    page = hs.http.get(path).get_data(as_text=True)
    assert "download/recording" not in page
    assert hs.http.get(f"{path}/download/recording").status_code == 403
    hs.run("consent", "grant", "--client-email", CLIENT_EMAIL, "--method", "written",
           "--scopes", "record,share_with_client")
    resp = hs.http.get(f"{path}/download/recording")
    assert resp.status_code == 200 and resp.data == audio_bytes(zoom_stub, payload)
    assert "attachment" in resp.headers["Content-Disposition"]
    with hs.db() as db:
        assert "recording.downloaded" in [e.action for e in db.exec(select(AuditEvent))]


@pytest.mark.parametrize("case", ["forged", "tampered", "wrong_purpose", "garbage"])
def test_bad_tokens_are_404(hs, zoom_stub, smtp_sink, case):
    payload, path = delivered_session(hs, zoom_stub, smtp_sink)
    token = path.rsplit("/", 1)[1]
    bad = {"forged": "ImFiYyI.AAAAAAAAAAAAAAAAAAAAAAAAAAA",
           "tampered": token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),
           "wrong_purpose": token, "garbage": "%00%ff<script>"}[case]
    if case == "wrong_purpose":  # a session token is no consent token
        assert hs.http.get(f"/c/{bad}").status_code == 404
        return
    assert hs.http.get(f"/s/{bad}").status_code == 404
    assert hs.http.get(f"/s/{bad}/media").status_code == 404


def test_expired_and_revoked_links_are_410_and_offer_a_fresh_one(hs, zoom_stub, smtp_sink):
    payload, path = delivered_session(hs, zoom_stub, smtp_sink)
    with hs.db() as db:
        link = db.exec(select(Link).where(Link.purpose == "session")).one()
        link.expires_at = utcnow() - timedelta(seconds=1)
        db.add(link)
        db.commit()
    resp = hs.http.get(path)
    assert resp.status_code == 410 and "Email me a fresh link" in resp.get_data(as_text=True)
    assert hs.http.get(f"{path}/media").status_code == 410
    token = path.rsplit("/", 1)[1]
    before = len(smtp_sink.to(CLIENT_EMAIL))
    wrong = hs.http.post("/links/fresh", data={"token": token, "email": "someone@else.example"})
    right = hs.http.post("/links/fresh", data={"token": token, "email": CLIENT_EMAIL.upper()})
    assert wrong.status_code == right.status_code == 200
    assert wrong.get_data(as_text=True) == right.get_data(as_text=True)
    hs.drain()
    after = smtp_sink.to(CLIENT_EMAIL)
    assert len(after) == before + 1
    (fresh,) = [u for u in links_in(after[-1]) if "/c/" not in u]  # the footer links the consent page
    assert hs.http.get(path_of(fresh)).status_code == 200
    # Revoked by the coach: 410 as well.
    with hs.db() as db:
        for link in db.exec(select(Link)):
            link.revoked_at = utcnow()
            db.add(link)
        db.commit()
    assert hs.http.get(path_of(fresh)).status_code == 410


def test_xss_in_topic_and_name_is_escaped(hs_factory, database_url, zoom_stub, smtp_sink):
    from tests.zoomstub import load_fixture
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url)
    evil = '<script>alert("topic")</script><img src=x onerror=alert(1)>'
    original = load_fixture.__globals__["json"].loads
    payload, path = delivered_session(hs, zoom_stub, smtp_sink)
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
        session.topic = evil
        client = db.exec(select(Client)).one()
        client.name = '"><svg onload=alert(2)>'
        db.add(session)
        db.add(client)
        db.commit()
    page = hs.http.get(path).get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page and "<svg onload" not in page
    assert "&lt;script&gt;" in page
    assert original  # the fixture loader is untouched


def test_consent_page_records_written_consent(hs, smtp_sink):
    hs.run("coach", "add", "--email", COACH_EMAIL, "--name", "Casey Coach")
    hs.run("client", "add", "--coach-email", COACH_EMAIL, "--email", CLIENT_EMAIL, "--name", "Robin")
    hs.run("consent", "request", "--client-email", CLIENT_EMAIL)
    hs.drain()
    (mail,) = smtp_sink.to(CLIENT_EMAIL)
    (url,) = links_in(mail)
    page = hs.http.get(path_of(url))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for words in ("What is recorded", "Where it is stored", "Who can see it", "How long it is kept",
                  "withdraw", 'name="scope" value="record"', 'value="share_with_client"'):
        assert words in text
    resp = hs.http.post(path_of(url), data={"scope": ["record", "transcribe"]},
                        headers={"User-Agent": "TestBrowser/1.0"}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert resp.status_code == 303  # post/redirect/get: a reload does not record it twice
    assert "Your choice is saved" in hs.http.get(resp.location).get_data(as_text=True)
    with hs.db() as db:
        consent = db.exec(select(Consent).where(Consent.withdrawn_at.is_(None))).one()
        assert consent.method == "written" and consent.scopes == "record,transcribe"
        assert consent.evidence_ip == "203.0.113.9" and consent.evidence_user_agent == "TestBrowser/1.0"
        assert len(consent.text_sha256) == 64
    hs.drain()
    assert any("gave written consent" in m["Subject"] for m in smtp_sink.to(COACH_EMAIL))
    # No record scope ticked: refused with an explanation, nothing changes.
    resp = hs.http.post(path_of(url), data={"scope": ["transcribe"]})
    assert resp.status_code == 400


def test_verbal_consent_sends_the_client_a_confirmation(hs, smtp_sink):
    coach_and_client(hs, consent="verbal_attested")
    hs.drain()
    (mail,) = smtp_sink.to(CLIENT_EMAIL)
    assert "agreed" in mail["Subject"]
    (url,) = links_in(mail)
    page = hs.http.get(path_of(url)).get_data(as_text=True)
    assert "told to your coach" in page


def test_withdrawal_deletes_everything_and_kills_every_link(hs, zoom_stub, smtp_sink):
    payload, session_path = delivered_session(hs, zoom_stub, smtp_sink)
    hs.run("consent", "request", "--client-email", CLIENT_EMAIL)
    hs.drain()
    consent_url = [u for m in smtp_sink.to(CLIENT_EMAIL) for u in links_in(m) if "/c/" in u][-1]
    with hs.db() as db:
        before = {a.object_key: (a.size, a.sha256) for a in db.exec(select(Asset))}
        client_id = db.exec(select(Client)).one().id
    assert before
    unconfirmed = hs.http.post(path_of(consent_url) + "/withdraw", data={})
    assert unconfirmed.status_code == 400
    resp = hs.http.post(path_of(consent_url) + "/withdraw", data={"confirm": "yes"})
    assert resp.status_code == 200
    hs.drain()
    for path in (session_path, f"{session_path}/media", path_of(consent_url)):
        assert hs.http.get(path).status_code == 410, path
    assert hs.rt.vault.list_client_objects(client_id) == []
    with hs.db() as db:
        assert db.exec(select(Asset)).all() == [] and db.exec(select(CoachingSession)).all() == []
        (receipt,) = db.exec(select(DeletionReceipt)).all()
        assert {o["key"]: (o["size"], o["sha256"]) for o in receipt.body["objects"]} == before
        assert receipt.body["key_shredded"] and receipt.completed_at
        from workers.receipts import verify as verify_receipt
        assert verify_receipt(hs.rt, receipt)
        assert db.exec(select(Consent)).all()  # the consent history stays
    mails = [m for m in smtp_sink.to(CLIENT_EMAIL) if "deletion receipt" in m["Subject"].lower()]
    assert len(mails) == 1 and receipt.id in body_of(mails[0])
    # consented to recording only: the plain summary names what there was
    assert "\n1 session: recordings deleted; your key destroyed.\n" in body_of(mails[0]).replace("\r", "")
