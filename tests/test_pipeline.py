"""A stored session through transcription, summary and delivery, as real jobs: the engines the
settings choose, consent stopping at the right step, failures reported, nothing decrypted left
behind, and nothing of the coach tier reaching anything a client can read."""

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import select

from models import (Asset, ClientMemory, CoachInsight, CoachingSession, Summary, Transcript,
                    TranscriptPassage)
from tests.portalhelpers import body_of, delivered_session, links_in, path_of
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL, audio_recording, coach_and_client, post_zoom

ROOT = Path(__file__).resolve().parent.parent
DEMO_AUDIO = ROOT / "demo" / "session.m4a"


def engines(**extra):
    return dict(TRANSCRIBE_ENGINE="platform", SUMMARY_ENGINE="offline", PLATFORM_TRANSCRIPT_WAIT_SECONDS=0, **extra)


@pytest.fixture
def hs(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    return hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, **engines())


def only(hs, model):
    with hs.db() as db:
        return db.exec(select(model)).all()


def test_full_consent_goes_all_the_way_with_the_tiers_apart(hs, zoom_stub, smtp_sink):
    payload, path = delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    (session,) = only(hs, CoachingSession)
    assert session.state == "delivered"
    (transcript,) = only(hs, Transcript)
    assert transcript.engine == "platform:zoom" and transcript.segments
    assert all(seg["speaker"] for seg in transcript.segments)  # Zoom's names
    assert only(hs, TranscriptPassage)
    (summary,), (insight,) = only(hs, Summary), only(hs, CoachInsight)
    assert summary.basic and summary.engine == insight.engine
    assert "observations" in insight.coach_tier and "observations" not in summary.client_tier
    (memory,) = only(hs, ClientMemory)
    assert memory.sessions_seen == [session.id]
    energy = summary.client_tier["energy"]  # the valence of the client's own words over time
    assert len(energy) > 10 and all(-1 <= v <= 1 for _, v in energy)
    assert [t for t, _ in energy] == sorted(t for t, _ in energy)
    # Shown to the client only when the coach turned it on (an automatic mood reading a client
    # did not ask for can feel like being watched), and then with what its axis means.
    assert 'id="energy-chart"' not in hs.http.get(path).get_data(as_text=True)
    from models import Coach
    with hs.db() as db:
        db.exec(select(Coach)).one().show_mood_to_client = True
        db.commit()
    shown = hs.http.get(path).get_data(as_text=True)
    assert 'id="energy-chart"' in shown and "middle line is neutral" in shown
    vtt = [a for a in only(hs, Asset) if a.kind == "transcript_vtt"][0]
    assert b"".join(hs.rt.vault.open(vtt.object_key)).startswith(b"WEBVTT")


def test_the_clients_page_says_you_for_their_own_commitments(hs, zoom_stub, smtp_sink):
    # Zoom's names ("Sam Rivera") are not the ones the coach entered: the client is still "you".
    _, path = delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    page = hs.http.get(path).get_data(as_text=True)
    listed = re.search(r'<ul class="commitments">(.*?)</ul>', page, re.S).group(1)
    assert "(you" in listed and "Sam Rivera" not in listed and "Client" not in listed
    assert "write down your three asks" in listed and " my " not in listed


def test_without_transcribe_the_session_is_delivered_with_the_recording_only(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink, scopes="record,share_with_client", fixture="recording_completed")
    assert only(hs, CoachingSession)[0].state == "delivered"
    assert only(hs, Transcript) == [] and only(hs, Summary) == []
    assert [a for a in only(hs, Asset) if a.kind in ("transcript", "transcript_vtt")] == []


def test_without_summarise_there_is_a_transcript_but_no_summary(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink, scopes="record,transcribe", fixture="recording_completed")
    assert only(hs, CoachingSession)[0].state == "delivered"
    assert len(only(hs, Transcript)) == 1
    assert only(hs, Summary) == [] and only(hs, CoachInsight) == [] and only(hs, ClientMemory) == []


def shares_shown(hs, stop) -> list[int]:
    """Every "transcribed so far" percentage the coach's dashboard shows until `stop` is set."""
    from tests.test_dashboard import coach_id_of, sign_in
    http = sign_in(hs, coach_id_of(hs))
    seen = []
    while not stop.is_set():
        html = http.get("/coach").get_data(as_text=True)
        seen += [int(v) for v in re.findall(r'<progress max="100" value="(\d+)"', html)]
        time.sleep(0.1)
    return seen


def test_local_whisper_end_to_end_leaves_nothing_decrypted(hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, TRANSCRIBE_ENGINE="local",
                    SUMMARY_ENGINE="offline")
    coach_and_client(hs)
    assert post_zoom(hs.http, audio_recording(zoom_stub, DEMO_AUDIO.read_bytes())).status_code == 200
    # The coach watches the dashboard while the worker transcribes (RQ's worker wants the
    # main thread for its signals, so the coach is the other one).
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(shares_shown, hs, stop)
        try:
            hs.drain()
        finally:
            stop.set()
        seen = watching.result()
    # The share grew while the job ran: some value strictly between nothing and all of it.
    assert any(0 < v < 100 for v in seen), seen
    assert seen == sorted(seen), seen
    (session,) = only(hs, CoachingSession)
    assert session.state == "delivered", session.error
    (transcript,) = only(hs, Transcript)
    text = transcript.text.lower()
    assert "deep work" in text and "focus hours" in text
    assert all(seg["speaker_guessed"] for seg in transcript.segments)
    # Two voices told apart in the one mixed track, called by the coach's and client's names.
    speaker_of = {seg["text"]: seg["speaker"] for seg in transcript.segments}
    assert set(speaker_of.values()) == {"Casey Coach", "Robin Client"}
    assert next(v for t, v in speaker_of.items() if "focus hours" in t) == "Robin Client"
    assert next(v for t, v in speaker_of.items() if "homework" in t.lower()) == "Casey Coach"
    summary = only(hs, Summary)[0].client_tier
    assert any("focus hours" in c["what"] for c in summary["commitments"])


