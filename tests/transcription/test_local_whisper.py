"""A real Whisper model (the packaged default) on test speech rendered by espeak-ng."""

from __future__ import annotations

import io
import re

import jiwer
import pytest

from tests.speech.generate import script_text
from tests.speech.scoring import EXPECTED, precision_recall
from workers.summaries.offline import summarise_offline
from tests.media import encode, moov_at_end, wav_file_bytes
from workers.transcription.local import LocalWhisper, ModelUnavailable, load_model
from workers.transcription.speakers import label_speakers_heuristic, merge_tracks

# The packaged model (Whisper base, int8, beam 5, word timestamps) scored 4.3% on session1
# when this test was written (3.1% without word timestamps; tiny.en 5.4%). 12% is under three
# times that: a change of model, decoding options or audio path that really hurts accuracy
# (wrong sample rate, clipped audio, lost segments) lands far above it, while the drift of
# int8 kernels across CPUs (a word or two in these ~500) stays well below.
WER_THRESHOLD = 0.12

_NUMBERS = {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "10": "ten"}


def normalise(text: str) -> str:
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(_NUMBERS.get(w, w) for w in text.split())


@pytest.fixture(scope="module")
def session1_heard(speech):
    """session1 through the whole local path: an M4A with its index at the end, as a cloud
    recording arrives, decoded from a file object in memory and heard by Whisper in chunks."""
    samples, rate = wav_file_bytes(speech["session1"].mixed)
    m4a = encode(samples[None, :], rate, "m4a")
    assert moov_at_end(m4a)
    # 75 s chunks: the ~170 s session is heard in three, so the seams are tested too.
    shares = []
    result = LocalWhisper(chunk_seconds=75.0).transcribe(io.BytesIO(m4a), progress=shares.append)
    return result, shares


@pytest.fixture(scope="module")
def session1_transcript(session1_heard):
    return session1_heard[0]


def test_progress_is_told_as_the_words_come(session1_heard):
    shares = session1_heard[1]
    # Told many times over the three chunks, never backwards, from early on to the end.
    assert len(shares) >= 10 and shares == sorted(shares), shares
    assert shares[0] < 0.25 and 0.3 < shares[len(shares) // 2] < 0.7 and shares[-1] == 1.0


def test_word_error_rate_on_test_speech(session1_transcript, speech):
    result = session1_transcript
    error_rate = jiwer.wer(normalise(script_text("session1")), normalise(result.text))
    print(f"\nlocal Whisper WER on session1 ({speech['session1'].duration:.0f} s): {error_rate:.3f}"
          f" (threshold {WER_THRESHOLD})")
    assert error_rate <= WER_THRESHOLD
    assert result.engine == "local" and result.language == "en"


def test_timestamps_follow_the_speech(session1_transcript, speech):
    segments = session1_transcript.segments
    assert [s.start for s in segments] == sorted(s.start for s in segments)
    assert all(0 <= s.start <= s.end <= speech["session1"].duration + 0.5 for s in segments)
    # The segment that heard the commitment overlaps the time the script said it.
    truth = next(s for s in speech["session1"].segments if "send the project proposal" in s.text)
    heard = next(s for s in segments if "proposal to my manager" in s.text)
    assert heard.start < truth.end and heard.end > truth.start


def test_offline_summary_of_the_whisper_transcript_finds_the_commitments(session1_transcript):
    # The whole offline path on machine-heard words: Whisper's text, guessed speakers, phrase
    # matching. Looser than the summariser's own test on the script text, since Whisper
    # mishears a word here and there ("values" as "mouse") and joins turns into one segment.
    expected = EXPECTED["session1"]
    segments = label_speakers_heuristic(session1_transcript.segments)
    client, _ = summarise_offline(segments)
    found = [c.what for c in client.commitments] + [h.task for h in client.homework]
    wanted = [c["what"] for c in expected["commitments"]] + expected["homework"]
    precision, recall = precision_recall(found, wanted)
    print(f"\noffline summary of the Whisper transcript: commitments+homework "
          f"precision {precision:.2f} recall {recall:.2f}")
    assert precision >= 0.8 and recall >= 0.7


def test_per_participant_tracks_give_exact_speakers(speech):
    session = speech["session2"]
    engine = LocalWhisper()
    tracks = [(name, engine.transcribe(path).segments) for name, path in session.tracks.items()]
    merged = merge_tracks(tracks)
    assert merged and not any(s.speaker_guessed for s in merged)
    for segment in merged:
        # The script line this segment overlaps most was spoken by the speaker it is labelled with.
        truth = max(session.segments, key=lambda t: min(t.end, segment.end) - max(t.start, segment.start))
        assert segment.speaker == truth.speaker, (segment, truth)
    assert {s.speaker for s in merged} == {"Coach", "Client"}
    assert [s.start for s in merged] == sorted(s.start for s in merged)


def test_the_model_is_loaded_once_per_process():
    assert LocalWhisper().model is LocalWhisper().model


def test_a_model_directory_without_its_tokenizer_is_refused(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelUnavailable, match="tokenizer.json"):
        load_model(str(tmp_path))


def test_a_model_name_is_not_downloaded_offline(monkeypatch):
    # tiny.en is a name faster-whisper knows; offline, it must be refused rather than fetched.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="cannot load Whisper model 'tiny.en'"):
        load_model("tiny.en", device="cpu", compute_type="int8")


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_an_mp4_with_its_index_at_the_end_is_transcribed_straight_from_the_vault(
        backend, speech, tmp_path, request):
    from vault import LocalMasterKey, open_vault
    if backend == "s3":
        url = f"s3://{request.getfixturevalue('s3_bucket')}/vault"
        endpoint = request.getfixturevalue("s3_server").url
    else:
        url, endpoint = f"file://{tmp_path / 'vault'}", None
    vault = open_vault(url, master_key=LocalMasterKey.generate(), s3_endpoint_url=endpoint)
    samples, rate = wav_file_bytes(speech["session2"].mixed)
    mp4 = encode(samples[None, : 40 * rate], rate, "mp4", video=True)  # a Zoom-like video file
    assert moov_at_end(mp4)
    vault.ensure_client_key("client-1")
    stored = vault.put_stream("client-1", "sessions/s1/video.mp4", [mp4], "video/mp4")
    with vault.open_file(stored.key) as recording:
        result = LocalWhisper().transcribe(recording)
    words = normalise(result.text).split()
    truth = normalise(" ".join(s.text for s in speech["session2"].segments if s.end <= 40)).split()
    assert jiwer.wer(" ".join(truth), " ".join(words[: len(truth)])) < 0.2
    assert result.segments[-1].end <= 40.5
