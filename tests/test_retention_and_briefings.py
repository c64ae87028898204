"""The scheduler's time-driven jobs with a moved clock: retention (a day before the limit
nothing goes, a day after everything does, with a receipt), media dropped after N days, and
the pre-session briefing (sent once, at the right time, to the right coach). And the scan
after a withdrawal: nothing of the client is left anywhere."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from models import (Asset, ClientMemory, CoachInsight, CoachingSession, DeletionReceipt, Link,
                    PrivateNote, SearchTerm, SearchVocabulary, Summary, Transcript,
                    TranscriptPassage)
from tests.portalhelpers import delivered_session
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, COACH_ZOOM_ID

ENGINES = dict(TRANSCRIBE_ENGINE="platform", SUMMARY_ENGINE="offline", PLATFORM_TRANSCRIPT_WAIT_SECONDS=0)


@pytest.fixture
def hs(hs_factory, both_databases, zoom_stub, smtp_sink):
    smtp_sink.clear()
    return hs_factory(both_databases, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, **ENGINES)


def rows_of_client(hs, client_id: str) -> dict:
    """Every row that names the client or one of its sessions, table by table."""
    with hs.db() as db:
        sessions = [s.id for s in db.exec(select(CoachingSession).where(CoachingSession.client_id == client_id))]
        return {
            "sessions": sessions,
            "assets": db.exec(select(Asset).where(Asset.client_id == client_id)).all(),
            "transcripts": db.exec(select(Transcript).where(Transcript.session_id.in_(sessions))).all(),
            "passages": db.exec(select(TranscriptPassage).where(TranscriptPassage.client_id == client_id)).all(),
            "summaries": db.exec(select(Summary).where(Summary.session_id.in_(sessions))).all(),
            "insights": db.exec(select(CoachInsight).where(CoachInsight.session_id.in_(sessions))).all(),
            "memory": db.exec(select(ClientMemory).where(ClientMemory.client_id == client_id)).all(),
        }


def test_retention_with_a_moved_clock(hs, zoom_stub, smtp_sink, time_machine):
    from workers.erasure import apply_retention
    from workers.receipts import verify as verify_receipt
    from tests.zoomstub import load_fixture
    # The recording is delivered (and its links issued) on the day it was made, so the links'
    # expiry and the retention limit count from the same day, whatever today's date is.
    recorded, _ = load_fixture("recording_completed", zoom_stub.base_url)
    made = datetime.fromisoformat(recorded["payload"]["object"]["start_time"])
    time_machine.move_to(made + timedelta(hours=2), tick=True)
    payload, _ = delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
        client_id, last = session.client_id, session.started_at
    limit = last + timedelta(days=round(365.25 * 7))
    assert rows_of_client(hs, client_id)["transcripts"]

    early = apply_retention(now=limit - timedelta(days=1))
    # Links long expired by then go: the session, journey and consent links of the session email.
    assert early["erasures"] == 0 and early["links_purged"] == 3
    assert all(rows_of_client(hs, client_id).values())
    assert hs.rt.vault.list_client_objects(client_id)

    result = apply_retention(now=limit + timedelta(days=1))
    assert result["erasures"] == 1
    assert not any(rows_of_client(hs, client_id).values())
    assert hs.rt.vault.list_client_objects(client_id) == []
    with hs.db() as db:
        (receipt,) = db.exec(select(DeletionReceipt)).all()
    assert receipt.body["reason"] == "retention" and verify_receipt(hs.rt, receipt)
    hs.drain()
    assert any("Deletion receipt" in m["Subject"] for m in smtp_sink.to(COACH_EMAIL))  # the coach's receipt
    assert apply_retention(now=limit + timedelta(days=2))["erasures"] == 0  # done once


def test_media_dropped_after_n_days_keeps_transcript_and_summary(hs_factory, database_url, zoom_stub, smtp_sink):
    from workers.erasure import apply_retention
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, **ENGINES)
    hs.run("coach", "add", "--email", COACH_EMAIL, "--name", "Casey", "--zoom-user-id", COACH_ZOOM_ID,
           "--drop-media-after-days", "30")
    hs.run("client", "add", "--coach-email", COACH_EMAIL, "--email", CLIENT_EMAIL, "--name", "Robin")
    hs.run("consent", "grant", "--client-email", CLIENT_EMAIL, "--method", "written")
    from tests.zoomhelpers import post_zoom
    from tests.zoomstub import load_fixture, register_fixture_files
    payload, body = load_fixture("recording_completed", zoom_stub.base_url)
    register_fixture_files(zoom_stub, payload)
    post_zoom(hs.http, body)
    hs.drain()
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
    assert apply_retention(now=session.started_at + timedelta(days=29))["erasures"] == 0
    assert apply_retention(now=session.started_at + timedelta(days=31))["erasures"] == 1
    with hs.db() as db:
        kinds = sorted(a.kind for a in db.exec(select(Asset)))
        assert db.exec(select(Transcript)).all() and db.exec(select(Summary)).all()
        assert db.get(CoachingSession, session.id).state == "delivered"
    assert "video" not in kinds and "audio" not in kinds and "transcript_vtt" in kinds


def test_withdrawal_leaves_nothing_of_the_client(hs, zoom_stub, smtp_sink):
    from vault import ObjectErased
    from workers import coaching
    payload, path = delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
        client_id, coach_id = session.client_id, session.coach_id
        assets = db.exec(select(Asset)).all()
    coaching.add_note(hs.rt, coach_id, session.id, "Coach's own note", actor="coach")
    before = {a.object_key: (a.size, a.sha256) for a in assets}
    # A copy of one stored object, as a backup or an old version might keep it.
    vault_root = __import__("pathlib").Path(hs.rt.settings.storage_url.removeprefix("file://"))
    kept_key = next(iter(before))
    kept_copy = (vault_root / kept_key).read_bytes()
    snapshot = rows_of_client(hs, client_id)
    assert all(snapshot.values())
    word = max(snapshot["passages"][0].text.split(), key=len).strip(".,?!")
    from models.search import search_passages
    with hs.db() as db:
        assert search_passages(db, coach_id, word)

    hs.run("consent", "withdraw", "--client-email", CLIENT_EMAIL)
    hs.drain()

    assert not any(rows_of_client(hs, client_id).values())
    assert hs.rt.vault.list_client_objects(client_id) == []
    with hs.db() as db:
        assert search_passages(db, coach_id, word) == []
        for index in (SearchTerm, SearchVocabulary):  # the blind index holds nothing of theirs
            assert db.exec(select(index).where(index.client_id == client_id)).first() is None
        assert all(l.revoked_at for l in db.exec(select(Link).where(Link.client_id == client_id)))
        (note,) = db.exec(select(PrivateNote)).all()
        assert note.client_withdrawn and note.session_id is None  # the coach keeps their own note
        (receipt,) = db.exec(select(DeletionReceipt)).all()
    assert {o["key"]: (o["size"], o["sha256"]) for o in receipt.body["objects"]} == before
    assert receipt.body["counts"]["transcripts"] == 1 and receipt.body["counts"]["summaries"] == 1
    # The key is gone: the surviving copy, put back, cannot be read.
    assert not (vault_root / kept_key).exists()
    (vault_root / kept_key).parent.mkdir(parents=True, exist_ok=True)
    (vault_root / kept_key).write_bytes(kept_copy)
    with pytest.raises(ObjectErased):
        list(hs.rt.vault.open(kept_key))
    # No temporary file of any kind is left behind.
    assert [p for p in hs.rt.settings.var_dir.rglob("*") if p.is_file() and "tmp" in p.parts] == []


def test_briefing_is_sent_once_at_the_right_time_to_the_right_coach(hs, zoom_stub, smtp_sink):
    from workers import coaching
    from workers.briefing import send_upcoming_briefings
    payload, _ = delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
    coaching.add_note(hs.rt, session.coach_id, session.id, "Ask about the one-to-one", actor="coach")
    # Another coach with their own meeting at the same time must get nothing of this.
    hs.run("coach", "add", "--email", "other@example.com", "--name", "Other", "--zoom-user-id", "zOTHER")
    start = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)
    meeting_id = payload["payload"]["object"]["id"]
    zoom_stub.add_upcoming(COACH_ZOOM_ID, {"id": meeting_id, "topic": "Weekly", "start_time": "2026-12-01T15:00:00Z"})
    zoom_stub.add_upcoming("zOTHER", {"id": 123, "topic": "Other's", "start_time": "2026-12-01T15:00:00Z"})
    smtp_sink.clear()

    assert send_upcoming_briefings(now=start - timedelta(minutes=61)) == 0  # too early
    assert send_upcoming_briefings(now=start - timedelta(minutes=59)) == 1
    assert send_upcoming_briefings(now=start - timedelta(minutes=30)) == 0  # once only
    assert send_upcoming_briefings(now=start + timedelta(minutes=1)) == 0   # too late
    hs.drain()
    (mail,) = smtp_sink.to(COACH_EMAIL)
    assert "Robin Client" in mail["Subject"] and "15:00" in mail["Subject"]
    body = mail.get_payload(decode=True).decode() if not mail.is_multipart() else str(mail)
    assert "Ask about the one-to-one" in body and "Open commitments" in body
    assert smtp_sink.to("other@example.com") == []


def test_one_coach_whose_zoom_user_is_gone_does_not_stop_the_others_briefings(hs, zoom_stub, smtp_sink):
    from workers.briefing import send_upcoming_briefings
    # Created first, so swept first: Zoom answers 404 "User does not exist" for this coach.
    hs.run("coach", "add", "--email", "gone@example.com", "--name", "Gone", "--zoom-user-id", "zGONE404")
    payload, _ = delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    start = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)
    zoom_stub.add_upcoming(COACH_ZOOM_ID, {"id": payload["payload"]["object"]["id"], "topic": "Weekly",
                                           "start_time": "2026-12-01T15:00:00Z"})
    smtp_sink.clear()
    assert send_upcoming_briefings(now=start - timedelta(minutes=59)) == 1
    hs.drain()
    (mail,) = smtp_sink.to(COACH_EMAIL)
    assert "Robin Client" in mail["Subject"]
    assert smtp_sink.to("gone@example.com") == []