def test_audio_that_cannot_be_transcribed_fails_the_session_and_tells_the_coach(
        hs_factory, database_url, zoom_stub, smtp_sink):
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, TRANSCRIBE_ENGINE="local")
    coach_and_client(hs)
    post_zoom(hs.http, audio_recording(zoom_stub, b"\x00\x00\x00\x18ftypM4A " + b"\x00" * 4000))
    for _ in range(5):  # the step's own retries, their clock moved on
        hs.drain(advance=3600)
    (session,) = only(hs, CoachingSession)
    assert session.state == "failed" and "transcription failed" in session.error
    assert any("could not be processed" in m["Subject"] for m in smtp_sink.to(COACH_EMAIL))
    # The recording itself stays safe in the vault, and a retry resumes at transcription.
    assert [a.kind for a in only(hs, Asset)] == ["audio"]


def test_openai_engines_through_a_compatible_server(hs_factory, database_url, zoom_stub, smtp_sink):
    from tests.openaistub import OpenAIStub
    stub = OpenAIStub().start()
    try:
        def reply(request):
            return json.dumps({"client": {
                "overview": "Robin protected two mornings for deep work.", "themes": ["boundaries"],
                "insights": ["Saying no can be helpful"], "decisions": [],
                "commitments": [{"what": "share focus hours with the team", "who": "Client", "by_when": "Monday",
                                 "source_timestamp": 9999.0},
                                {"what": "decline one meeting a week", "who": "Client", "by_when": None,
                                 "source_timestamp": 0.5}],
                "homework": [], "open_threads": ["the manager"], "key_moments": [], "goals_touched": []},
                "coach": {"observations": ["COACH-ONLY-MARKER"], "hypotheses": [], "patterns_across_sessions": [],
                          "questions_for_next_time": ["What does a good no sound like?"],
                          "supervision_questions": []}})
        stub.chat_reply = reply
        smtp_sink.clear()
        hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, OPENAI_BASE_URL=stub.base_url,
                        OPENAI_API_KEY="sk-test", PLATFORM_TRANSCRIPT_WAIT_SECONDS=0)
        payload, path = delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
        (summary,), (insight,) = only(hs, Summary), only(hs, CoachInsight)
        assert summary.engine.startswith("openai") and not summary.basic
        whats = [c["what"] for c in summary.client_tier["commitments"]]
        assert "share focus hours with the team" not in whats  # cites a moment that does not exist
        assert insight.coach_tier["observations"] == ["COACH-ONLY-MARKER"]
        request = stub.chat_requests[0]
        assert request["response_format"]["type"] == "json_schema"
        page = hs.http.get(path).get_data(as_text=True)
        assert "COACH-ONLY-MARKER" not in page and "What does a good no sound like" not in page
    finally:
        stub.close()


def test_the_coach_tier_reaches_nothing_a_client_can_read(hs_factory, database_url, zoom_stub, smtp_sink):
    """A unique marker in every coach-tier field and in a private note; then every response a
    client can reach and every email the client got."""
    from workers import coaching
    smtp_sink.clear()
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, **engines())
    marker = "ZZ-COACH-ONLY-7f3a"
    payload, path = delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    (session,) = only(hs, CoachingSession)
    with hs.db() as db:
        insight = db.exec(select(CoachInsight)).one()
        insight.coach_tier = {k: [f"{marker} {k}"] for k in insight.coach_tier}
        db.add(insight)
        db.commit()
    coaching.add_note(hs.rt, session.coach_id, session.id, f"{marker} private note", actor="coach")
    hs.run("consent", "request", "--client-email", CLIENT_EMAIL)
    hs.drain()
    consent_path = [path_of(u) for m in smtp_sink.to(CLIENT_EMAIL) for u in links_in(m) if "/c/" in u][-1]
    page = hs.http.get(path).get_data(as_text=True)
    journey = re.findall(r'href="(/j/[^"]+)"', page)
    responses = [page.encode(), *[hs.http.get(p).get_data() for p in (
        f"{path}/media", f"{path}/download/recording", f"{path}/transcript.vtt", f"{path}/transcript.txt",
        consent_path, *journey)]]
    assert journey, "the journey page was crawled too"
    emails = [(body_of(m) + str(m["Subject"])).encode() for m in smtp_sink.to(CLIENT_EMAIL)]
    assert len(responses) == 7 and len(emails) >= 2
    for data in responses + emails:
        assert marker.encode() not in data
    # The coach does see it, so the marker was really there to leak.
    assert marker in str(only(hs, CoachInsight)[0].coach_tier)
